"""Sequence state: what a session and an agent have done, and the rules on it.

Each session keeps its history of executed calls and a rolling state digest:
``after = SHA-256(before || JCS(step))``, so the digests sealed in decisions
chain every step of the session. Agents keep sliding windows for rate limits.

Evaluation and the update that follows an allow happen under one lock, so N
concurrent calls against a limit of k allow exactly k. A rule that raises
denies the call and its id is recorded.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from enforcement import jcs
from enforcement.policy import (
    VERDICT_ORDER,
    AmountThreshold,
    AmountTotal,
    RateLimit,
    SensitiveThenEgress,
)
from enforcement.profiles import ToolProfile
from enforcement.timeutil import format_time

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallFacts:
    """The facts about the call being decided that sequence rules read."""

    agent: str
    session: str
    profile: ToolProfile
    arguments: Mapping[str, Any]
    destination_sources: Mapping[str, str]
    now: datetime
    # True when the tool has arguments that name a destination, whether or
    # not this call passed them (an update that keeps the old recipient).
    names_destinations: bool = True

    @property
    def amounts(self) -> list[float]:
        """The amount arguments that read as numbers (see ``read_amount``)."""
        values = []
        for argument in self.profile.arguments_with_roles({"amount"}):
            amount = read_amount(self.arguments.get(argument))
            if amount is not None:
                values.append(amount)
        return values

    @property
    def unreadable_amounts(self) -> list[str]:
        """Amount arguments passed with a value that does not read as a number."""
        return [
            argument
            for argument in self.profile.arguments_with_roles({"amount"})
            if self.arguments.get(argument) is not None
            and read_amount(self.arguments[argument]) is None
        ]


def read_amount(value: Any) -> float | None:
    """Return an amount as a float: a number, or a string that parses as one.

    A tool may accept "9000" as readily as 9000, so a numeric string is read
    as its number. Anything else (a boolean, a list, "9,000", "inf") returns
    None; the amount rules then fire, because they cannot check the limit.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Step:
    """One executed (allowed) call in a session's history."""

    time: datetime
    tool: str
    labels: frozenset[str]
    data_classes: frozenset[str]
    amount: float


@dataclass(frozen=True)
class Firing:
    rule: str
    verdict: str
    text: str


@dataclass
class SessionState:
    """A session's history and its rolling digest."""

    session: str
    digest: str = ""
    history: list[Step] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=lambda: {
        "calls": 0, "reads": 0, "sensitive_reads": 0, "egress": 0,
    })

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = jcs.digest({"session": self.session})


class _Windows:
    """Sliding windows of event times per key."""

    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}

    def count(self, key: str, now: float, window: float) -> int:
        times = self._times.get(key)
        if not times:
            return 0
        while times and times[0] <= now - window:
            times.popleft()
        return len(times)

    def add(self, key: str, now: float) -> None:
        self._times.setdefault(key, deque()).append(now)


