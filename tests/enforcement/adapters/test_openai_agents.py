"""The OpenAI Agents SDK adapter: a real Agent and Runner driven by the SDK's
ScriptedModel, which emits tool calls, over a real gate on a real SQLite log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.exceptions import UserError
from agents.items import ToolCallOutputItem
from agents.testing import ScriptedModel, assistant_message, function_call

from enforcement.adapters.openai_agents import gate_tools
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

# The SDK exports traces to OpenAI by default; these tests send nothing out.
set_tracing_disabled(True)


def make_tools(runs) -> list[Any]:
    @function_tool
    def get_balance() -> str:
        """Return the balance of the user's bank account."""
        runs.hit("get_balance")
        return "balance: 1200"

    @function_tool
    def send_money(recipient: str, amount: float) -> str:
        """Send money to a recipient's IBAN."""
        runs.hit("send_money")
        return f"sent {amount} to {recipient}"

    @function_tool
    def delete_file(path: str) -> str:
        """Delete a file from the user's disk."""
        runs.hit("delete_file")
        return f"deleted {path}"

    return [get_balance, send_money, delete_file]


def build_agent(harness, runs, calls: list[tuple[str, dict, str]]) -> Agent:
    model = ScriptedModel([
        [function_call(name, arguments, call_id=call_id)
         for name, arguments, call_id in calls],
        [assistant_message("done")],
    ])
    return Agent(name="payer", model=model,
                 tools=gate_tools(harness.gate, make_tools(runs)))


def outputs(result) -> dict[str, str]:
    """Return the tool output the model saw, by call id."""
    return {item.raw_item["call_id"]: str(item.output)
            for item in result.new_items if isinstance(item, ToolCallOutputItem)}


def run(harness, agent, start: Any = PURPOSE):
    async def main():
        async with harness.gate.session(PURPOSE) as session:
            return await Runner.run(agent, start), session

    return asyncio.run(main())


def test_allowed_call_runs_tool_once(payments, runs):
    agent = build_agent(payments, runs, [("send_money", RENT, "c1")])

    result, session = run(payments, agent)

    assert outputs(result) == {"c1": f"sent 900.0 to {IBAN}"}
    assert runs["send_money"] == 1
    assert verdicts(payments) == [("send_money", "allow")]
    assert len(payments.records_of("outcome")) == 1
    assert_receipts_verify(payments, session)
    assert result.final_output == "done"


def test_denied_call_rejected_with_reasons(payments, runs):
    agent = build_agent(payments, runs, [("delete_file", {"path": "/etc/hosts"}, "c1")])

    result, _ = run(payments, agent)

    text = outputs(result)["c1"]
    assert text.startswith(
        "AgentGate denied this call to delete_file, so the tool did not run.")
    assert "\n- delegation.scope: " in text
    assert runs.total == 0
    assert verdicts(payments) == [("delete_file", "deny")]
    (checked,) = result.tool_input_guardrail_results
    assert checked.output.behavior["type"] == "reject_content"
    assert checked.output.output_info["reasons"][0]["rule"] == "delegation.scope"


def test_parallel_calls_each_get_decision(payments, runs):
    calls = [("get_balance", {}, "c1"), ("send_money", RENT, "c2"),
             ("delete_file", {"path": "/tmp/report"}, "c3")]
    agent = build_agent(payments, runs, calls)

    result, session = run(payments, agent)

    texts = outputs(result)
    assert texts["c1"] == "balance: 1200"
    assert texts["c2"] == f"sent 900.0 to {IBAN}"
    assert texts["c3"].startswith("AgentGate denied this call to delete_file")
    assert runs.counts == {"get_balance": 1, "send_money": 1}
    assert sorted(verdicts(payments)) == [
        ("delete_file", "deny"), ("get_balance", "allow"), ("send_money", "allow")]
    assert_receipts_verify(payments, session)


def test_unreachable_ledger_never_runs_tool(offline, runs):
    agent = build_agent(offline, runs, [("send_money", RENT, "c1"),
                                        ("get_balance", {}, "c2")])

    result, _ = run(offline, agent)

    for text in outputs(result).values():
        assert "could not seal its decision" in text
        assert "ledger at 127.0.0.1:9 refused" in text
    assert runs.total == 0


def test_call_outside_session_raises(payments, runs):
    agent = build_agent(payments, runs, [("get_balance", {}, "c1")])

    # The SDK wraps the tool's exception in its own UserError and ends the run.
    with pytest.raises(UserError, match="outside a session of its gate") as caught:
        asyncio.run(Runner.run(agent, PURPOSE))
    assert isinstance(caught.value.__cause__, NoSession)
    assert runs.total == 0


def test_invoke_without_allow_refuses(payments, runs):
    (gated,) = gate_tools(payments.gate, make_tools(runs)[1:2])

    async def main():
        from agents.tool_context import ToolContext

        async with payments.gate.session(PURPOSE):
            context = ToolContext(context=None, tool_name="send_money",
                                  tool_call_id="c9", tool_arguments='{"amount": 1}')
            return await gated.on_invoke_tool(context, '{"amount": 1}')

    assert asyncio.run(main()) == ("AgentGate holds no sealed allow for call c9 to "
                                   "send_money, so the tool did not run.")
    assert runs.total == 0
    assert verdicts(payments) == []


# -- holds: the SDK's approval interruption -----------------------------------------


def pending_request(harness) -> str:
    (request,) = harness.gate.approval_store.requests("pending")
    return request.id


def test_hold_interrupts_run(approving, runs):
    agent = build_agent(approving, runs, [("send_money", LARGE, "c1")])

    result, _ = run(approving, agent)

    (item,) = result.interruptions
    assert item.tool_name == "send_money"
    assert item.raw_item.call_id == "c1"
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold")]
    assert len(approving.records_of("approval-request")) == 1


def test_approved_hold_runs_after_quorum(approving, runs):
    agent = build_agent(approving, runs, [("send_money", LARGE, "c1")])

    async def main():
        async with approving.gate.session(PURPOSE):
            first = await Runner.run(agent, PURPOSE)
            approve(approving, pending_request(approving))
            state = first.to_state()
            state.approve(first.interruptions[0])
            return await Runner.run(agent, state)

    result = asyncio.run(main())

    assert outputs(result)["c1"] == f"sent 9000.0 to {IBAN}"
    assert runs["send_money"] == 1
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]
    assert len(approving.records_of("approval-request")) == 1
    assert len(approving.records_of("outcome")) == 1


def test_approved_hold_without_quorum_rejected(approving, runs):
    agent = build_agent(approving, runs, [("send_money", LARGE, "c1")])

    async def main():
        async with approving.gate.session(PURPOSE):
            first = await Runner.run(agent, PURPOSE)
            state = first.to_state()
            state.approve(first.interruptions[0])
            return await Runner.run(agent, state)

    result = asyncio.run(main())

    request = pending_request(approving)
    assert outputs(result)["c1"].startswith(
        "AgentGate is holding this call to send_money until the approvers sign "
        f"approval request {request}, so the tool did not run.")
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "hold")]


def test_sdk_rejection_never_runs_tool(approving, runs):
    agent = build_agent(approving, runs, [("send_money", LARGE, "c1")])

    async def main():
        async with approving.gate.session(PURPOSE):
            first = await Runner.run(agent, PURPOSE)
            approve(approving, pending_request(approving))
            state = first.to_state()
            state.reject(first.interruptions[0])
            return await Runner.run(agent, state)

    asyncio.run(main())

    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold")]
