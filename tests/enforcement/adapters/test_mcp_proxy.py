"""The MCP proxy in process: a real MCP server started over stdio, a real MCP
client session on the proxy's server, and a real gate on a real log.

The upstream server counts the runs of each tool in a file, so a test can
tell that a refused call never reached it.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp", reason="install the mcp extra")

from mcp import Client, StdioServerParameters  # noqa: E402

from enforcement.adapters.mcp_proxy import DECISION_META_KEY, GatedTools  # noqa: E402
from tests.enforcement.adapters.conftest import (  # noqa: E402
    IBAN,
    LARGE,
    PURPOSE,
    RENT,
    approve,
    verdicts,
)
from tests.enforcement.conftest import verify  # noqa: E402

# A tiny MCP server built with the mcp package's MCPServer. Each tool appends
# its name to the file given as the first argument. With --http, it serves
# streamable HTTP on a free 127.0.0.1 port and prints the port first.
SERVER = '''
import socket
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

runs = Path(sys.argv[1])
app = MCPServer("counting-bank")


def count(tool):
    with runs.open("a") as handle:
        handle.write(tool + "\\n")


@app.tool()
def get_balance(account: str) -> str:
    """Read the balance of the user's bank account."""
    count("get_balance")
    return f"balance of {account}: 1200"


@app.tool()
def send_money(recipient: str, amount: float) -> str:
    """Send money to a recipient's IBAN."""
    count("send_money")
    return f"sent {amount} to {recipient}"


@app.tool()
def delete_file(path: str) -> str:
    """Delete a file from the user's disk."""
    count("delete_file")
    return f"deleted {path}"


@app.tool()
def get_statement(month: str) -> str:
    """Read the account statement of a month."""
    count("get_statement")
    raise ToolError(f"no statement for {month}")


