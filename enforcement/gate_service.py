"""The gate's side of remote agents: their sessions, decisions and outcomes.

``GateService`` keeps the sessions that agents started over HTTP
(``enforcement.gate_http``). Each call is decided by the same pipeline as
``Session.call``; the tool then runs in the client, which reports the
outcome. Decisions are idempotent per session and client call id, and
outcomes per decision.
"""

from __future__ import annotations

import json

import hashlib
import hmac
import logging
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from enforcement import jcs
from enforcement.alignment import Purpose
from enforcement.delegation import Certificate
from enforcement.errors import DelegationError, InvalidRequest, SealError
from enforcement.gate import Gate
from enforcement.records import Decision
from enforcement.session import Session

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "ApiError",
    "DecisionRequest",
    "DecisionResponse",
    "ErrorResponse",
    "GateService",
    "OutcomeRequest",
    "OutcomeResponse",
    "SessionRequest",
    "SessionResponse",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS = 10_000
_VISIBLE = r"^[\x21-\x7e]{1,256}$"
_ERROR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")


class ApiError(HTTPException):
    """An error response: status, short error code and a sentence."""

    def __init__(self, status: int, code: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail, headers)
        self.code = code


# -- request and response bodies ---------------------------------------------

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionRequest(_Body):
    """Start a session: the declared purpose and, optionally, its own chain."""

    purpose: str = Field(min_length=1, max_length=10_000)
    principal_values: list[str] = Field(default_factory=list, max_length=256)
    chain: list[dict[str, Any]] | None = Field(
        None, description="Delegation certificates from the root down; the "
        "server's default chain when missing.")


class SessionResponse(BaseModel):
    session: str
    purpose: str
    chain: list[str] = Field(description="Certificate hashes, root first.")


class DecisionRequest(_Body):
    """Ask whether one tool call may run."""

    call_id: str = Field(pattern=_VISIBLE, description="The client's id of "
                         "this call; a retry with the same id and request "
                         "returns the first decision.")
    tool: str = Field(min_length=1, max_length=256)
    arguments: dict[str, Any] = Field(default_factory=dict)
    approval: str | None = Field(None, description="Id of an approval request "
                                 "that an earlier hold returned.")


class ReasonModel(BaseModel):
    rule: str
    text: str


class DecisionResponse(BaseModel):
    call_id: str
    decision: str = Field(description="Id of the sealed decision record.")
    verdict: Literal["allow", "deny", "hold"]
    reasons: list[ReasonModel]
    receipt: str = Field(description="The decision's tlog-proof@v1 receipt.")
    index: int
    leaf_hash: str
    request: str | None = Field(None, description="Approval request a hold "
                                "waits on, when the policy names approvers.")


class OutcomeRequest(_Body):
    """Report how an allowed call ended."""

    decision: str = Field(pattern=r"^d-[0-9a-f]{32}$")
    status: Literal["ok", "error"]
    error: str | None = Field(None, description="The error's class name.")
    result: Any = Field(None, description="The tool's result as JSON.")
    result_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                      description="SHA-256 of the result, in "
                                      "place of the result itself.")
    duration_ms: float = Field(0.0, ge=0, le=1e10)


class OutcomeResponse(BaseModel):
    outcome: str
    decision: str
    receipt: str
    index: int
    leaf_hash: str


class ErrorResponse(BaseModel):
    error: str
    detail: str


# -- sessions ------------------------------------------------------------------

@dataclass
class _Remembered:
    fingerprint: str
    response: dict[str, Any]


@dataclass
class _SessionEntry:
    session: _RemoteAgentSession
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: dict[str, _Remembered] = field(default_factory=dict)
    allowed: dict[str, Decision] = field(default_factory=dict)
    outcomes: dict[str, _Remembered] = field(default_factory=dict)


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(jcs.canonical(value)).hexdigest()


