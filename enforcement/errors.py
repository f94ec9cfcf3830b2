"""Exceptions raised by the gate.

The roots follow who is at fault: ``ConfigError`` for a gate or policy set up
wrongly, ``InvalidRequest`` for a tool call whose input cannot be judged,
``SealError`` for a ledger that could not seal or prove a decision, and
``Refusal`` for an action the gate judged and refused. Every one of them means
the tool did not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enforcement.records import Decision


@dataclass(frozen=True)
class Reason:
    """One reason behind a verdict: the id of the rule or check, and a sentence."""

    rule: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "text": self.text}


class GateError(Exception):
    """Root of every exception the gate raises."""


class ConfigError(GateError):
    """The gate, a policy or a key was configured wrongly."""


class InvalidRequest(GateError):
    """A tool call's input cannot be judged (not JSON, duplicate keys, ...)."""


class ApprovalError(GateError):
    """An approval was rejected: forged, expired, from a key that is not an
    approver, for another request, or for a request no longer pending."""


class DelegationError(GateError):
    """A delegation certificate or chain failed verification.

    ``rule`` names the chain rule that failed, so that a decision can cite it.
    """

    def __init__(self, message: str, rule: str = "delegation") -> None:
        super().__init__(message)
        self.rule = rule


class NoSession(GateError):
    """A guarded function was called outside ``with gate.session(...)``."""


class SealError(GateError):
    """The decision could not be sealed, or its receipt failed verification."""


class Refusal(GateError):
    """The gate refused the call; the tool did not run.

    ``reasons`` is a list of ``Reason`` so that adapters can show them and
    tests can assert them. ``decision`` is the sealed decision, whose
    ``receipt`` proves the refusal is in the log.
    """

    verdict = "refused"

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.reasons: list[Reason] = list(decision.reasons)
        self.receipt = decision.receipt
        summary = "; ".join(f"{r.rule}: {r.text}" for r in self.reasons)
        super().__init__(
            f"{decision.tool}: {self.verdict} ({summary or 'no reason given'})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "tool": self.decision.tool,
            "reasons": [r.to_json() for r in self.reasons],
            "index": self.decision.index,
        }


class Denied(Refusal):
    """The gate denied the call."""

    verdict = "deny"


class Held(Refusal):
    """The call needs a human approval before it may run."""

    verdict = "hold"


class ApprovalRequired(Held):
    """The call is held until approvers sign; ``request`` names the request.

    A framework that pauses can resume later by making the same call in the
    same session, optionally presenting ``request``; it runs once the quorum
    of approvals is reached.
    """

    def __init__(self, decision: Decision, request: str) -> None:
        super().__init__(decision)
        self.request = request

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "request": self.request}
