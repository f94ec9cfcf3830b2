"""The LangGraph adapter: a real StateGraph with a ToolNode, driven by a fake
chat model that emits tool calls, over a real gate on a real SQLite log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command
from pydantic import ValidationError

from enforcement.adapters.langgraph import GateToolWrapper
from enforcement.errors import ConfigError, NoSession
from tests.enforcement.adapters.conftest import (
    IBAN,
    LARGE,
    PURPOSE,
    RENT,
    approve,
    assert_receipts_verify,
    decisions,
    verdicts,
)


class ToolCallingFake(FakeMessagesListChatModel):
    """langchain-core's list-replaying fake chat model, accepting bound tools."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFake:
        return self


def make_tools(runs):
    @tool
    def get_balance() -> str:
        """Return the balance of the user's bank account."""
        runs.hit("get_balance")
        return "balance: 1200"

    @tool
    def send_money(recipient: str, amount: float) -> str:
        """Send money to a recipient's IBAN."""
        runs.hit("send_money")
        return f"sent {amount} to {recipient}"

    @tool
    def delete_file(path: str) -> str:
        """Delete a file from the user's disk."""
        runs.hit("delete_file")
        return f"deleted {path}"

    return [get_balance, send_money, delete_file]


def call(name: str, args: dict, call_id: str) -> dict:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def scripted(calls: list[dict], turns: int = 1) -> ToolCallingFake:
    """A model emitting ``calls`` in one message (in each of ``turns`` messages)
    and then a final answer."""
    return ToolCallingFake(responses=[
        *[AIMessage(content="", tool_calls=calls) for _ in range(turns)],
        AIMessage(content="done"),
    ])


def build_graph(tools, wrapper: GateToolWrapper, calls: list[dict], *,
                checkpointer: Any = None, turns: int = 1,
                model: ToolCallingFake | None = None):
    """Build model -> tools -> model over ``scripted(calls, turns)`` or ``model``."""
    model = model or scripted(calls, turns)

    def think(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    async def athink(state: MessagesState) -> dict:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", RunnableLambda(think, afunc=athink))
    graph.add_node("tools", ToolNode(tools, wrap_tool_call=wrapper,
                                     awrap_tool_call=wrapper.awrap))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer)


def tool_messages(result: dict) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}


START_MESSAGE = {"messages": [HumanMessage(PURPOSE)]}


# -- allow, deny, parallel ---------------------------------------------------------


def test_allowed_call_runs_tool_once(payments, runs):
    graph = build_graph(make_tools(runs), GateToolWrapper(payments.gate),
                        [call("send_money", RENT, "c1")])

    with payments.gate.session(PURPOSE) as session:
        result = graph.invoke(START_MESSAGE)

    message = tool_messages(result)["c1"]
    assert message.status == "success"
    assert message.content == f"sent 900.0 to {IBAN}"
    assert runs["send_money"] == 1
    assert verdicts(payments) == [("send_money", "allow")]
    assert len(payments.records_of("outcome")) == 1
    assert_receipts_verify(payments, session)


def test_denied_call_returns_error_message(payments, runs):
    graph = build_graph(make_tools(runs), GateToolWrapper(payments.gate),
                        [call("delete_file", {"path": "/home/user/notes"}, "c1")])

    with payments.gate.session(PURPOSE):
        result = graph.invoke(START_MESSAGE)

    message = tool_messages(result)["c1"]
    assert message.status == "error"
    assert message.content.startswith(
        "AgentGate denied this call to delete_file, so the tool did not run.")
    assert "\n- delegation.scope: " in message.content
    assert message.artifact["agentgate"]["verdict"] == "deny"
    assert message.artifact["agentgate"]["reasons"][0]["rule"] == "delegation.scope"
    assert runs.total == 0
    assert verdicts(payments) == [("delete_file", "deny")]
    assert result["messages"][-1].content == "done"


def test_parallel_calls_each_get_decision(payments, runs):
    calls = [
        call("get_balance", {}, "c1"),
        call("send_money", RENT, "c2"),
        call("delete_file", {"path": "/tmp/report"}, "c3"),
    ]
    graph = build_graph(make_tools(runs), GateToolWrapper(payments.gate), calls)

    with payments.gate.session(PURPOSE) as session:
        result = graph.invoke(START_MESSAGE)

    messages = tool_messages(result)
    assert messages["c1"].status == "success"
    assert messages["c2"].status == "success"
    assert messages["c3"].status == "error"
    assert runs.counts == {"get_balance": 1, "send_money": 1}
    assert sorted(verdicts(payments)) == [
        ("delete_file", "deny"), ("get_balance", "allow"), ("send_money", "allow")]
    assert len(session.decisions) == 3
    assert_receipts_verify(payments, session)


