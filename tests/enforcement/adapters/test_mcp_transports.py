"""``agentgate mcp-proxy`` as a real process: an MCP client session reaches a
real MCP server through it over stdio and over streamable HTTP on 127.0.0.1,
and the calls are sealed in the gate's log on disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp", reason="install the mcp extra")
pytest.importorskip("uvicorn", reason="install the server extra")

import httpx  # noqa: E402
import httpx2  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from enforcement.cli import main  # noqa: E402
from tests.enforcement.adapters.conftest import IBAN, PURPOSE, RENT  # noqa: E402
from tests.enforcement.adapters.test_mcp_proxy import (  # noqa: E402
    CountingServer,
    text_of,
)
from tests.enforcement.test_gate_http import write_gate_files  # noqa: E402

AGENTGATE = str(Path(sys.executable).parent / "agentgate")
SCOPE = {"capabilities": [{"tool": "get_balance"}, {"tool": "send_money"}]}
TOKEN = "mcp-client-token-0123456789"


@pytest.fixture
def gate_files(tmp_path):
    return write_gate_files(tmp_path / "gate", scope=SCOPE)


@pytest.fixture
def upstream(tmp_path) -> CountingServer:
    return CountingServer(tmp_path)


def proxy_arguments(gate_files, *extra: str) -> list[str]:
    return ["mcp-proxy", "--config", str(gate_files.config), "--purpose", PURPOSE,
            *extra]


async def exercise(client: Client) -> tuple[list[str], object, object]:
    """List the tools, make one allowed and one denied call."""
    listed = await client.list_tools()
    allowed = await client.call_tool("send_money", RENT)
    denied = await client.call_tool("delete_file", {"path": "/home/user/notes"})
    return [tool.name for tool in listed.tools], allowed, denied


def check_exercised(outcome, upstream: CountingServer, gate_files) -> None:
    names, allowed, denied = outcome
    assert names == ["get_balance", "send_money", "delete_file", "get_statement"]
    assert allowed.is_error is False
    assert text_of(allowed) == f"sent 900.0 to {IBAN}"
    assert denied.is_error is True
    assert "- delegation.scope:" in text_of(denied)
    assert dict(upstream.runs) == {"send_money": 1}
    records = gate_files.records()
    assert [(r["tool"], r["verdict"]) for r in records if r["type"] == "decision"] == [
        ("send_money", "allow"), ("delete_file", "deny")]
    assert [r["status"] for r in records if r["type"] == "outcome"] == ["ok"]


@contextmanager
def process(arguments: list[str], pattern: str,
            env: dict[str, str] | None = None) -> Iterator[str]:
    """Start a process and yield the first match of ``pattern`` in its output."""
    child = subprocess.Popen(arguments, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                # Keep reading, so that a full pipe never blocks the process.
                threading.Thread(target=child.stdout.read, daemon=True).start()
                yield match.group(1)
                return
        raise AssertionError(f"{arguments[0]} did not print {pattern!r}: "
                             f"{''.join(seen)}")
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def test_stdio_client_stdio_server(gate_files, upstream):
    proxy = StdioServerParameters(command=AGENTGATE, args=proxy_arguments(
        gate_files, "--", *[upstream.stdio().command, *upstream.stdio().args]))

    async def main_():
        async with Client(proxy) as client:
            return await exercise(client)

    check_exercised(anyio.run(main_), upstream, gate_files)


def test_http_client_http_server(gate_files, upstream):
    server = [sys.executable, str(upstream.script), str(upstream.runs_file), "--http"]
    with process(server, r"^(\d+)$") as port:
        arguments = [AGENTGATE, *proxy_arguments(
            gate_files, "--upstream", f"http://127.0.0.1:{port}/mcp",
            "--listen", "http://127.0.0.1:0/mcp")]
        with process(arguments, r"serving MCP on (http://\S+)",
                     env={"AGENTGATE_MCP_TOKEN": TOKEN}) as url:
            async def main_():
                headers = {"Authorization": f"Bearer {TOKEN}"}
                async with httpx2.AsyncClient(headers=headers) as http:
                    async with Client(streamable_http_client(url, http_client=http)) as (
                            client):
                        return await exercise(client)

            outcome = anyio.run(main_)

    check_exercised(outcome, upstream, gate_files)


def test_http_listen_without_token_exits_2(gate_files, upstream):
    # A loopback address is no exception: any local process could reach it.
    result = subprocess.run(
        [AGENTGATE, *proxy_arguments(gate_files, "--listen", "http://127.0.0.1:0/mcp",
                                     "--", sys.executable, str(upstream.script),
                                     str(upstream.runs_file))],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "AGENTGATE_MCP_TOKEN"})

    assert result.returncode == 2
    assert "no client token" in result.stderr
    assert "Traceback" not in result.stderr


def test_http_client_stdio_server(gate_files, upstream):
    arguments = [AGENTGATE, *proxy_arguments(
        gate_files, "--listen", "http://127.0.0.1:0/mcp", "--",
        sys.executable, str(upstream.script), str(upstream.runs_file))]
    with process(arguments, r"serving MCP on (http://\S+)",
                 env={"AGENTGATE_MCP_TOKEN": TOKEN}) as url:
        anonymous = httpx.post(url, json={"jsonrpc": "2.0", "id": 1,
                                          "method": "tools/list"})

        async def main_():
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient(headers=headers) as http:
                async with Client(streamable_http_client(url, http_client=http)) as (
                        client):
                    return await exercise(client)

        outcome = anyio.run(main_)

    assert anonymous.status_code == 401
    check_exercised(outcome, upstream, gate_files)


def test_upstream_missing_exits_2(gate_files, tmp_path):
    result = CliRunner().invoke(main, proxy_arguments(
        gate_files, "--", str(tmp_path / "no-such-server")))

    assert result.exit_code == 2
    assert "cannot connect to the MCP server" in result.output


@pytest.mark.parametrize("extra, message", [
    ([], "either --upstream URL or a command after --"),
    (["--upstream", "http://127.0.0.1:1/mcp", "--", "server"],
     "either --upstream URL or a command after --"),
    (["--listen", "tcp://127.0.0.1:1", "--", "server"], "expected stdio or http://"),
    (["--token-file", "token", "--", "server"], "--token-file is for --listen http"),
])
def test_usage_errors_exit_2(gate_files, extra, message):
    result = CliRunner().invoke(main, proxy_arguments(gate_files, *extra))

    assert result.exit_code == 2
    assert message in result.output
