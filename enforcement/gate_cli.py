"""``agentgate gate serve``: the gate over HTTP for agents in other processes.

The gate is described by a configuration file (``enforcement.gate_config``);
the API is in specs/gate-api.md. Exit codes: 0 after a clean stop, 2 for
usage errors such as an unreadable configuration, key or token file.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import click

__all__ = ["gate"]

AGENT_TOKEN_VARIABLE = "AGENTGATE_GATE_TOKEN"
APPROVALS_TOKEN_VARIABLE = "AGENTGATE_APPROVALS_TOKEN"


class CommandError(click.ClickException):
    """A failure reported as ``Error: <message>`` with a chosen exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def read_token(path: Path | None, variable: str, what: str,
               required: bool = True) -> str | None:
    """Read a bearer token from a file of mode 0600, or from ``variable``."""
    from ledger import LedgerError
    from ledger.server import check_write_token, load_write_token

    try:
        if path is not None:
            return load_write_token(path)
        if os.environ.get(variable):
            return check_write_token(os.environ[variable])
    except LedgerError as err:
        raise CommandError(f"{what}: {err}", 2) from err
    if required:
        raise CommandError(f"no {what}: pass its file (mode 0600) or set "
                           f"{variable}", 2)
    return None


@click.group()
def gate() -> None:
    """Run the gate as a service for agents in other processes."""


@gate.command()
@click.option("--config", "config_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The gate's configuration (TOML): log, policy, trust anchors, "
                   "default chain, vault.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on.")
@click.option("--port", default=8090, show_default=True,
              type=click.IntRange(0, 65535),
              help="TCP port to listen on; 0 picks a free port.")
@click.option("--token-file", default=None, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help=f"File holding the agents' bearer token (mode 0600) "
                   f"[default: ${AGENT_TOKEN_VARIABLE}].")
@click.option("--approvals-token-file", default=None, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help=f"File holding the approvers' bearer token; serves the "
                   f"approval routes [default: ${APPROVALS_TOKEN_VARIABLE}, "
                   f"else no approval routes].")
@click.option("--approver-key", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Approver signer key for the approve and deny routes.")
@click.option("--max-sessions", default=10_000, show_default=True,
              type=click.IntRange(1, 1_000_000),
              help="Sessions open at once; more are rejected with 429.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Level of the server's log messages (standard error).")
def serve(config_path: Path, host: str, port: int, token_file: Path | None,
          approvals_token_file: Path | None, approver_key: Path | None,
          max_sessions: int, log_level: str) -> None:
    """Serve the gate's HTTP API until interrupted."""
    try:
        import uvicorn

        from enforcement.gate_http import create_app
        from enforcement.gate_service import GateService
    except ImportError as err:
        raise CommandError(
            f"agentgate gate serve needs the server extra, but {err.name} is not "
            "installed; run: pip install 'agentgate-runtime[server]'", 2,
        ) from err
    from enforcement.errors import GateError
    from enforcement.gate_config import load_gate_config
    from enforcement.identity import Identity

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = read_token(token_file, AGENT_TOKEN_VARIABLE, "agent token")
    approvals_token = read_token(approvals_token_file, APPROVALS_TOKEN_VARIABLE,
                                 "approvers' token", required=False)
    if approver_key is not None and approvals_token is None:
        raise CommandError("--approver-key needs the approvers' token: pass "
                           "--approvals-token-file", 2)
    try:
        config = load_gate_config(config_path)
        approver = Identity.load(approver_key) if approver_key else None
    except GateError as err:
        raise CommandError(str(err), 2) from err

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family)
    except OSError as err:
        raise CommandError(f"cannot listen on {host} port {port}: {err.strerror}; "
                           "choose another --host or --port", 2) from err
    try:
        try:
            opened = config.open()
        except GateError as err:
            raise CommandError(str(err), 2) from err
        with opened:
            try:
                app = create_app(GateService(opened.gate, max_sessions), token,
                                 approvals_token=approvals_token, approver=approver)
            except GateError as err:
                raise CommandError(str(err), 2) from err
            address, bound_port = listener.getsockname()[:2]
            shown = f"[{address}]" if family == socket.AF_INET6 else address
            if host not in ("127.0.0.1", "::1", "localhost"):
                click.echo(f"warning: listening on {host} without TLS, so tokens "
                           "cross the network in clear text; put a TLS proxy in "
                           "front", err=True)
            click.echo(f"serving gate on http://{shown}:{bound_port}", err=True)
            config_uvicorn = uvicorn.Config(app, log_level=log_level,
                                            access_log=False, server_header=False)
            uvicorn.Server(config_uvicorn).run(sockets=[listener])
    finally:
        listener.close()