def test_reused_call_id_runs_again(payments, runs):
    graph = build_graph(make_tools(runs), GateToolWrapper(payments.gate),
                        [call("get_balance", {}, "c1")], turns=2)

    with payments.gate.session(PURPOSE):
        result = graph.invoke(START_MESSAGE)

    replies = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.content for m in replies] == ["balance: 1200", "balance: 1200"]
    assert runs["get_balance"] == 2
    assert verdicts(payments) == [("get_balance", "allow"), ("get_balance", "allow")]


def test_async_graph_gates_parallel_calls(payments, runs):
    calls = [call("send_money", RENT, "c1"),
             call("delete_file", {"path": "/tmp/x"}, "c2")]
    graph = build_graph(make_tools(runs), GateToolWrapper(payments.gate), calls)

    async def main():
        async with payments.gate.session(PURPOSE):
            return await graph.ainvoke(START_MESSAGE)

    messages = tool_messages(asyncio.run(main()))
    assert messages["c1"].status == "success"
    assert messages["c2"].status == "error"
    assert runs.counts == {"send_money": 1}
    assert sorted(verdicts(payments)) == [("delete_file", "deny"),
                                          ("send_money", "allow")]


# -- the gate cannot be reached ------------------------------------------------------


def test_unreachable_ledger_never_runs_tool(offline, runs):
    graph = build_graph(make_tools(runs), GateToolWrapper(offline.gate),
                        [call("send_money", RENT, "c1"), call("get_balance", {}, "c2")])

    with offline.gate.session(PURPOSE):
        result = graph.invoke(START_MESSAGE)

    for message in tool_messages(result).values():
        assert message.status == "error"
        assert "could not seal its decision" in message.content
        assert "ledger at 127.0.0.1:9 refused" in message.content
        assert message.artifact["agentgate"]["error"] == "SealError"
    assert runs.total == 0


def test_call_outside_session_raises(payments, runs):
    graph = build_graph(make_tools(runs), GateToolWrapper(payments.gate),
                        [call("get_balance", {}, "c1")])

    with pytest.raises(NoSession, match="outside a session of its gate"):
        graph.invoke(START_MESSAGE)
    assert runs.total == 0


def test_session_of_other_gate_rejected(payments, approving, runs):
    other = approving.gate.session(PURPOSE)
    graph = build_graph(make_tools(runs), GateToolWrapper(payments.gate, session=other),
                        [call("get_balance", {}, "c1")])

    with pytest.raises(ConfigError,
                       match=f"session {other.id} belongs to another gate"):
        graph.invoke(START_MESSAGE)
    assert runs.total == 0


# -- holds, interrupt and resume ---------------------------------------------------


def held_graph(harness, runs, calls):
    return build_graph(make_tools(runs), GateToolWrapper(harness.gate), calls,
                       checkpointer=InMemorySaver())


def test_hold_interrupts_with_request(approving, runs):
    graph = held_graph(approving, runs, [call("send_money", LARGE, "c1")])
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE) as session:
        result = graph.invoke(START_MESSAGE, config)

    (paused,) = result["__interrupt__"]
    request = approving.records_of("approval-request")[0]
    assert paused.value["type"] == "tool_approval"
    assert paused.value["tool_call_id"] == "c1"
    assert paused.value["name"] == "send_money"
    assert paused.value["args"] == LARGE
    assert paused.value["request"] == request["id"]
    assert paused.value["reasons"][0]["rule"] == "value.large-amount"
    assert paused.value["decision_index"] == session.decisions[0].index
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold")]


def test_resume_after_approval_runs_once(approving, runs):
    graph = held_graph(approving, runs, [call("send_money", LARGE, "c1")])
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE) as session:
        paused = graph.invoke(START_MESSAGE, config)["__interrupt__"][0]
        approve(approving, paused.value["request"])
        result = graph.invoke(Command(resume={"type": "approve"}), config)

    assert tool_messages(result)["c1"].status == "success"
    assert runs["send_money"] == 1
    # One hold before the pause and one allow after it: the re-run node
    # neither sealed a second hold nor opened a second request.
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]
    assert len(approving.records_of("approval-request")) == 1
    assert decisions(approving)[1]["approval"]["request"] == paused.value["request"]
    assert_receipts_verify(approving, session)


