"""OpenAI Agents SDK: function tools gated by a tool input guardrail and
``needs_approval``.

Three lines integrate it::

    from enforcement.adapters.openai_agents import gate_tools
    agent = Agent(name="payer", tools=gate_tools(gate, [send_money, get_balance]))
    async with gate.session(purpose="..."): result = await Runner.run(agent, prompt)

``gate_tools`` returns a copy of each ``FunctionTool`` with three hooks that
share one decision per call, remembered by session id and call id:

1. ``needs_approval`` runs ``Session.decide`` (the gate decides, seals and
   verifies). It returns True for a hold the policy's approvers may lift,
   so the SDK interrupts the run with a ``ToolApprovalItem``.
2. A ``ToolInputGuardrail`` turns every other refusal, and a decision the
   gate could not seal, into ``reject_content`` with the reasons, so the
   model reads them and the tool does not run. For a hold the SDK approved
   (``RunState.approve`` and a new ``Runner.run``), it decides the call
   again, presenting the approval request, which is an allow once the
   approvers' quorum has signed and another refusal until then. Approving
   in the SDK does not stand in for the approvers' signatures.
3. ``on_invoke_tool`` runs the tool only under that allow, with the same
   arguments, and seals the outcome.

The gate decides here with ``Session.decide``, so a session's
``approval_wait`` does not apply: the SDK's interruption is the wait.

A function tool's own ``needs_approval`` still applies: the SDK requests
approval when either the tool or the gate needs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agents import (
    FunctionTool,
    RunContextWrapper,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)
from agents.tool_context import ToolContext

from enforcement.adapters._common import (
    CALL_ERRORS,
    DEFAULT_MEMORY,
    CallMemory,
    ProfileRegistry,
    find_session,
    refusal_data,
    refusal_text,
    run_decided,
)
from enforcement.errors import (
    ApprovalRequired,
    ConfigError,
    Denied,
    GateError,
    Held,
    InvalidRequest,
    Refusal,
)
from enforcement.records import Decision

__all__ = ["gate_tools"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Decided:
    """The gate's sealed decision on one call, with the arguments it judged."""

    decision: Decision
    arguments: dict[str, Any]


@dataclass(frozen=True)
class _Stopped:
    """A call the gate could not judge or seal."""

    error: GateError


def gate_tools(gate: Any, tools: Iterable[Any], *, session: Any = None,
               memory: int = DEFAULT_MEMORY) -> list[Any]:
    """Return the tools with every ``FunctionTool`` gated; others unchanged.

    ``session`` pins the session; without it each call uses the session of
    ``gate`` entered in the calling context. ``memory`` is how many calls
    are remembered between the SDK's hooks.
    """
    shared = CallMemory(memory)
    profiles = ProfileRegistry(gate)
    gated: list[Any] = []
    for tool in tools:
        if isinstance(tool, FunctionTool):
            gated.append(_GatedTool(gate, tool, session, shared, profiles).tool)
        else:
            logger.warning("tool %r is not a FunctionTool; AgentGate does not gate it",
                           getattr(tool, "name", tool))
            gated.append(tool)
    return gated


