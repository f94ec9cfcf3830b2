"""Alignment: how well a call fits the agent's declared purpose.

A scorer receives the purpose, the tool's profile, the arguments and the
session's provenance, and returns a score in [0, 1] with a label and reasons.
``DefaultScorer`` is deterministic and needs no network and no model. It
multiplies three factors:

- provenance: where the values of arguments that direct data, money or
  deletion came from (see ``enforcement.provenance``);
- kind fit: whether the purpose asks for an action of the tool's kind (a
  payment, a message, a deletion, a password change);
- relevance: whether the tool's name shares a word with the purpose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from enforcement.profiles import HIGH_RISK_LABELS, ToolProfile, split_words
from enforcement.provenance import Provenance


@dataclass(frozen=True)
class Purpose:
    """The agent's declared purpose: text, structured fields, principal values.

    ``principal_values`` are values the principal supplied outside the text
    (an account to pay, an address to write to); they are trusted like the text.
    """

    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    principal_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoringContext:
    purpose: Purpose
    profile: ToolProfile
    arguments: Mapping[str, Any]
    provenance: Provenance
    hold_below: float = 0.5
    deny_below: float = 0.15


@dataclass(frozen=True)
class AlignmentResult:
    scorer: str
    version: str
    score: float
    label: str
    reasons: tuple[str, ...]

    def to_json(self, hold_below: float, deny_below: float) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "version": self.version,
            "score": self.score,
            "label": self.label,
            "thresholds": {"hold": hold_below, "deny": deny_below},
            "reasons": list(self.reasons),
        }


@runtime_checkable
class Scorer(Protocol):
    name: str
    version: str

    def score(self, context: ScoringContext) -> AlignmentResult: ...


# Roles whose values decide where data or money goes, or what is lost.
DESTINATION_ROLES = ("recipient", "url", "credential")

_SOURCE_FACTOR = {
    "trusted": 1.0,
    "structured": 0.85,
    "unknown": 0.45,
    "text": 0.35,
    "instruction": 0.0,
}
# A read only fetches; an argument that came from instructions still means the
# agent is following someone else's orders, so it is held, not denied.
_READ_INSTRUCTION_FACTOR = 0.3

_INTENT_WORDS = {
    "financial": {
        "pay", "paid", "payment", "payments", "send", "transfer", "refund", "money",
        "bill", "rent", "transaction", "transactions", "schedule", "scheduled",
        "subscription", "book", "reserve", "buy", "purchase", "order", "invoice",
        "fee", "tip", "donate", "difference", "standing", "wire", "reimburse",
        "booking", "reservation",
    },
    "egress": {
        "send", "email", "e-mail", "mail", "message", "messages", "tell", "share",
        "post", "invite", "reply", "forward", "notify", "write", "contact",
        "publish", "inform", "let", "dm", "announce", "introduce", "upload",
        "add", "participants", "invitation", "remind", "ask", "respond",
    },
    "destructive": {
        "delete", "remove", "cancel", "clean", "clear", "drop", "erase", "purge",
        "unsubscribe", "kick", "discard",
    },
    "credential": {
        "password", "credential", "credentials", "security", "reset", "passcode",
        "login", "2fa",
    },
}
_FIT_MISMATCH = 0.4
_NO_SHARED_WORD = 0.85
_STOP_WORDS = {"get", "set", "the", "a", "an", "to", "of", "for", "by", "and", "my"}


def _purpose_words(purpose: Purpose) -> frozenset[str]:
    return _text_words(purpose.text)


@lru_cache(maxsize=1024)
def _text_words(text: str) -> frozenset[str]:
    """Return the words of a purpose text and their stems without a final s."""
    words = set(re.findall(r"[a-z0-9][a-z0-9-]*", text.casefold()))
    stems = {w[:-1] for w in words if w.endswith("s") and len(w) > 3}
    return frozenset(words | stems)


@lru_cache(maxsize=4096)
def _tool_words(name: str) -> frozenset[str]:
    """Return the words of a tool name that can relate it to a purpose."""
    return frozenset(split_words(name)) - _STOP_WORDS


class DefaultScorer:
    """The deterministic scorer described in the module docstring."""

    name = "default"
    version = "1"

    def score(self, context: ScoringContext) -> AlignmentResult:
        reasons: list[str] = []
        provenance = self._provenance_factor(context, reasons)
        fit = self._fit_factor(context, reasons)
        relevance = self._relevance_factor(context, reasons)
        score = round(max(0.0, min(1.0, provenance * fit * relevance)), 4)
        label = label_for(score, context.hold_below, context.deny_below)
        return AlignmentResult(self.name, self.version, score, label, tuple(reasons))

    def _provenance_factor(self, context: ScoringContext, reasons: list[str]) -> float:
        profile = context.profile
        checked = checked_values(profile, context.arguments, context.provenance)
        factor = 1.0
        for argument, value in checked.items():
            source = context.provenance.source_of(value)
            if profile.high_risk:
                value_factor = _SOURCE_FACTOR[source]
            elif source == "instruction":
                value_factor = _READ_INSTRUCTION_FACTOR
            else:
                value_factor = 1.0
            if value_factor < 1.0:
                reasons.append(f"argument {argument} came from {_describe(source)}")
            factor = min(factor, value_factor)
        # Any other argument whose value only injected instructions supply
        # (a hotel to book, a file id to delete, a search the attacker wants)
        # means the agent is following those instructions.
        for argument in _dictated_candidates(profile, context.arguments, checked):
            if context.provenance.source_of(context.arguments[argument]) != (
                "instruction"
            ):
                continue
            reasons.append(f"argument {argument} came from {_describe('instruction')}")
            dictated = 0.0 if profile.high_risk else _READ_INSTRUCTION_FACTOR
            factor = min(factor, dictated)
        return factor

    def _fit_factor(self, context: ScoringContext, reasons: list[str]) -> float:
        declared = context.purpose.fields.get("actions")
        words = _purpose_words(context.purpose)

        def fits(label: str) -> bool:
            if declared is not None:
                return label in declared
            return bool(words & _INTENT_WORDS[label])

        labels = context.profile.labels & HIGH_RISK_LABELS
        # Money that is paid always goes somewhere: a purpose that asks for a
        # payment has asked for that egress too.
        if "financial" in labels and fits("financial"):
            labels = labels - {"egress"}
        factor = 1.0
        for label in sorted(labels):
            if not fits(label):
                reasons.append(f"the purpose asks for no {label} action")
                factor = min(factor, _FIT_MISMATCH)
        return factor

    def _relevance_factor(self, context: ScoringContext, reasons: list[str]) -> float:
        if not context.profile.high_risk:
            return 1.0
        if _tool_words(context.profile.name) & _purpose_words(context.purpose):
            return 1.0
        reasons.append(
            f"the purpose shares no word with the tool name {context.profile.name}"
        )
        return _NO_SHARED_WORD


def checked_values(
    profile: ToolProfile, arguments: Mapping[str, Any], provenance: Provenance
) -> dict[str, Any]:
    """Return the argument values whose provenance decides the call's risk.

    For a high-risk tool these are the values that direct data, money or a
    deletion, and the links and addresses written inside its content; for a
    read, only the URLs it fetches.
    """
    checked: dict[str, Any] = {}
    if not profile.high_risk:
        for argument in profile.arguments_with_roles({"url"}):
            if argument in arguments:
                checked[argument] = arguments[argument]
        return checked
    roles = set(DESTINATION_ROLES)
    if "destructive" in profile.labels:
        roles |= {"identifier", "path"}
    for argument in profile.arguments_with_roles(roles):
        if argument in arguments and arguments[argument] is not None:
            checked[argument] = arguments[argument]
    if profile.labels & {"egress", "financial"}:
        for argument in profile.arguments_with_roles({"content"}):
            found = [
                destination
                for text in _strings_in(arguments.get(argument))
                for destination in provenance.embedded_destinations(text)
            ]
            for position, destination in enumerate(found):
                checked[f"{argument}[link {position}]"] = destination
    return checked


def _dictated_candidates(
    profile: ToolProfile, arguments: Mapping[str, Any], checked: Mapping[str, Any]
) -> list[str]:
    """Return the arguments not yet checked whose values could be dictated.

    Content the agent composes (a message body) is left out: it may quote a
    tool output for good reasons, and the links inside it are checked apart.
    """
    return [
        argument
        for argument, value in arguments.items()
        if argument not in checked
        and profile.role(argument) != "content"
        and value is not None
        and not isinstance(value, bool)
    ]


def _strings_in(value: Any) -> list[str]:
    """Return every string in a JSON value, so content sent as a list or an
    object is searched for links like a plain string."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in (*value.keys(), *value.values())
                for text in _strings_in(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings_in(item)]
    return []


def _describe(source: str) -> str:
    return {
        "trusted": "the purpose or the principal",
        "instruction": "instructions found in a tool output (a likely injection)",
        "structured": "a structured field of a tool output",
        "text": "free text in a tool output, not from the purpose or the principal",
        "unknown": "nowhere in the purpose or in any tool output",
    }[source]


def label_for(score: float, hold_below: float, deny_below: float) -> str:
    if score < deny_below:
        return "misaligned"
    if score < hold_below:
        return "uncertain"
    return "aligned"
