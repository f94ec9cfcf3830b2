"""LangChain 1.x: an agent middleware that puts every tool call through the gate.

Three lines integrate it::

    from enforcement.adapters.langchain import GateMiddleware
    agent = create_agent(model, tools, middleware=[GateMiddleware(gate)])
    with gate.session(purpose="..."): agent.invoke(inputs, config)

For holds to pause, the agent needs a checkpointer (``checkpointer=``).

``GateMiddleware`` implements ``AgentMiddleware.wrap_tool_call`` and
``awrap_tool_call`` (``langchain.agents.middleware.types``). ``create_agent``
sends each tool call of a model message to its own task, so parallel calls
get a decision and a receipt each.

A hold whose approval request the approvers may lift pauses the agent the
way LangChain's ``HumanInTheLoopMiddleware`` does in ``per_call`` mode: one
``interrupt()`` per held call, whose value is a ``ToolApprovalRequest``
(``langchain.agents.middleware.human_in_the_loop``) with the gate's request
id and reasons added. Resume with ``Command(resume=...)`` and an
``ApproveDecision`` (``{"type": "approve"}``), after the approvers signed,
or a ``RejectDecision`` (``{"type": "reject", "message": ...}``); other
decision types fail validation and leave the interrupt open. Approving in
LangChain does not stand in for the approvers' signatures: the gate decides
the call again and runs it once the quorum has signed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from langchain.agents.middleware.human_in_the_loop import (
    ApproveDecision,
    RejectDecision,
    ToolApprovalRequest,
)
from langchain.agents.middleware.types import AgentMiddleware, ToolCallRequest
from langchain_core.messages import ToolMessage
from langgraph.types import Command
from pydantic import Discriminator

from enforcement.adapters._common import DEFAULT_MEMORY
from enforcement.adapters.langgraph import GateToolWrapper, approval_payload
from enforcement.errors import ApprovalRequired

__all__ = ["GateMiddleware"]


class _HumanInTheLoopWrapper(GateToolWrapper):
    """The LangGraph wrapper, pausing with LangChain's per-call HITL types."""

    answer_schema: Any = Annotated[ApproveDecision | RejectDecision,
                                   Discriminator("type")]

    def payload(self, request: ToolCallRequest, held: ApprovalRequired) -> Any:
        fields = approval_payload(request, held)
        value = ToolApprovalRequest(
            type="tool_approval",
            tool_call_id=fields.pop("tool_call_id"),
            name=fields.pop("name"),
            args=fields.pop("args"),
            description=fields.pop("description"),
        )
        # The gate's own members follow LangChain's keys.
        return {**value, **{k: v for k, v in fields.items() if k != "type"}}


class GateMiddleware(AgentMiddleware):
    """Gates every tool call of a LangChain agent.

    ``session`` pins the session; without it each call uses the session of
    ``gate`` entered in the calling context. ``memory`` is how many calls
    are remembered for the re-run of a resumed step.
    """

    def __init__(self, gate: Any, *, session: Any = None,
                 memory: int = DEFAULT_MEMORY) -> None:
        super().__init__()
        self.gate = gate
        self._wrapper = _HumanInTheLoopWrapper(gate, session=session, memory=memory)

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        return self._wrapper(request, handler)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        return await self._wrapper.awrap(request, handler)
