"""Shared parts of the framework adapters: session lookup, tool profiles, the
tool error text of a refusal, and per-call memory.

An adapter puts each tool call the framework makes through the same
``Session`` pipeline as ``Gate.guard``. A call the gate refuses, or cannot
seal, reaches the model as a tool error message carrying the reasons, and the
tool does not run. Mistakes in the set-up (no session, a session of another
gate) raise, because no model can fix them.

This module imports no agent framework.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from enforcement.errors import (
    ApprovalError,
    ApprovalRequired,
    ConfigError,
    DelegationError,
    Denied,
    GateError,
    Held,
    InvalidRequest,
    NoSession,
    Refusal,
    SealError,
)
from enforcement.session import Session, current_session

if TYPE_CHECKING:
    from enforcement.gate import Gate
    from enforcement.records import Decision

logger = logging.getLogger(__name__)

# The gate's errors that concern one call and become a tool error message. The
# others (NoSession, ConfigError) are set-up mistakes and propagate.
CALL_ERRORS: tuple[type[GateError], ...] = (
    Refusal,
    SealError,
    InvalidRequest,
    ApprovalError,
    DelegationError,
)

# How many calls an adapter remembers by tool call id. A call is looked up
# again only while its framework re-runs the step that made it.
DEFAULT_MEMORY = 4096


def find_session(gate: Gate, session: Session | None = None) -> Session:
    """Return ``session``, or the session of ``gate`` entered in this context.

    Raises ``ConfigError`` for a session of another gate and ``NoSession``
    when there is none, so that no tool runs unjudged.
    """
    if session is not None:
        if session.gate is not gate:
            raise ConfigError(
                f"session {session.id} belongs to another gate; pass a session "
                "started with this adapter's gate.session(...)"
            )
        return session
    active = current_session()
    if active is None or active.gate is not gate:
        raise NoSession(
            "a tool call reached the AgentGate adapter outside a session of its "
            "gate; run the agent inside `with gate.session(purpose=...):` or pass "
            "session= to the adapter"
        )
    return active


def refusal_text(error: GateError, tool: str) -> str:
    """Return the tool error message for the model about a call the gate stopped.

    The text names the verdict, lists each reason as ``rule: text`` and, for
    a sealed refusal, the log index that proves it.
    """
    if isinstance(error, ApprovalRequired):
        head = (f"AgentGate is holding this call to {tool} until the approvers "
                f"sign approval request {error.request}, so the tool did not run.")
    elif isinstance(error, Held):
        head = (f"AgentGate held this call to {tool} for human review, and no "
                "approval request was opened, so the tool did not run.")
    elif isinstance(error, Denied):
        head = f"AgentGate denied this call to {tool}, so the tool did not run."
    elif isinstance(error, Refusal):
        head = (f"AgentGate refused this call to {tool} ({error.verdict}), so "
                "the tool did not run.")
    elif isinstance(error, SealError):
        return (f"AgentGate could not seal its decision on this call to {tool}, "
                f"so the tool did not run: {error}")
    elif isinstance(error, InvalidRequest):
        return (f"AgentGate could not judge the arguments of this call to {tool}, "
                f"so the tool did not run: {error}")
    else:
        return (f"AgentGate rejected this call to {tool}, so the tool did not "
                f"run: {error}")

    lines = [head]
    lines += [f"- {reason.rule}: {reason.text}" for reason in error.reasons]
    lines.append(f"The decision is sealed at index {error.decision.index} of the log.")
    return "\n".join(lines)


def refusal_data(error: GateError) -> dict[str, Any]:
    """Return a refusal as JSON for the framework's side channel (not the model)."""
    if isinstance(error, Refusal):
        return error.to_json()
    return {"verdict": "error", "error": type(error).__name__, "message": str(error)}


class ProfileRegistry:
    """Registers each tool's profile with the gate the first time a call names it.

    The profile comes from the tool's name, argument names and description,
    as ``Gate.guard`` derives it from a function. A profile the application
    registered itself is kept.
    """

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def register(self, name: str, arguments: Iterable[str], description: str) -> None:
        with self._lock:
            if name in self._seen:
                return
            self._seen.add(name)
        gate = self._gate
        # A profile the application registered (or overrode) must survive.
        if not gate.has_profile(name):
            gate.register_tool(name, arguments=list(arguments),
                               description=description or "")
            logger.debug("registered the profile of %s from its description", name)


class CallMemory:
    """Remembers per-call state by session id and tool call id, newest last.

    Frameworks that re-run a step after a pause (LangGraph re-runs a node
    from its start on resume) find here what the first run decided, so the
    same call is not decided, sealed or run twice. The oldest entries are
    dropped past ``size``.
    """

    def __init__(self, size: int = DEFAULT_MEMORY) -> None:
        if size < 1:
            raise ConfigError(f"the call memory needs a size of at least 1, got {size}")
        self._size = size
        self._entries: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, call_id: str | None) -> Any:
        if call_id is None:
            return None
        with self._lock:
            return self._entries.get((session.id, call_id))

    def put(self, session: Session, call_id: str | None, value: Any) -> None:
        if call_id is None:
            return
        with self._lock:
            self._entries[(session.id, call_id)] = value
            self._entries.move_to_end((session.id, call_id))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def pop(self, session: Session, call_id: str | None) -> Any:
        if call_id is None:
            return None
        with self._lock:
            return self._entries.pop((session.id, call_id), None)


async def run_decided(session: Session, decision: Decision,
                      run: Callable[[], Awaitable[Any]]) -> Any:
    """Run a tool under an allow that ``session.decide`` sealed, then seal its
    outcome, as steps 8 and 9 of ``Session.acall`` do.

    For frameworks that decide in one hook and run the tool in another.
    Raises ``ConfigError`` unless ``decision`` is an allow of this session.
    """
    return await session.arun_allowed(decision, run)