class GateService:
    """The sessions of remote agents on one gate.

    ``gate`` is None only to describe the API (``openapi_document``).
    """

    def __init__(self, gate: Gate | None,
                 max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self.gate = gate
        self.max_sessions = max_sessions
        self._sessions: dict[str, _SessionEntry] = {}
        self._lock = threading.Lock()

    def start_session(self, body: SessionRequest) -> dict[str, Any]:
        chain = None
        if body.chain is not None:
            try:
                chain = [Certificate.from_json(raw) for raw in body.chain]
            except DelegationError as err:
                raise ApiError(400, "invalid_chain", str(err)) from err
        chain = tuple(chain) if chain is not None else self.gate.default_chain
        if not chain:
            raise ApiError(400, "invalid_request",
                           "the session needs a delegation chain; send chain, or "
                           "give the server a default chain")
        # approval_wait=0: a held call returns at once with its approval
        # request, and the client sends the call again once approvers have signed.
        session = _RemoteAgentSession(self.gate, chain, _purpose(body),
                                      f"s-{secrets.token_hex(8)}")
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise ApiError(429, "too_many_sessions",
                               f"{len(self._sessions)} sessions are open, the "
                               "maximum; end finished sessions with DELETE "
                               "/v1/sessions/{session}")
            self._sessions[session.id] = _SessionEntry(session)
        logger.info("session %s started", session.id)
        return {"session": session.id, "purpose": body.purpose,
                "chain": [certificate.hash for certificate in chain]}

    def end_session(self, session_id: str) -> None:
        with self._lock:
            remote = self._sessions.pop(session_id, None)
        if remote is None:
            raise _no_session(session_id)
        # No call of the session can come any more, so its windows can go.
        self.gate._engine.end_session(session_id)
        if remote.allowed:
            logger.warning("session %s ended with %d allowed calls whose outcome "
                           "was never reported", session_id, len(remote.allowed))
        logger.info("session %s ended", session_id)

    def decide(self, session_id: str, body: DecisionRequest) -> dict[str, Any]:
        remote = self._remote(session_id)
        fingerprint = _fingerprint({"tool": body.tool, "arguments": body.arguments,
                                    "approval": body.approval})
        with remote.lock:
            remembered = remote.calls.get(body.call_id)
            if remembered is not None:
                return _replayed(remembered, fingerprint, f"call {body.call_id!r}")
            try:
                decision = remote.session.decide(body.tool, body.arguments,
                                                 approval=body.approval)
            except InvalidRequest as err:
                raise ApiError(400, "invalid_request", str(err)) from err
            except SealError as err:
                logger.error("session %s call %s: decision not sealed: %s",
                             session_id, body.call_id, err)
                raise ApiError(503, "unavailable",
                               f"the decision could not be sealed ({err}); do "
                               "not run the tool, and retry later") from err
            response = {
                "call_id": body.call_id, "decision": decision.id,
                "verdict": decision.verdict,
                "reasons": [reason.to_json() for reason in decision.reasons],
                "receipt": decision.receipt.text, "index": decision.index,
                "leaf_hash": decision.leaf_hash, "request": decision.request,
            }
            remote.calls[body.call_id] = _Remembered(fingerprint, response)
            if decision.allowed:
                remote.allowed[decision.id] = decision
        return response

    def report(self, session_id: str, body: OutcomeRequest) -> dict[str, Any]:
        remote = self._remote(session_id)
        reported = body.model_dump(exclude_unset=True)
        fingerprint = _fingerprint(reported)
        with remote.lock:
            remembered = remote.outcomes.get(body.decision)
            if remembered is not None:
                return _replayed(remembered, fingerprint,
                                 f"the outcome of {body.decision}")
            decision = remote.allowed.get(body.decision)
            if decision is None:
                raise ApiError(404, "decision_not_found",
                               f"session {session_id} has no allowed decision "
                               f"{body.decision} awaiting its outcome; report "
                               "outcomes only for allowed calls")
            value, error = _outcome_value(body, "result" in reported)
            try:
                response = remote.session.report_outcome(decision, body.duration_ms,
                                                       value, error)
            except SealError as err:
                logger.error("session %s: outcome of %s not sealed: %s",
                             session_id, decision.id, err)
                raise ApiError(503, "unavailable",
                               f"the outcome could not be sealed ({err}); "
                               "retry later") from err
            remote.outcomes[decision.id] = _Remembered(fingerprint, response)
            del remote.allowed[decision.id]
        return response

    def _remote(self, session_id: str) -> _SessionEntry:
        with self._lock:
            remote = self._sessions.get(session_id)
        if remote is None:
            raise _no_session(session_id)
        return remote


def _purpose(body: SessionRequest) -> Purpose:
    return Purpose(body.purpose, principal_values=tuple(body.principal_values))


def _no_session(session_id: str) -> ApiError:
    return ApiError(404, "session_not_found",
                    f"no open session {session_id!r}; start one with POST "
                    "/v1/sessions (sessions end when the server restarts)")


def _replayed(remembered: _Remembered, fingerprint: str,
              what: str) -> dict[str, Any]:
    if not hmac.compare_digest(remembered.fingerprint, fingerprint):
        raise ApiError(409, "idempotency_conflict",
                       f"{what} was first sent with another request; use a new "
                       "call id for another call")
    return remembered.response


def _outcome_value(body: OutcomeRequest, has_result: bool) -> tuple[Any, str | None]:
    """Return the value to commit to and the error name of a reported outcome."""
    if body.status == "error":
        if body.error is None or not _ERROR_NAME.match(body.error):
            raise ApiError(400, "invalid_request",
                           f"an error outcome needs error, the error's class "
                           f"name (a letter or _, then letters, digits, _ or ., "
                           f"at most 128), got {body.error!r}")
        if has_result or body.result_sha256 is not None:
            raise ApiError(400, "invalid_request",
                           "an error outcome carries no result; drop result and "
                           "result_sha256, or report status ok")
        return None, body.error
    if body.error is not None:
        raise ApiError(400, "invalid_request",
                       "error is only for status error; drop it or report "
                       "status error")
    if has_result == (body.result_sha256 is not None):
        raise ApiError(400, "invalid_request",
                       "an ok outcome needs exactly one of result and "
                       "result_sha256")
    if has_result:
        try:
            jcs.check_json_value(body.result, path="result")
        except InvalidRequest as err:
            raise ApiError(400, "invalid_request", str(err)) from err
        return body.result, None
    return {"sha256": body.result_sha256}, None


class _RemoteAgentSession(Session):
    """A session whose tools run in the client, which reports their outcomes."""

    def report_outcome(self, decision: Decision, duration_ms: float, value: Any,
                       error_name: str | None) -> dict[str, Any]:
        """Seal the outcome the client reported for ``decision``; return its receipt."""
        sealed = self.seal_outcome(decision, duration_ms=duration_ms, result=value,
                                   error_name=error_name)
        if error_name is None:
            self._count_result(decision, decision.tool, value)
        record_id = json.loads(sealed.entry)["id"]
        return {"outcome": record_id, "decision": decision.id,
                "receipt": sealed.receipt.text, "index": sealed.index,
                "leaf_hash": sealed.leaf_hash}