class SequenceEngine:
    """Evaluates the policy's sequence rules and keeps their state."""

    def __init__(self, rules, sensitive_classes: frozenset[str] = frozenset()) -> None:
        self.rules = list(rules)
        self.sensitive_classes = sensitive_classes or frozenset().union(
            *(set(r.data_classes) for r in self.rules
              if isinstance(r, SensitiveThenEgress))
        )
        self._windows = _Windows()
        self._max_window = max(
            (getattr(r, "window_seconds", 0.0) for r in self.rules), default=0.0
        )
        self.lock = threading.RLock()

    def evaluate(self, state: SessionState, facts: CallFacts) -> list[Firing]:
        """Return the rules that fire for this call. Call with ``lock`` held."""
        firings = []
        for rule in self.rules:
            try:
                text = self._check(rule, state, facts)
            except Exception as err:  # noqa: BLE001 - any rule failure denies
                logger.error("rule %s raised %r; the call is denied", rule.id, err)
                firings.append(Firing(
                    rule.id, "deny",
                    f"rule raised {type(err).__name__}: {err}; the call is denied",
                ))
                continue
            if text is not None:
                firings.append(Firing(rule.id, rule.verdict, text))
        return firings

    def commit(self, state: SessionState, facts: CallFacts, verdict: str) -> str:
        """Update state after a decision and return the new digest.

        Only allowed calls enter the history and the windows; every decision
        advances the digest. Call with ``lock`` held.
        """
        step = {
            "tool": facts.profile.name,
            "time": format_time(facts.now),
            "verdict": verdict,
        }
        state.digest = hashlib.sha256(
            state.digest.encode() + jcs.canonical(step)
        ).hexdigest()
        if verdict != "allow":
            return state.digest
        amount = sum(facts.amounts) if "financial" in facts.profile.labels else 0.0
        state.history.append(Step(
            facts.now, facts.profile.name, facts.profile.labels,
            facts.profile.data_classes, amount,
        ))
        self._trim(state, facts.now)
        labels = facts.profile.labels
        state.counters["calls"] += 1
        if "read" in labels:
            state.counters["reads"] += 1
            if facts.profile.data_classes & self.sensitive_classes:
                state.counters["sensitive_reads"] += 1
        if "egress" in labels:
            state.counters["egress"] += 1
        moment = facts.now.timestamp()
        self._windows.add(f"agent:{facts.agent}", moment)
        self._windows.add(f"session:{facts.session}", moment)
        self._windows.add(f"tool:{facts.agent}:{facts.profile.name}", moment)
        return state.digest

    def _trim(self, state: SessionState, now: datetime) -> None:
        # History older than the longest window can no longer make a rule fire.
        horizon = now.timestamp() - self._max_window
        while state.history and state.history[0].time.timestamp() < horizon:
            state.history.pop(0)

    def _check(self, rule, state: SessionState, facts: CallFacts) -> str | None:
        if isinstance(rule, SensitiveThenEgress):
            return self._sensitive_then_egress(rule, state, facts)
        if isinstance(rule, RateLimit):
            return self._rate_limit(rule, facts)
        if isinstance(rule, AmountThreshold):
            return self._amount_threshold(rule, facts)
        if isinstance(rule, AmountTotal):
            return self._amount_total(rule, state, facts)
        raise TypeError(f"no evaluator for rule kind {type(rule).__name__}")

    def _sensitive_then_egress(self, rule, state, facts) -> str | None:
        if "egress" not in facts.profile.labels:
            return None
        untrusted = sorted(
            argument
            for argument, source in facts.destination_sources.items()
            if source not in rule.trusted_sources
        )
        if not untrusted and (facts.destination_sources or facts.names_destinations):
            return None
        horizon = facts.now.timestamp() - rule.window_seconds
        classes = set(rule.data_classes)
        reads = [
            step for step in state.history
            if "read" in step.labels
            and step.data_classes & classes
            and step.time.timestamp() >= horizon
        ]
        if len(reads) < rule.min_reads:
            return None
        read_classes = sorted(set().union(*(s.data_classes & classes for s in reads)))
        where = ", ".join(untrusted) if untrusted else "an unnamed destination"
        return (
            f"{len(reads)} read(s) of {', '.join(read_classes)} data, then "
            f"{facts.profile.name} sends to {where} that the purpose did not name"
        )

    def _rate_limit(self, rule: RateLimit, facts: CallFacts) -> str | None:
        key = {
            "agent": f"agent:{facts.agent}",
            "session": f"session:{facts.session}",
            "tool": f"tool:{facts.agent}:{facts.profile.name}",
        }[rule.per]
        used = self._windows.count(key, facts.now.timestamp(), rule.window_seconds)
        if used < rule.limit:
            return None
        return (
            f"{rule.per} made {used} calls in the last {rule.window_seconds:g} s; "
            f"the limit is {rule.limit}"
        )

    @staticmethod
    def _amount_threshold(rule: AmountThreshold, facts: CallFacts) -> str | None:
        if "financial" not in facts.profile.labels:
            return None
        unreadable = _describe_unreadable(facts)
        if unreadable:
            return f"{unreadable}; the limit of {rule.max_amount:g} cannot be checked"
        over = [a for a in facts.amounts if a > rule.max_amount]
        if not over:
            return None
        return f"amount {over[0]:g} exceeds the limit of {rule.max_amount:g}"

    @staticmethod
    def _amount_total(rule: AmountTotal, state, facts: CallFacts) -> str | None:
        if "financial" not in facts.profile.labels:
            return None
        unreadable = _describe_unreadable(facts)
        if unreadable:
            return (
                f"{unreadable}; the session limit of {rule.max_total:g} cannot be "
                "checked"
            )
        if not facts.amounts:
            return None
        horizon = facts.now.timestamp() - rule.window_seconds
        spent = sum(s.amount for s in state.history if s.time.timestamp() >= horizon)
        total = spent + sum(facts.amounts)
        if total <= rule.max_total:
            return None
        return (
            f"amounts in this session would reach {total:g}; the limit is "
            f"{rule.max_total:g}"
        )


def _describe_unreadable(facts: CallFacts) -> str | None:
    arguments = facts.unreadable_amounts
    if not arguments:
        return None
    value = facts.arguments[arguments[0]]
    return f"amount argument {arguments[0]}={value!r} is not a number"


def strictest(verdicts) -> str:
    """Return the most restrictive of the verdicts (deny > hold > allow)."""
    return max(verdicts, key=VERDICT_ORDER.__getitem__, default="allow")
