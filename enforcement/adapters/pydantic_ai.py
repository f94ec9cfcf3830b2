"""pydantic-ai: a capability that puts every tool execution through the gate.

Three lines integrate it::

    from enforcement.adapters.pydantic_ai import GateCapability
    agent = Agent(model, tools=[send_money], capabilities=[GateCapability(gate)])
    with gate.session(purpose="..."): result = agent.run_sync(prompt)

For holds the agent's ``output_type`` must include ``DeferredToolRequests``.

``GateCapability.wrap_tool_execute`` runs each execution through
``Session.acall``: the gate decides, seals and verifies the validated
arguments, and only a verified allow reaches the tool. A refusal, or a
decision the gate could not seal, raises pydantic-ai's ``ToolFailed`` with
the reasons, so the model reads them as a failed tool result and the tool
does not run. pydantic-ai runs parallel calls concurrently, each through
its own decision.

A hold whose approval request the approvers may lift defers the call with
pydantic-ai's ``ApprovalRequired``; its metadata carries the gate's
refusal as JSON (``{"agentgate": {"request": ..., "reasons": ...}}``) and
the run ends with ``DeferredToolRequests``. Once the approvers signed,
continue the run with ``DeferredToolResults(approvals={call_id: True})``:
the gate decides the call again, presenting the request, and runs it once
the quorum is reached. Approving in pydantic-ai does not stand in for the
approvers' signatures; a call approved there but not by the quorum fails
with the reasons.
"""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from pydantic_ai import exceptions as framework
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.capabilities.abstract import ValidatedToolArgs, WrapToolExecuteHandler
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.tools import RunContext, ToolDefinition

from enforcement.adapters._common import (
    CALL_ERRORS,
    DEFAULT_MEMORY,
    CallMemory,
    ProfileRegistry,
    find_session,
    refusal_data,
    refusal_text,
)
from enforcement.errors import ApprovalRequired
from enforcement.provenance import to_plain

__all__ = ["GateCapability"]

logger = logging.getLogger(__name__)


@dataclass
class GateCapability(AbstractCapability[Any]):
    """Gates every tool execution of a pydantic-ai agent.

    ``session`` pins the session; without it each call uses the session of
    ``gate`` entered in the calling context. ``memory`` is how many held
    calls are remembered until the run continues.
    """

    gate: Any
    _: KW_ONLY
    session: Any = None
    memory: int = DEFAULT_MEMORY
    id: str | None = "agentgate"
    _held_requests: CallMemory = field(init=False, repr=False)
    _profiles: ProfileRegistry = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._held_requests = CallMemory(self.memory)
        self._profiles = ProfileRegistry(self.gate)

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        session = find_session(self.gate, self.session)
        tool = tool_def.name
        properties = (tool_def.parameters_json_schema or {}).get("properties") or {}
        self._profiles.register(tool, properties, tool_def.description or "")
        # The request this call was held on, when the run continues approved.
        approval = (self._held_requests.pop(session, call.tool_call_id)
                    if ctx.tool_call_approved else None)

        async def run() -> Any:
            return await handler(args)

        try:
            return await session.acall(tool, to_plain(args), run, approval=approval)
        except ApprovalRequired as held:
            if ctx.tool_call_approved:
                raise framework.ToolFailed(refusal_text(held, tool)) from held
            self._held_requests.put(session, call.tool_call_id, held.request)
            logger.info("session %s: %s (call %s) deferred for approval request %s",
                        session.id, tool, call.tool_call_id, held.request)
            raise framework.ApprovalRequired(
                metadata={"agentgate": refusal_data(held)}) from held
        except CALL_ERRORS as error:
            raise framework.ToolFailed(refusal_text(error, tool)) from error