if __name__ == "__main__":
    if sys.argv[2:] == ["--http"]:
        import uvicorn

        listener = socket.create_server(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
        config = uvicorn.Config(app.streamable_http_app(), log_level="warning")
        uvicorn.Server(config).run(sockets=[listener])
    else:
        app.run()
'''


class CountingServer:
    """The test MCP server's script and the file its tools count runs in."""

    def __init__(self, directory: Path) -> None:
        self.script = directory / "counting_server.py"
        self.script.write_text(SERVER)
        self.runs_file = directory / "runs.txt"
        self.runs_file.touch()

    def stdio(self) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable, args=[str(self.script), str(self.runs_file)])

    @property
    def runs(self) -> Counter:
        return Counter(self.runs_file.read_text().split())


@pytest.fixture
def upstream(tmp_path) -> CountingServer:
    return CountingServer(tmp_path)


def run_proxied(harness, upstream: CountingServer, body, *, mode: str = "auto"):
    """Run ``body(client, session)`` with a client on the proxy of ``upstream``."""
    session = harness.gate.session(PURPOSE)

    async def main():
        async with Client(upstream.stdio()) as server_side:
            proxy = GatedTools(session, server_side).server()
            async with Client(proxy, mode=mode) as client:
                return await body(client, session)

    return anyio.run(main)


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content)


def test_tools_listed_unchanged(payments, upstream):
    async def body(client, session):
        return await client.list_tools()

    listed = run_proxied(payments, upstream, body)

    names = [tool.name for tool in listed.tools]
    assert names == ["get_balance", "send_money", "delete_file", "get_statement"]
    send = listed.tools[1]
    assert send.description == "Send money to a recipient's IBAN."
    assert sorted(send.input_schema["properties"]) == ["amount", "recipient"]


def test_profiles_derived_from_tool_list(payments, upstream):
    async def body(client, session):
        await client.list_tools()

    run_proxied(payments, upstream, body)

    profile = payments.gate.profile_for("send_money", {})
    assert "financial" in profile.labels
    assert profile.role("recipient") == "recipient"
    assert "destructive" in payments.gate.profile_for("delete_file", {}).labels


def test_allowed_call_forwarded_and_sealed(payments, upstream):
    async def body(client, session):
        return await client.call_tool("send_money", RENT), session

    result, session = run_proxied(payments, upstream, body)

    assert result.is_error is False
    assert text_of(result) == f"sent 900.0 to {IBAN}"
    assert upstream.runs["send_money"] == 1
    assert verdicts(payments) == [("send_money", "allow")]
    [decision] = session.decisions
    assert verify(decision.receipt).index == decision.index
    [outcome] = payments.records_of("outcome")
    assert outcome["decision"] == decision.id
    assert outcome["status"] == "ok"


def test_denied_call_returned_as_tool_error(payments, upstream):
    async def body(client, session):
        return await client.call_tool("delete_file", {"path": "/home/user/notes"})

    result = run_proxied(payments, upstream, body)

    assert result.is_error is True
    assert "AgentGate denied this call to delete_file" in text_of(result)
    assert "- delegation.scope:" in text_of(result)
    assert result.meta[DECISION_META_KEY]["verdict"] == "deny"
    assert upstream.runs["delete_file"] == 0
    assert verdicts(payments) == [("delete_file", "deny")]


def test_held_call_returned_with_reasons(payments, upstream):
    async def body(client, session):
        return await client.call_tool("send_money", LARGE)

    result = run_proxied(payments, upstream, body)

    assert result.is_error is True
    assert "held this call to send_money" in text_of(result)
    assert "- value.large-amount:" in text_of(result)
    assert result.meta[DECISION_META_KEY]["reasons"][0]["rule"] == (
        "value.large-amount")
    assert upstream.runs["send_money"] == 0


def test_approved_call_runs_when_made_again(approving, upstream):
    async def body(client, session):
        first = await client.call_tool("send_money", LARGE)
        request = first.meta[DECISION_META_KEY]["request"]
        approve(approving, request)
        return first, await client.call_tool("send_money", LARGE)

    first, second = run_proxied(approving, upstream, body)

    assert "approval request q-" in text_of(first)
    assert second.is_error is False
    assert upstream.runs["send_money"] == 1
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]


def test_parallel_calls_each_decided(payments, upstream):
    async def body(client, session):
        results = []

        async def call(account):
            results.append(await client.call_tool("get_balance", {"account": account}))

        async with anyio.create_task_group() as group:
            for account in ("checking", "savings", "joint"):
                group.start_soon(call, account)
        return results, session

    results, session = run_proxied(payments, upstream, body)

    assert [result.is_error for result in results] == [False, False, False]
    assert upstream.runs["get_balance"] == 3
    indexes = [decision.index for decision in session.decisions]
    assert len(set(indexes)) == 3
    for decision in session.decisions:
        assert verify(decision.receipt).record["verdict"] == "allow"


def test_unreachable_gate_forwards_nothing(offline, upstream):
    async def body(client, session):
        return await client.call_tool("send_money", RENT)

    result = run_proxied(offline, upstream, body)

    assert result.is_error is True
    assert "could not seal its decision" in text_of(result)
    assert "127.0.0.1:9 refused" in text_of(result)
    assert upstream.runs.total() == 0


def test_upstream_tool_error_passed_through(harness, upstream):
    async def body(client, session):
        return await client.call_tool("get_statement", {"month": "March"})

    result = run_proxied(harness, upstream, body)

    assert result.is_error is True
    assert "no statement for March" in text_of(result)
    assert upstream.runs["get_statement"] == 1
    [outcome] = harness.records_of("outcome")
    assert outcome["status"] == "error"
    assert outcome["error"] == "McpToolError"


def test_unlisted_tool_profile_learned(payments, upstream):
    async def body(client, session):
        return await client.call_tool("send_money", RENT)

    run_proxied(payments, upstream, body)

    assert "financial" in payments.gate.profile_for("send_money", {}).labels


def test_legacy_protocol_gated(payments, upstream):
    async def body(client, session):
        allowed = await client.call_tool("get_balance", {"account": "checking"})
        denied = await client.call_tool("delete_file", {"path": "/tmp/x"})
        return client.protocol_version, allowed, denied

    version, allowed, denied = run_proxied(payments, upstream, body, mode="legacy")

    assert version == "2025-11-25"
    assert allowed.is_error is False
    assert denied.is_error is True
    assert upstream.runs == Counter({"get_balance": 1})