def test_resume_without_quorum_keeps_tool_stopped(approving, runs):
    graph = held_graph(approving, runs, [call("send_money", LARGE, "c1")])
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        paused = graph.invoke(START_MESSAGE, config)["__interrupt__"][0]
        result = graph.invoke(Command(resume={"type": "approve"}), config)

    message = tool_messages(result)["c1"]
    assert message.status == "error"
    assert f"until the approvers sign approval request {paused.value['request']}" \
        in message.content
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "hold")]
    assert len(approving.records_of("approval-request")) == 1


def test_reject_answer_ends_call(approving, runs):
    graph = held_graph(approving, runs, [call("send_money", LARGE, "c1")])
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        graph.invoke(START_MESSAGE, config)
        result = graph.invoke(
            Command(resume={"type": "reject", "message": "not this month"}), config)

    message = tool_messages(result)["c1"]
    assert message.status == "error"
    assert message.content == ("A reviewer rejected this call to send_money, so the "
                               "tool did not run: not this month")
    assert runs.total == 0
    assert verdicts(approving) == [("send_money", "hold")]


def test_invalid_answer_keeps_interrupt_open(approving, runs):
    graph = held_graph(approving, runs, [call("send_money", LARGE, "c1")])
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        graph.invoke(START_MESSAGE, config)
        with pytest.raises(ValidationError):
            graph.invoke(Command(resume={"type": "edit"}), config)
        assert runs.total == 0
        state = graph.get_state(config)
        assert state.interrupts[0].value["name"] == "send_money"


def test_resumed_node_reruns_no_finished_call(approving, runs):
    calls = [call("get_balance", {}, "c1"), call("send_money", LARGE, "c2")]
    graph = held_graph(approving, runs, calls)
    config = {"configurable": {"thread_id": "t1"}}

    with approving.gate.session(PURPOSE):
        paused = graph.invoke(START_MESSAGE, config)["__interrupt__"][0]
        assert runs.counts == {"get_balance": 1}
        approve(approving, paused.value["request"])
        result = graph.invoke(Command(resume={"type": "approve"}), config)

    messages = tool_messages(result)
    assert messages["c1"].content == "balance: 1200"
    assert messages["c2"].status == "success"
    assert runs.counts == {"get_balance": 1, "send_money": 1}
    assert sorted(verdicts(approving)) == [
        ("get_balance", "allow"), ("send_money", "allow"), ("send_money", "hold")]


def test_async_resume_after_approval(approving, runs):
    graph = held_graph(approving, runs, [call("send_money", LARGE, "c1")])
    config = {"configurable": {"thread_id": "t1"}}

    async def main():
        async with approving.gate.session(PURPOSE):
            paused = (await graph.ainvoke(START_MESSAGE, config))["__interrupt__"][0]
            approve(approving, paused.value["request"])
            return await graph.ainvoke(Command(resume={"type": "approve"}), config)

    assert tool_messages(asyncio.run(main()))["c1"].status == "success"
    assert runs["send_money"] == 1
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]
    assert len(approving.records_of("approval-request")) == 1


def test_resume_in_new_wrapper_reuses_request(approving, runs):
    saver = InMemorySaver()
    calls = [call("send_money", LARGE, "c1")]
    config = {"configurable": {"thread_id": "t1"}}
    model = scripted(calls)
    first = build_graph(make_tools(runs), GateToolWrapper(approving.gate), calls,
                        checkpointer=saver, model=model)
    # A wrapper with an empty memory stands in for a restarted process.
    second = build_graph(make_tools(runs), GateToolWrapper(approving.gate), calls,
                         checkpointer=saver, model=model)

    with approving.gate.session(PURPOSE, session_id="s-restart"):
        paused = first.invoke(START_MESSAGE, config)["__interrupt__"][0]
        approve(approving, paused.value["request"])
    with approving.gate.session(PURPOSE, session_id="s-restart"):
        result = second.invoke(Command(resume={"type": "approve"}), config)

    assert tool_messages(result)["c1"].status == "success"
    assert runs["send_money"] == 1
    assert verdicts(approving) == [("send_money", "hold"), ("send_money", "allow")]
    assert len(approving.records_of("approval-request")) == 1
