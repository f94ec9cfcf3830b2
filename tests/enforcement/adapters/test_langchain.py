"""The LangChain adapter: create_agent with GateMiddleware, driven by a fake
chat model that emits tool calls, over a real gate on a real SQLite log."""

from __future__ import annotations

import asyncio

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import ValidationError

from enforcement.adapters.langchain import GateMiddleware
from tests.enforcement.adapters.conftest import (
    LARGE,
    PURPOSE,
    RENT,
    approve,
    assert_receipts_verify,
    verdicts,
)
from tests.enforcement.adapters.test_langgraph import ToolCallingFake, call, make_tools

START_MESSAGE = {"messages": [HumanMessage(PURPOSE)]}


def build_agent(harness, runs, calls, *, checkpointer=None):
    model = ToolCallingFake(responses=[
        AIMessage(content="", tool_calls=calls),
        AIMessage(content="done"),
    ])
    return create_agent(model, make_tools(runs),
                        middleware=[GateMiddleware(harness.gate)],
                        checkpointer=checkpointer)


def tool_messages(result: dict) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}


def test_allowed_call_runs_tool_once(payments, runs):
    agent = build_agent(payments, runs, [call("send_money", RENT, "c1")])

    with payments.gate.session(PURPOSE) as session:
        result = agent.invoke(START_MESSAGE)

    assert tool_messages(result)["c1"].status == "success"
    assert runs["send_money"] == 1
    assert verdicts(payments) == [("send_money", "allow")]
    assert len(payments.records_of("outcome")) == 1
    assert_receipts_verify(payments, session)
    assert result["messages"][-1].content == "done"


def test_denied_call_returns_error_message(payments, runs):
    agent = build_agent(payments, runs,
                        [call("delete_file", {"path": "/etc/hosts"}, "c1")])

    with payments.gate.session(PURPOSE):
        result = agent.invoke(START_MESSAGE)

    message = tool_messages(result)["c1"]
    assert message.status == "error"
    assert message.content.startswith(
        "AgentGate denied this call to delete_file, so the tool did not run.")
    assert "\n- delegation.scope: " in message.content
    assert runs.total == 0
    assert verdicts(payments) == [("delete_file", "deny")]


def test_parallel_calls_each_get_decision(payments, runs):
    calls = [call("get_balance", {}, "c1"), call("send_money", RENT, "c2"),
             call("delete_file", {"path": "/tmp/report"}, "c3")]
    agent = build_agent(payments, runs, calls)

    with payments.gate.session(PURPOSE) as session:
        result = agent.invoke(START_MESSAGE)

    messages = tool_messages(result)
    assert [messages[c].status for c in ("c1", "c2", "c3")] == [
        "success", "success", "error"]
    assert runs.counts == {"get_balance": 1, "send_money": 1}
    assert sorted(verdicts(payments)) == [
        ("delete_file", "deny"), ("get_balance", "allow"), ("send_money", "allow")]
    assert_receipts_verify(payments, session)


def test_async_agent_gates_calls(payments, runs):
    agent = build_agent(payments, runs, [call("send_money", RENT, "c1"),
                                         call("delete_file", {"path": "/a"}, "c2")])

    async def main():
        async with payments.gate.session(PURPOSE):
            return await agent.ainvoke(START_MESSAGE)

    messages = tool_messages(asyncio.run(main()))
    assert messages["c1"].status == "success"
    assert messages["c2"].status == "error"
    assert runs.counts == {"send_money": 1}


def test_unreachable_ledger_never_runs_tool(offline, runs):
    agent = build_agent(offline, runs, [call("send_money", RENT, "c1")])

    with offline.gate.session(PURPOSE):
        result = agent.invoke(START_MESSAGE)

    message = tool_messages(result)["c1"]
    assert message.status == "error"
    assert message.content.startswith(
        "AgentGate could not seal its decision on this call to send_money, so the "
        "tool did not run: the ledger did not seal decision record")
    assert runs.total == 0


# -- holds: LangChain's per-call human-in-the-loop interrupt ---------------------------


def test_hold_interrupts_as_tool_approval(approving, runs):
    agent = build_agent(approving, runs, [call("send_money", LARGE, "c1")],
                        checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        result = agent.invoke(START_MESSAGE, config)

    (paused,) = result["__interrupt__"]
    assert paused.value["type"] == "tool_approval"
    assert paused.value["tool_call_id"] == "c1"
    assert paused.value["name"] == "send_money"
    assert paused.value["args"] == LARGE
    assert paused.value["description"].startswith(
        "AgentGate is holding this call to send_money until the approvers sign "
        f"approval request {paused.value['request']}")
    assert paused.value["reasons"][0]["rule"] == "value.large-amount"
    assert runs.total == 0


def test_approve_decision_runs_after_quorum(approving, runs):
    agent = build_agent(approving, runs, [call("send_money", LARGE, "c1")],
                        checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        paused = agent.invoke(START_MESSAGE, config)["__interrupt__"][0]
        approve(approving, paused.value["request"])
        result = agent.invoke(Command(resume={paused.id: {"type": "approve"}}), config)

    assert tool_messages(result)["c1"].status == "success"
    assert runs["send_money"] == 1
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]
    assert len(approving.records_of("approval-request")) == 1


def test_reject_decision_ends_call(approving, runs):
    agent = build_agent(approving, runs, [call("send_money", LARGE, "c1")],
                        checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        agent.invoke(START_MESSAGE, config)
        result = agent.invoke(Command(resume={"type": "reject", "message": "no"}),
                              config)

    message = tool_messages(result)["c1"]
    assert message.status == "error"
    assert message.content.endswith("so the tool did not run: no")
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold")]


def test_edit_decision_fails_validation(approving, runs):
    agent = build_agent(approving, runs, [call("send_money", LARGE, "c1")],
                        checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    edit = {"type": "edit",
            "edited_action": {"name": "send_money", "args": {**LARGE, "amount": 10}}}

    with approving.gate.session(PURPOSE):
        agent.invoke(START_MESSAGE, config)
        with pytest.raises(ValidationError):
            agent.invoke(Command(resume=edit), config)

    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold")]


def test_parallel_holds_pause_separately(approving, runs):
    calls = [call("send_money", LARGE, "c1"),
             call("send_money", {**LARGE, "amount": 8000}, "c2"),
             call("get_balance", {}, "c3")]
    agent = build_agent(approving, runs, calls, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        paused = agent.invoke(START_MESSAGE, config)["__interrupt__"]
        assert sorted(p.value["tool_call_id"] for p in paused) == ["c1", "c2"]
        for interrupt in paused:
            approve(approving, interrupt.value["request"])
        result = agent.invoke(
            Command(resume={p.id: {"type": "approve"} for p in paused}), config)

    messages = tool_messages(result)
    assert [messages[c].status for c in ("c1", "c2", "c3")] == ["success"] * 3
    assert runs.counts == {"get_balance": 1, "send_money": 2}
    assert len(approving.records_of("approval-request")) == 2
    assert sorted(verdicts(approving)) == [
        ("get_balance", "allow"), ("send_money", "allow"), ("send_money", "allow"),
        ("send_money", "hold"), ("send_money", "hold")]

