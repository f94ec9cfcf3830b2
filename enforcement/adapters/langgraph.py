"""LangGraph: a ``ToolNode`` wrapper that puts every tool call through the gate.

Three lines integrate it::

    from enforcement.adapters.langgraph import gated_tool_node
    graph.add_node("tools", gated_tool_node(gate, tools))
    with gate.session(purpose="..."): graph.invoke(inputs, config)

``gated_tool_node`` builds a ``ToolNode`` whose ``wrap_tool_call`` and
``awrap_tool_call`` are a ``GateToolWrapper``; pass the wrapper to a
``ToolNode`` yourself to combine it with other options.

Each call runs through ``Session.call`` (``acall`` in async graphs): the
gate decides, seals and verifies, and only a verified allow reaches the
tool. A refusal, or a decision the gate could not seal, becomes an error
``ToolMessage`` with the reasons; its ``artifact`` carries them as JSON.

A hold whose approval request the policy's approvers may lift pauses the
graph with ``interrupt()``. The interrupt value names the request (see
``approval_payload``). Approvers sign it (``agentgate approvals approve``
or the HTTP routes), and the graph resumes with
``Command(resume={"type": "approve"})``. The gate then decides the call
again, presenting the request, and the tool runs once the quorum has
signed. ``{"type": "reject", "message": ...}`` ends the call with that
message instead. A graph needs a checkpointer to pause.

LangGraph re-runs a node from its start on resume. The wrapper remembers
each call by session, the node's task and the tool call id, so the re-run
neither decides nor runs a call of that node a second time. A held call
goes straight back to its ``interrupt()``, and a finished call returns its
first message. The memory lives in the process: a wrapper that did not
see the pause (after a restart) decides the call again, and in a session
with the same id the gate matches the pending approval request of the same
call instead of opening another.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from langchain_core.messages import ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest, ToolNode
from langgraph.types import Command, interrupt
from pydantic import Discriminator
from typing_extensions import NotRequired, TypedDict

from enforcement.adapters._common import (
    CALL_ERRORS,
    DEFAULT_MEMORY,
    CallMemory,
    ProfileRegistry,
    find_session,
    refusal_data,
    refusal_text,
)
from enforcement.errors import ApprovalRequired, GateError

__all__ = [
    "ApproveAnswer",
    "GateToolWrapper",
    "RejectAnswer",
    "approval_payload",
    "gated_tool_node",
]

logger = logging.getLogger(__name__)

ToolOutput = ToolMessage | Command


class ApproveAnswer(TypedDict):
    """Resume value after which the gate decides a held call again."""

    type: Literal["approve"]


class RejectAnswer(TypedDict):
    """Resume value that ends a held call without running it."""

    type: Literal["reject"]
    message: NotRequired[str]


@dataclass(frozen=True)
class _Pending:
    """A call the gate held for approval; the node re-runs into its interrupt."""

    request: str
    held: ApprovalRequired


@dataclass(frozen=True)
class _Finished:
    """A call whose message is final: the tool ran, or the gate stopped it."""

    output: ToolOutput


class _Execution:
    """Runs the ToolNode's own execution, keeping the message for the graph
    and handing the gate the content, which is what the tool returned."""

    def __init__(self, execute: Callable[..., Any], request: ToolCallRequest) -> None:
        self._execute = execute
        self._request = request
        self.output: ToolOutput | None = None

    def __call__(self) -> Any:
        self.output = self._execute(self._request)
        return _content(self.output)

    async def run_async(self) -> Any:
        self.output = await self._execute(self._request)
        return _content(self.output)


def approval_payload(request: ToolCallRequest,
                     held: ApprovalRequired) -> dict[str, Any]:
    """Return the interrupt value for a held call.

    Its keys follow LangChain's per-call ``ToolApprovalRequest`` (``type``,
    ``tool_call_id``, ``name``, ``args``, ``description``), and add the
    gate's ``request`` id, the ``reasons`` and the sealed decision's
    ``decision_index``.
    """
    call = request.tool_call
    return {
        "type": "tool_approval",
        "tool_call_id": call.get("id"),
        "name": call["name"],
        "args": call["args"],
        "description": refusal_text(held, call["name"]),
        "request": held.request,
        "reasons": [reason.to_json() for reason in held.reasons],
        "decision_index": held.decision.index,
    }


class GateToolWrapper:
    """A ``wrap_tool_call`` / ``awrap_tool_call`` pair that gates each tool call.

    ``session`` pins the session; without it each call uses the session of
    ``gate`` entered in the calling context. ``memory`` is how many calls
    are remembered for re-runs after a resume.
    """

    answer_schema: Any = Annotated[ApproveAnswer | RejectAnswer, Discriminator("type")]

    def __init__(self, gate: Any, *, session: Any = None,
                 memory: int = DEFAULT_MEMORY) -> None:
        self.gate = gate
        self._session = session
        self._memory = CallMemory(memory)
        self._profiles = ProfileRegistry(gate)

    def payload(self, request: ToolCallRequest, held: ApprovalRequired) -> Any:
        """Return the interrupt value for a held call."""
        return approval_payload(request, held)

    # -- sync -------------------------------------------------------------------

    def __call__(self, request: ToolCallRequest,
                 execute: Callable[[ToolCallRequest], ToolOutput]) -> ToolOutput:
        session, key, entry = self._start(request)
        if isinstance(entry, _Finished):
            return entry.output
        if entry is None:
            execution = _Execution(execute, request)
            try:
                session.call(*_name_and_arguments(request), execution)
            except ApprovalRequired as held:
                entry = self._pause(session, key, request, held)
                if entry is None:
                    return self._finish(session, key, _error_message(request, held))
            except CALL_ERRORS as error:
                return self._finish(session, key, _error_message(request, error))
            else:
                return self._finish(session, key, execution.output)

        # NOTE: LangGraph matches resume values to the interrupts of one task by
        # order, and a ToolNode runs the calls of one message in threads, so two
        # holds in one node may swap answers. The gate still runs a call only
        # under its own request's quorum. create_agent gives each call a task.
        answer = interrupt(self.payload(request, entry.held),
                           response_schema=self.answer_schema)
        if answer["type"] == "reject":
            return self._finish(session, key, _rejected(request, answer))
        execution = _Execution(execute, request)
        try:
            session.call(*_name_and_arguments(request), execution,
                         approval=entry.request)
        except CALL_ERRORS as error:
            return self._finish(session, key, _error_message(request, error))
        return self._finish(session, key, execution.output)

    # -- async ------------------------------------------------------------------

    async def awrap(self, request: ToolCallRequest,
                    execute: Callable[[ToolCallRequest], Awaitable[ToolOutput]]
                    ) -> ToolOutput:
        """Gate one call of an async graph; the same steps as ``__call__``."""
        session, key, entry = self._start(request)
        if isinstance(entry, _Finished):
            return entry.output
        if entry is None:
            execution = _Execution(execute, request)
            try:
                await session.acall(*_name_and_arguments(request), execution.run_async)
            except ApprovalRequired as held:
                entry = self._pause(session, key, request, held)
                if entry is None:
                    return self._finish(session, key, _error_message(request, held))
            except CALL_ERRORS as error:
                return self._finish(session, key, _error_message(request, error))
            else:
                return self._finish(session, key, execution.output)

        answer = interrupt(self.payload(request, entry.held),
                           response_schema=self.answer_schema)
        if answer["type"] == "reject":
            return self._finish(session, key, _rejected(request, answer))
        execution = _Execution(execute, request)
        try:
            await session.acall(*_name_and_arguments(request), execution.run_async,
                                approval=entry.request)
        except CALL_ERRORS as error:
            return self._finish(session, key, _error_message(request, error))
        return self._finish(session, key, execution.output)

    # -- steps ------------------------------------------------------------------

    def _start(self, request: ToolCallRequest
               ) -> tuple[Any, str | None, _Pending | _Finished | None]:
        session = find_session(self.gate, self._session)
        tool = request.tool
        if tool is not None:
            self._profiles.register(tool.name, tool.args, tool.description)
        key = _call_key(request)
        return session, key, self._memory.get(session, key)

    def _pause(self, session: Any, key: str | None, request: ToolCallRequest,
               held: ApprovalRequired) -> _Pending | None:
        """Remember a held call so that the resumed node finds it; None when the
        call has no id, because a resumed node could not find it again."""
        if key is None:
            return None
        pending = _Pending(held.request, held)
        self._memory.put(session, key, pending)
        logger.info("session %s: %s (call %s) paused for approval request %s",
                    session.id, request.tool_call["name"], request.tool_call["id"],
                    held.request)
        return pending

    def _finish(self, session: Any, key: str | None, output: ToolOutput) -> ToolOutput:
        self._memory.put(session, key, _Finished(output))
        return output


def gated_tool_node(gate: Any, tools: Any, *, session: Any = None,
                    memory: int = DEFAULT_MEMORY, **options: Any) -> ToolNode:
    """Return a ``ToolNode`` over ``tools`` whose every call passes the gate.

    ``options`` go to ``ToolNode`` (``name``, ``handle_tool_errors``, ...).
    """
    wrapper = GateToolWrapper(gate, session=session, memory=memory)
    return ToolNode(tools, wrap_tool_call=wrapper, awrap_tool_call=wrapper.awrap,
                    **options)


def _call_key(request: ToolCallRequest) -> str | None:
    """Return the key of a call: its id within the node's task.

    LangGraph runs a resumed node in the task it interrupted, under the same
    ``checkpoint_ns``, so the key is stable across the re-run. A later model
    turn that reuses a tool call id runs in another task and gets a new key.
    """
    call_id = request.tool_call.get("id")
    if not call_id:
        return None
    config = getattr(request.runtime, "config", None) or {}
    namespace = (config.get("configurable") or {}).get("checkpoint_ns", "")
    return f"{namespace}|{call_id}"


def _name_and_arguments(request: ToolCallRequest) -> tuple[str, dict[str, Any]]:
    call = request.tool_call
    return call["name"], call["args"]


def _content(output: Any) -> Any:
    """Return what the gate records of a tool's output: a message's content."""
    if isinstance(output, ToolMessage):
        return output.content
    return output


def _error_message(request: ToolCallRequest, error: GateError) -> ToolMessage:
    call = request.tool_call
    return ToolMessage(
        content=refusal_text(error, call["name"]),
        name=call["name"],
        tool_call_id=call.get("id") or "",
        status="error",
        artifact={"agentgate": refusal_data(error)},
    )


def _rejected(request: ToolCallRequest, answer: dict[str, Any]) -> ToolMessage:
    call = request.tool_call
    reason = answer.get("message") or "no reason given"
    return ToolMessage(
        content=(f"A reviewer rejected this call to {call['name']}, so the tool did "
                 f"not run: {reason}"),
        name=call["name"],
        tool_call_id=call.get("id") or "",
        status="error",
        artifact={"agentgate": {"verdict": "rejected", "message": reason}},
    )
