"""The AutoGen adapter: a real AssistantAgent whose model is AutoGen's replay
chat completion client emitting tool calls, over a real gate on a real log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("autogen_agentchat", reason="install the autogen extra")

from autogen_agentchat.agents import AssistantAgent  # noqa: E402
from autogen_agentchat.messages import ToolCallExecutionEvent  # noqa: E402
from autogen_core import CancellationToken, FunctionCall  # noqa: E402
from autogen_core.models import CreateResult, RequestUsage  # noqa: E402
from autogen_core.tools import FunctionTool  # noqa: E402
from autogen_ext.models.replay import ReplayChatCompletionClient  # noqa: E402

from enforcement.adapters.autogen import GatedTool, ToolCallRefused, gate_tools  # noqa: E402
from enforcement.errors import ConfigError, NoSession  # noqa: E402
from tests.enforcement.adapters.conftest import (  # noqa: E402
    IBAN,
    LARGE,
    PURPOSE,
    RENT,
    approve,
    assert_receipts_verify,
    verdicts,
)

MODEL_INFO = {"function_calling": True, "vision": False, "json_output": False,
              "family": "unknown", "structured_output": False}


def make_tools(runs):
    def get_balance() -> str:
        """Return the balance of the user's bank account."""
        runs.hit("get_balance")
        return "balance: 1200"

    def send_money(recipient: str, amount: float) -> str:
        """Send money to a recipient's IBAN."""
        runs.hit("send_money")
        return f"sent {amount} to {recipient}"

    def delete_file(path: str) -> str:
        """Delete a file from the user's disk."""
        runs.hit("delete_file")
        return f"deleted {path}"

    return [get_balance, send_money, delete_file]


def calls(*pairs: tuple[str, dict[str, Any]]) -> CreateResult:
    """Return one model message that requests the given tool calls."""
    return CreateResult(
        finish_reason="function_calls", usage=RequestUsage(0, 0), cached=False,
        content=[FunctionCall(id=f"call-{n}", name=name, arguments=json.dumps(args))
                 for n, (name, args) in enumerate(pairs)])


def run_agent(harness, runs, *turns: CreateResult, session=None):
    """Run an AssistantAgent for one task and return its tool results."""
    model = ReplayChatCompletionClient(list(turns), model_info=MODEL_INFO)
    agent = AssistantAgent("payer", model,
                           tools=gate_tools(make_tools(runs), harness.gate,
                                            session=session))

    async def main():
        if session is not None:
            return await agent.run(task="pay the rent")
        with harness.gate.session(PURPOSE):
            return await agent.run(task="pay the rent")

    result = asyncio.run(main())
    return [item for message in result.messages
            if isinstance(message, ToolCallExecutionEvent)
            for item in message.content]


def test_allowed_call_runs(payments, runs):
    [result] = run_agent(payments, runs, calls(("send_money", RENT)))

    assert result.is_error is False
    assert result.content == f"sent 900.0 to {IBAN}"
    assert runs["send_money"] == 1
    assert verdicts(payments) == [("send_money", "allow")]
    [outcome] = payments.records_of("outcome")
    assert outcome["status"] == "ok"


def test_denied_call_becomes_error_result(payments, runs):
    [result] = run_agent(payments, runs, calls(("delete_file", {"path": "/etc"})))

    assert result.is_error is True
    assert result.content.startswith("AgentGate denied this call to delete_file")
    assert "- delegation.scope:" in result.content
    assert runs.total == 0
    assert verdicts(payments) == [("delete_file", "deny")]


def test_held_call_names_request(approving, runs):
    [result] = run_agent(approving, runs, calls(("send_money", LARGE)))

    assert result.is_error is True
    assert "until the approvers sign approval request q-" in result.content
    assert "- value.large-amount:" in result.content
    assert runs.total == 0


def test_approved_call_runs_when_made_again(approving, runs):
    session = approving.gate.session(PURPOSE)
    [held] = run_agent(approving, runs, calls(("send_money", LARGE)), session=session)
    approve(approving, session.decisions[-1].request)

    [result] = run_agent(approving, runs, calls(("send_money", LARGE)),
                         session=session)

    assert held.is_error is True
    assert result.is_error is False
    assert runs["send_money"] == 1
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]


def test_parallel_calls_each_decided(payments, runs):
    session = payments.gate.session(PURPOSE)

    results = run_agent(payments, runs, calls(
        ("get_balance", {}), ("send_money", RENT), ("delete_file", {"path": "/x"})),
        session=session)

    assert [result.is_error for result in results] == [False, False, True]
    assert runs.counts == {"get_balance": 1, "send_money": 1}
    assert sorted(verdicts(payments)) == [
        ("delete_file", "deny"), ("get_balance", "allow"), ("send_money", "allow")]
    assert_receipts_verify(payments, session)


def test_unreachable_gate_runs_nothing(offline, runs):
    results = run_agent(offline, runs, calls(("get_balance", {}),
                                             ("send_money", RENT)))

    assert [result.is_error for result in results] == [True, True]
    assert "could not seal its decision" in results[0].content
    assert "127.0.0.1:9 refused" in results[0].content
    assert runs.total == 0


def test_run_json_outside_session_raises(payments, runs):
    [tool] = gate_tools(make_tools(runs)[:1], payments.gate)

    with pytest.raises(NoSession, match="outside a session of its gate"):
        asyncio.run(tool.run_json({}, CancellationToken()))

    assert runs.total == 0


def test_run_json_refusal_raises_with_reasons(payments, runs):
    tool = GatedTool(FunctionTool(make_tools(runs)[2], description="Delete a file."),
                     payments.gate)

    async def main():
        with payments.gate.session(PURPOSE):
            await tool.run_json({"path": "/etc"}, CancellationToken())

    with pytest.raises(ToolCallRefused) as caught:
        asyncio.run(main())

    assert caught.value.data["verdict"] == "deny"
    assert caught.value.data["reasons"][0]["rule"] == "delegation.scope"
    assert runs.total == 0


def test_wrapped_tool_keeps_schema(payments, runs):
    function = FunctionTool(make_tools(runs)[1], description="Send money.")

    gated = GatedTool(function, payments.gate)

    assert gated.schema == function.schema
    assert gated.name == "send_money"


def test_judged_arguments_include_defaults(harness, runs):
    def transfer(recipient: str, amount: float, currency: str = "EUR") -> str:
        """Send money to a recipient's IBAN."""
        runs.hit("transfer")
        return "sent"

    [tool] = gate_tools([transfer], harness.gate)

    async def main():
        with harness.gate.session(PURPOSE) as session:
            await tool.run_json({"recipient": IBAN, "amount": "900"},
                                CancellationToken())
            return session

    session = asyncio.run(main())
    [decision] = session.decisions
    assert sorted(decision.record["arguments"]) == ["amount", "currency", "recipient"]
    opened = {name: harness.vault.open(commitment)[2]
              for name, commitment in decision.record["arguments"].items()}
    assert opened == {"recipient": IBAN, "amount": 900.0, "currency": "EUR"}


def test_non_tool_rejected(payments):
    with pytest.raises(ConfigError, match="expected a tool or a function"):
        gate_tools(["send_money"], payments.gate)
