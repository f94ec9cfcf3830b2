"""The pydantic-ai adapter: a real Agent driven by pydantic-ai's FunctionModel,
which emits tool calls, over a real gate on a real SQLite log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from enforcement.adapters.pydantic_ai import GateCapability
from enforcement.errors import NoSession
from tests.enforcement.adapters.conftest import (
    IBAN,
    LARGE,
    PURPOSE,
    RENT,
    approve,
    assert_receipts_verify,
    verdicts,
)


def scripted_model(calls: list[tuple[str, dict, str]]) -> FunctionModel:
    """A model that emits ``calls`` in one response, then answers "done"."""

    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        answered = any(isinstance(part, ToolReturnPart)
                       for message in messages for part in message.parts)
        if answered:
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[
            ToolCallPart(name, arguments, tool_call_id=call_id)
            for name, arguments, call_id in calls
        ])

    return FunctionModel(respond)


def build_agent(harness, runs, calls) -> Agent:
    agent = Agent(scripted_model(calls), capabilities=[GateCapability(harness.gate)],
                  output_type=[str, DeferredToolRequests])

    @agent.tool_plain
    def get_balance() -> str:
        """Return the balance of the user's bank account."""
        runs.hit("get_balance")
        return "balance: 1200"

    @agent.tool_plain
    def send_money(recipient: str, amount: float) -> str:
        """Send money to a recipient's IBAN."""
        runs.hit("send_money")
        return f"sent {amount} to {recipient}"

    @agent.tool_plain
    def delete_file(path: str) -> str:
        """Delete a file from the user's disk."""
        runs.hit("delete_file")
        return f"deleted {path}"

    return agent


def returns(result) -> dict[str, tuple[str, str]]:
    """Return (outcome, content) of each tool result the model saw, by call id."""
    return {part.tool_call_id: (part.outcome, str(part.content))
            for message in result.all_messages() for part in message.parts
            if isinstance(part, ToolReturnPart)}


def test_allowed_call_runs_tool_once(payments, runs):
    agent = build_agent(payments, runs, [("send_money", RENT, "c1")])

    with payments.gate.session(PURPOSE) as session:
        result = agent.run_sync(PURPOSE)

    assert returns(result) == {"c1": ("success", f"sent 900.0 to {IBAN}")}
    assert result.output == "done"
    assert runs["send_money"] == 1
    assert verdicts(payments) == [("send_money", "allow")]
    assert len(payments.records_of("outcome")) == 1
    assert_receipts_verify(payments, session)


def test_denied_call_fails_with_reasons(payments, runs):
    agent = build_agent(payments, runs, [("delete_file", {"path": "/etc/hosts"}, "c1")])

    with payments.gate.session(PURPOSE):
        result = agent.run_sync(PURPOSE)

    outcome, content = returns(result)["c1"]
    assert outcome == "failed"
    assert content.startswith(
        "AgentGate denied this call to delete_file, so the tool did not run.")
    assert "\n- delegation.scope: " in content
    assert runs.total == 0
    assert verdicts(payments) == [("delete_file", "deny")]


def test_parallel_calls_each_get_decision(payments, runs):
    calls = [("get_balance", {}, "c1"), ("send_money", RENT, "c2"),
             ("delete_file", {"path": "/tmp/report"}, "c3")]
    agent = build_agent(payments, runs, calls)

    async def main():
        async with payments.gate.session(PURPOSE) as session:
            return await agent.run(PURPOSE), session

    result, session = asyncio.run(main())

    seen = returns(result)
    assert seen["c1"] == ("success", "balance: 1200")
    assert seen["c2"] == ("success", f"sent 900.0 to {IBAN}")
    assert seen["c3"][0] == "failed"
    assert runs.counts == {"get_balance": 1, "send_money": 1}
    assert sorted(verdicts(payments)) == [
        ("delete_file", "deny"), ("get_balance", "allow"), ("send_money", "allow")]
    assert_receipts_verify(payments, session)


def test_unreachable_ledger_never_runs_tool(offline, runs):
    agent = build_agent(offline, runs, [("send_money", RENT, "c1"),
                                        ("get_balance", {}, "c2")])

    with offline.gate.session(PURPOSE):
        result = agent.run_sync(PURPOSE)

    for outcome, content in returns(result).values():
        assert outcome == "failed"
        assert "could not seal its decision" in content
        assert "ledger at 127.0.0.1:9 refused" in content
    assert runs.total == 0


def test_call_outside_session_raises(payments, runs):
    agent = build_agent(payments, runs, [("get_balance", {}, "c1")])

    with pytest.raises(NoSession, match="outside a session of its gate"):
        agent.run_sync(PURPOSE)
    assert runs.total == 0


# -- holds: pydantic-ai's deferred approval -----------------------------------------


def test_hold_defers_with_request(approving, runs):
    agent = build_agent(approving, runs, [("send_money", LARGE, "c1")])

    with approving.gate.session(PURPOSE):
        result = agent.run_sync(PURPOSE)

    assert isinstance(result.output, DeferredToolRequests)
    (pending,) = result.output.approvals
    assert pending.tool_call_id == "c1"
    sealed = result.output.metadata["c1"]["agentgate"]
    (request,) = approving.gate.approval_store.requests("pending")
    assert sealed["verdict"] == "hold"
    assert sealed["request"] == request.id
    assert sealed["reasons"][0]["rule"] == "value.large-amount"
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold")]


def continue_approved(approving, runs, *, sign: bool):
    agent = build_agent(approving, runs, [("send_money", LARGE, "c1")])
    with approving.gate.session(PURPOSE):
        first = agent.run_sync(PURPOSE)
        request = first.output.metadata["c1"]["agentgate"]["request"]
        if sign:
            approve(approving, request)
        result = agent.run_sync(
            message_history=first.all_messages(),
            deferred_tool_results=DeferredToolResults(approvals={"c1": True}))
    return result, request


def test_approved_call_runs_after_quorum(approving, runs):
    result, request = continue_approved(approving, runs, sign=True)

    assert returns(result)["c1"] == ("success", f"sent 9000.0 to {IBAN}")
    assert runs["send_money"] == 1
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]
    assert approving.records_of("decision")[1]["approval"]["request"] == request
    assert len(approving.records_of("approval-request")) == 1


def test_approved_call_without_quorum_fails(approving, runs):
    result, request = continue_approved(approving, runs, sign=False)

    outcome, content = returns(result)["c1"]
    assert outcome == "failed"
    assert content.startswith(
        "AgentGate is holding this call to send_money until the approvers sign "
        f"approval request {request}, so the tool did not run.")
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "hold")]
    assert len(approving.records_of("approval-request")) == 1