class _GatedTool:
    """The hooks of one gated function tool."""

    def __init__(self, gate: Any, tool: FunctionTool, session: Any,
                 memory: CallMemory, profiles: ProfileRegistry) -> None:
        self._gate = gate
        self._session = session
        self._memory = memory
        self._original = tool
        self.name = tool.name
        properties = (tool.params_json_schema or {}).get("properties") or {}
        profiles.register(tool.name, properties, tool.description)
        guardrail = ToolInputGuardrail(guardrail_function=self.check,
                                       name="agentgate")
        self.tool = dataclasses.replace(
            tool,
            on_invoke_tool=self.invoke,
            needs_approval=self.needs_approval,
            tool_input_guardrails=[*(tool.tool_input_guardrails or []), guardrail],
        )

    async def needs_approval(self, context: RunContextWrapper[Any],
                             arguments: dict[str, Any], call_id: str) -> bool:
        """Decide the call and return True when it waits for the approvers, or
        when the tool's own setting requires approval."""
        session = find_session(self._gate, self._session)
        entry = await self._decide(session, call_id, arguments, approval=None)
        held = (isinstance(entry, _Decided) and entry.decision.verdict == "hold"
                and entry.decision.request is not None)
        own = self._original.needs_approval
        if callable(own):
            return held or bool(await own(context, arguments, call_id))
        return held or bool(own)

    async def check(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        """Let the call through only under a sealed allow; reject it otherwise."""
        context = data.context
        session = find_session(self._gate, self._session)
        entry = self._memory.get(session, context.tool_call_id)
        if entry is None or self._approved_hold(context, entry):
            approval = entry.decision.request if entry is not None else None
            try:
                arguments = _parse_arguments(self.name, context.tool_arguments)
            except InvalidRequest as error:
                entry = _Stopped(error)
                self._memory.put(session, context.tool_call_id, entry)
            else:
                entry = await self._decide(session, context.tool_call_id, arguments,
                                           approval=approval)
        if isinstance(entry, _Stopped):
            return ToolGuardrailFunctionOutput.reject_content(
                refusal_text(entry.error, self.name), refusal_data(entry.error))
        decision = entry.decision
        if decision.verdict != "allow":
            refusal = _refusal(decision)
            return ToolGuardrailFunctionOutput.reject_content(
                refusal_text(refusal, self.name), refusal_data(refusal))
        return ToolGuardrailFunctionOutput.allow(
            {"verdict": "allow", "index": decision.index})

    async def invoke(self, context: ToolContext[Any], arguments: str) -> Any:
        """Run the original tool under the allow the guardrail saw, or not at all."""
        session = find_session(self._gate, self._session)
        entry = self._memory.pop(session, context.tool_call_id)
        if isinstance(entry, _Stopped):
            return refusal_text(entry.error, self.name)
        if not isinstance(entry, _Decided) or entry.decision.verdict != "allow":
            return (f"AgentGate holds no sealed allow for call {context.tool_call_id} "
                    f"to {self.name}, so the tool did not run.")
        try:
            same = _parse_arguments(self.name, arguments) == entry.arguments
        except InvalidRequest as error:
            return refusal_text(error, self.name)
        if not same:
            return (f"AgentGate allowed call {context.tool_call_id} to {self.name} "
                    "with other arguments than it was given, so the tool did not run.")
        return await run_decided(
            session, entry.decision,
            lambda: self._original.on_invoke_tool(context, arguments))

    # -- steps ------------------------------------------------------------------

    async def _decide(self, session: Any, call_id: str, arguments: dict[str, Any], *,
                      approval: str | None) -> _Decided | _Stopped:
        try:
            decision = await asyncio.to_thread(session.decide, self.name, arguments,
                                               approval=approval)
        except CALL_ERRORS as error:
            entry: _Decided | _Stopped = _Stopped(error)
        else:
            entry = _Decided(decision, arguments)
        self._memory.put(session, call_id, entry)
        return entry

    def _approved_hold(self, context: ToolContext[Any], entry: Any) -> bool:
        """Return True for a held call the SDK's user has since approved."""
        if not isinstance(entry, _Decided) or entry.decision.request is None:
            return False
        return context.is_tool_approved(self.name, context.tool_call_id) is True


def _parse_arguments(tool: str, text: str) -> dict[str, Any]:
    try:
        arguments = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        raise InvalidRequest(
            f"the arguments of {tool} are not JSON ({err}); expected a JSON object"
        ) from err
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"the arguments of {tool} must be a JSON object, got "
            f"{type(arguments).__name__}"
        )
    return arguments


def _refusal(decision: Decision) -> Refusal:
    if decision.verdict == "hold" and decision.request is not None:
        return ApprovalRequired(decision, decision.request)
    if decision.verdict == "hold":
        return Held(decision)
    if decision.verdict == "deny":
        return Denied(decision)
    raise ConfigError(
        f"decision {decision.id} has no refusal verdict: {decision.verdict}")
