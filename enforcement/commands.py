"""``agentgate approvals ...`` and ``agentgate disclose``.

Both read the gate's private SQLite file (the vault, which also keeps the
approval requests), so they run on the gate's host or on a copy of that file.

Exit codes: 0 on success; 1 when an approval is rejected or a commitment is
not found; 2 for usage errors such as a missing file or an unreadable key.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from enforcement.errors import ApprovalError, ConfigError, InvalidRequest

__all__ = ["approvals", "disclose"]

_TOKEN_VARIABLE = "AGENTGATE_APPROVALS_TOKEN"


class CommandError(click.ClickException):
    """A failure reported as ``Error: <message>`` with a chosen exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def _reported_errors() -> Iterator[None]:
    try:
        yield
    except ApprovalError as err:
        raise CommandError(str(err), 1) from err
    except (ConfigError, InvalidRequest) as err:
        raise CommandError(str(err), 2) from err


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True, ensure_ascii=False))


_store_option = click.option(
    "--store", "store_path", required=True, metavar="PATH",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The gate's private SQLite file (its vault), which contains the requests.",
)
_key_option = click.option(
    "--key", "key_path", required=True, metavar="PATH",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The approver's signer key file (mode 0600).",
)


def _open_store(path: Path):
    from enforcement.approvals_store import ApprovalStore

    return ApprovalStore.open(str(path))


@click.group()
def approvals() -> None:
    """List held calls and approve or deny them."""


@approvals.command("list")
@_store_option
@click.option("--status", default="pending", show_default=True,
              type=click.Choice(["pending", "used", "denied", "timed_out",
                                 "expired", "all"]),
              help="Which requests to list.")
def list_requests(store_path: Path, status: str) -> None:
    """Print one JSON object per request, with the held call's raw arguments."""
    with _reported_errors():
        store = _open_store(store_path)
        try:
            for request in store.requests(None if status == "all" else status):
                _echo_json(store.view(request.id))
        finally:
            store.close()


def _sign(store_path: Path, key_path: Path, request_id: str, verdict: str,
          expiry_seconds: float | None, now_text: str | None) -> None:
    from enforcement.approvals import expiry_after, sign_approval, submit_approval
    from enforcement.identity import Identity
    from enforcement.timeutil import parse_time, utc_now

    with _reported_errors():
        identity = Identity.load(key_path)
        store = _open_store(store_path)
        try:
            now = parse_time(now_text, "--now") if now_text else utc_now()
            expiry = (expiry_after(now, expiry_seconds)
                      if expiry_seconds is not None else None)
            approval = sign_approval(identity, store.request(request_id), verdict,
                                     now, expiry)
            submit_approval(store, approval, now)
        finally:
            store.close()
    _echo_json(approval.to_json())


_expiry_option = click.option(
    "--expiry-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Seconds the approval stays valid [default: until the request expires].",
)
_now_option = click.option(
    "--now", "now_text", default=None, metavar="TIME", hidden=True,
    help="Sign as of this RFC 3339 UTC time instead of the system clock.",
)


@approvals.command()
@click.argument("request_id")
@_store_option
@_key_option
@_expiry_option
@_now_option
def approve(request_id: str, store_path: Path, key_path: Path,
            expiry_seconds: float | None, now_text: str | None) -> None:
    """Sign an approval of REQUEST_ID and store it for the gate."""
    _sign(store_path, key_path, request_id, "approve", expiry_seconds, now_text)


@approvals.command()
@click.argument("request_id")
@_store_option
@_key_option
@_expiry_option
@_now_option
def deny(request_id: str, store_path: Path, key_path: Path,
         expiry_seconds: float | None, now_text: str | None) -> None:
    """Sign a denial of REQUEST_ID and store it for the gate."""
    _sign(store_path, key_path, request_id, "deny", expiry_seconds, now_text)


@approvals.command()
@_store_option
@click.option("--key", "key_path", default=None, metavar="PATH",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Approver signer key for the approve and deny routes; without "
                   "it the server only takes approvals signed elsewhere.")
@click.option("--token-file", default=None, metavar="PATH",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help=f"File holding the bearer token [default: ${_TOKEN_VARIABLE}].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port to listen on.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Level of the server's log messages (standard error).")
def serve(store_path: Path, key_path: Path | None, token_file: Path | None,
          host: str, port: int, log_level: str) -> None:
    """Serve the approval routes over HTTP (needs the server extra)."""
    try:
        import uvicorn

        from enforcement.approvals_http import create_app
    except ImportError as err:
        raise CommandError(
            f"{err}; install the server extra: pip install 'agentgate-runtime[server]'",
            2,
        ) from err
    from enforcement.gate_cli import read_token
    from enforcement.identity import Identity

    # Mode 0600 or stricter and 16 to 1024 visible characters, as the gate's.
    token = read_token(token_file, _TOKEN_VARIABLE, "approvers' token")
    with _reported_errors():
        signer = Identity.load(key_path) if key_path is not None else None
        app = create_app(_open_store(store_path), token, signer)
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The socket is bound here, so that --port 0 can report the port it got.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family)
    except OSError as err:
        raise CommandError(f"cannot listen on {host} port {port}: {err.strerror}; "
                           "choose another --host or --port", 2) from err
    try:
        address, bound_port = listener.getsockname()[:2]
        shown = f"[{address}]" if family == socket.AF_INET6 else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            click.echo(f"warning: listening on {host} without TLS, so the token "
                       "crosses the network in clear text; put a TLS proxy in "
                       "front", err=True)
        click.echo(f"serving approvals on http://{shown}:{bound_port}", err=True)
        config = uvicorn.Config(app, log_level=log_level, access_log=False,
                                server_header=False)
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


@click.command()
@click.option("--vault", "vault_path", required=True, metavar="PATH",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The gate's private SQLite file.")
@click.option("--commitment", default=None, metavar="HEX",
              help="The commitment to open, as sealed in a record.")
@click.option("--record", "record_id", default=None, metavar="ID",
              help="Record id (d-..., o-..., q-...); use with --argument.")
@click.option("--argument", "name", default=None, metavar="NAME",
              help="Argument name within --record ('result' for an outcome).")
def disclose(vault_path: Path, commitment: str | None, record_id: str | None,
             name: str | None) -> None:
    """Print the opening of one commitment (value and salt) as JSON.

    An auditor recomputes SHA-256(salt || JCS(value)) and compares it with
    the commitment sealed in the record.
    """
    from enforcement.vault import ArgumentVault, check_opening

    if (commitment is None) == (record_id is None):
        raise click.UsageError("pass either --commitment or --record with --argument")
    if record_id is not None and name is None:
        raise click.UsageError("--record needs --argument NAME")
    if commitment is not None and name is not None:
        raise click.UsageError("--argument goes with --record, not --commitment")
    with _reported_errors():
        vault = ArgumentVault(str(vault_path))
    try:
        if commitment is None:
            commitment = vault.find(record_id, name)
        record_id = vault.record_of(commitment)
        name, salt, value = vault.open(commitment)
    except KeyError as err:
        raise CommandError(
            f"no opening for {err.args[0]} in {vault_path}; check the record id, "
            "argument name or commitment", 1,
        ) from err
    finally:
        vault.close()
    if not check_opening(commitment, salt, value):
        raise CommandError(
            f"the stored opening of {commitment} does not match it; the vault is "
            "damaged", 1,
        )
    _echo_json({"commitment": commitment, "record": record_id, "argument": name,
                "value": value, "salt": salt.hex()})
