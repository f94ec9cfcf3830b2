"""``agentgate mcp-proxy``: put the gate in front of any MCP server.

The upstream server is a command run over stdio (after ``--``) or a
streamable HTTP URL (``--upstream``). The proxy listens to its client over
stdio (the default, for clients that launch a command) or over streamable
HTTP (``--listen http://127.0.0.1:PORT/mcp``), either way round. Every
``tools/call`` passes the gate (``enforcement.adapters.mcp_proxy``), in one
session for the declared ``--purpose``.

Exit codes: 0 after a clean stop; 2 for usage errors such as an unreadable
configuration, a bad listen address, or an upstream that cannot be reached
at start.
"""

from __future__ import annotations

import hmac
import logging
import socket
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from enforcement.gate_cli import CommandError, read_token

__all__ = ["mcp_proxy"]

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "AGENTGATE_MCP_TOKEN"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--config", "config_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The gate's configuration (TOML), as for agentgate gate serve.")
@click.option("--purpose", required=True,
              help="The agent run's declared purpose; every call is judged "
                   "against it.")
@click.option("--principal-value", "principal_values", multiple=True,
              metavar="VALUE",
              help="A value the principal supplied outside the purpose text "
                   "(an account, an address); repeat for several.")
@click.option("--upstream", "upstream_url", default=None, metavar="URL",
              help="Streamable HTTP URL of the MCP server to gate; without it, "
                   "the command after -- is run over stdio.")
@click.option("--listen", default="stdio", show_default=True,
              metavar="stdio|http://HOST:PORT/PATH",
              help="How clients reach the proxy: its stdin and stdout, or "
                   "streamable HTTP at this URL (port 0 picks a free one).")
@click.option("--token-file", default=None, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help=f"With --listen http: file holding the bearer token clients "
                   f"must send (mode 0600) [default: ${TOKEN_VARIABLE}]; "
                   f"required, since any local process can reach a loopback "
                   f"address.")
@click.option("--approval-wait", default=0.0, show_default=True,
              type=click.FloatRange(0, 86400),
              help="Seconds a held call waits for approvers before it is "
                   "returned as refused; 0 returns it at once, and the same call "
                   "runs once approved.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Level of the proxy's log messages (standard error).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def mcp_proxy(config_path: Path, purpose: str, principal_values: tuple[str, ...],
              upstream_url: str | None, listen: str, token_file: Path | None,
              approval_wait: float, log_level: str, command: tuple[str, ...]) -> None:
    """Gate every tools/call of the MCP server COMMAND (or --upstream URL)."""
    try:
        import anyio

        from enforcement.adapters import mcp_proxy as _  # noqa: F401
    except ImportError as err:
        raise CommandError(
            f"agentgate mcp-proxy needs the mcp extra, but {err.name} is not "
            "installed; run: pip install 'agentgate-runtime[mcp]'", 2) from err
    from enforcement.errors import GateError
    from enforcement.gate_config import load_gate_config

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (upstream_url is None) == (not command):
        raise CommandError("name the MCP server to gate: either --upstream URL "
                           "or a command after --, not both", 2)
    address = _listen_address(listen)
    token = None
    if address is not None:
        # Required on loopback too: any local process could otherwise call
        # tools with the agent's delegation.
        token = read_token(token_file, TOKEN_VARIABLE, "client token")
    elif token_file is not None:
        raise CommandError("--token-file is for --listen http://...; a stdio "
                           "client is the process that started the proxy", 2)
    try:
        config = load_gate_config(config_path)
    except GateError as err:
        raise CommandError(str(err), 2) from err

    target = upstream_url if upstream_url is not None else _stdio_target(command)
    try:
        anyio.run(_serve, config, purpose, principal_values, approval_wait,
                  target, address, token)
    except KeyboardInterrupt:
        pass


def _listen_address(listen: str) -> tuple[str, int, str] | None:
    """Return (host, port, path) for an HTTP listen URL, None for stdio."""
    if listen == "stdio":
        return None
    parts = urlsplit(listen)
    try:
        port = parts.port
    except ValueError as err:
        raise CommandError(f"--listen {listen!r}: invalid port; expected "
                           "http://HOST:PORT/PATH", 2) from err
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise CommandError(f"--listen {listen!r}: expected stdio or "
                           "http://HOST:PORT/PATH", 2)
    return parts.hostname, port, parts.path or "/mcp"


def _stdio_target(command: tuple[str, ...]) -> Any:
    from mcp import StdioServerParameters

    return StdioServerParameters(command=command[0], args=list(command[1:]))


async def _serve(config: Any, purpose: str, principal_values: tuple[str, ...],
                 approval_wait: float, target: Any,
                 address: tuple[str, int, str] | None, token: str | None) -> None:
    from mcp import Client

    from enforcement.adapters.mcp_proxy import GatedTools
    from enforcement.alignment import Purpose
    from enforcement.errors import GateError

    try:
        opened = config.open()
    except GateError as err:
        raise CommandError(str(err), 2) from err
    async with AsyncExitStack() as stack:
        stack.callback(opened.close)
        session = opened.gate.session(
            Purpose(purpose, principal_values=principal_values),
            approval_wait=approval_wait)
        try:
            upstream = await stack.enter_async_context(Client(target))
        except Exception as err:  # noqa: BLE001 - any failure to connect
            raise CommandError(f"cannot connect to the MCP server {_name(target)}: "
                               f"{type(err).__name__}: {err}", 2) from err
        server = GatedTools(session, upstream).server()
        logger.info("gating %s in session %s", _name(target), session.id)
        if address is None:
            await _serve_stdio(server)
        else:
            await _serve_http(server, address, token)


def _name(target: Any) -> str:
    if isinstance(target, str):
        return target
    return " ".join([target.command, *target.args])


async def _serve_stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream,
                         server.create_initialization_options())


async def _serve_http(server: Any, address: tuple[str, int, str],
                      token: str | None) -> None:
    import uvicorn

    host, port, path = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family)
    except OSError as err:
        raise CommandError(f"cannot listen on {host} port {port}: {err.strerror}; "
                           "choose another --listen address", 2) from err
    app: Any = server.streamable_http_app(streamable_http_path=path, host=host)
    if token is not None:
        app = _BearerCheck(app, token)
    bound, bound_port = listener.getsockname()[:2]
    shown = f"[{bound}]" if family == socket.AF_INET6 else bound
    if host not in _LOOPBACK:
        click.echo(f"warning: listening on {host} without TLS; put a TLS proxy "
                   "in front", err=True)
    click.echo(f"serving MCP on http://{shown}:{bound_port}{path}", err=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            server_header=False)
    try:
        await uvicorn.Server(config).serve(sockets=[listener])
    finally:
        listener.close()


class _BearerCheck:
    """Return 401 to HTTP requests without ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers", ())).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate",
                                         b'Bearer realm="agentgate"')]})
                await send({"type": "http.response.body",
                            "body": b'{"error":"unauthorized","detail":"missing '
                                    b'or wrong bearer token"}'})
                return
        await self.app(scope, receive, send)
