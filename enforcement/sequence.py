"""Sequence state: what a session and an agent have done, and the rules on it.

Each session keeps its history of executed calls and a rolling state digest:
``after = SHA-256(before || JCS(step))``, so the digests sealed in decisions
chain every step of the session. Agents and sessions keep sliding windows for
rate limits and for the volume of data their calls returned.

The rule kinds are described in ``specs/policy.md``: ordered sequences of
calls, data flows from tool outputs into arguments, volumes read, rate
limits, sensitive reads then egress, and amounts. The check of each kind is
in ``enforcement.rule_checks``.

Evaluation and the update that follows an allow happen under one lock, so N
concurrent calls against a limit of k allow exactly k. A rule that raises
denies the call and its id is recorded.

The history is scanned on every call, so what a scan reads is prepared
once: each step keeps its time in POSIX seconds and a bit mask of the call
patterns it matches (the steps of sequence rules, and the sensitive reads
of ``sensitive_read_then_egress`` rules), computed once per tool profile.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from json.encoder import encode_basestring
from typing import Any

from enforcement import jcs
from enforcement.errors import InvalidRequest
from enforcement.policy import (
    VERDICT_ORDER,
    DataFlowRule,
    RateLimit,
    SensitiveThenEgress,
    SequenceRule,
    VolumeRule,
)
from enforcement.profiles import ToolProfile
from enforcement.rule_checks import CHECKS, RuleChecks
from enforcement.timeutil import format_time
from enforcement.windows import Windows

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
    # Traces an argument value to its source (``Provenance.source_of``); data
    # flow rules read it. Without it every value counts as "unknown".
    source_of: Callable[[Any], str] | None = None

    @cached_property
    def moment(self) -> float:
        """``now`` in POSIX seconds."""
        return self.now.timestamp()

    @cached_property
    def rate_keys(self) -> dict[str, str]:
        """The rate-limit window keys of this call, by ``RateLimit.per``."""
        return {
            "agent": f"agent:{self.agent}",
            "session": f"session:{self.session}",
            "tool": f"tool:{self.agent}:{self.profile.name}",
        }

    @cached_property
    def amounts(self) -> list[float]:
        """The amount arguments that read as numbers (see ``read_amount``)."""
        values = []
        for argument in self.profile.arguments_with_roles({"amount"}):
            amount = read_amount(self.arguments.get(argument))
            if amount is not None:
                values.append(amount)
        return values

    @cached_property
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
    # ``time`` in POSIX seconds.
    moment: float = 0.0
    # Bit i is set when the call matches the engine's pattern i.
    matched: int = 0


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
    # True while the history's moments never decrease, so that a scan can
    # start at the first step inside its window (see ``since``).
    ordered: bool = True
    counters: dict[str, int] = field(default_factory=lambda: {
        "calls": 0, "reads": 0, "sensitive_reads": 0, "egress": 0,
    })

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = jcs.digest({"session": self.session})

    def since(self, moment: float) -> Iterable[Step]:
        """Return the steps that may lie at or after ``moment``, in order.

        While the history is ordered, these are the steps from the first one
        at or after ``moment``. Otherwise they are the whole history, so the
        caller must still test each step's moment.
        """
        if not self.ordered:
            return self.history
        start = bisect_left(self.history, moment, key=_moment_of)
        return itertools.islice(self.history, start, None)


# Distinct tool profiles whose pattern masks are kept; beyond it the cache
# starts over (tool names come from agents, so their number is not bounded).
_MASK_CACHE_SIZE = 4096


class SequenceEngine(RuleChecks):
    """Evaluates the policy's sequence rules and keeps their state.

    The check of each rule kind comes from ``RuleChecks``.
    """

    def __init__(self, rules, sensitive_classes: frozenset[str] = frozenset()) -> None:
        self.rules = list(rules)
        self.sensitive_classes = sensitive_classes or frozenset().union(
            *(set(r.data_classes) for r in self.rules
              if isinstance(r, SensitiveThenEgress))
        )
        self._max_window = max(
            (getattr(r, "window_seconds", 0.0) for r in self.rules), default=0.0
        )
        self._windows = Windows(self._max_window)
        # The longest window that a rate limit reads from each kind of rate key.
        # A busy agent's key would otherwise keep its events as long as the
        # longest window of any rule (a day in the default policy).
        self._rate_horizons: dict[str, float] = {}
        for rule in self.rules:
            if isinstance(rule, RateLimit):
                self._rate_horizons[rule.per] = max(
                    self._rate_horizons.get(rule.per, 0.0), rule.window_seconds)
        # Data classes whose returned volume some rule counts.
        self._volume_classes = frozenset().union(
            *(set(r.data_classes) for r in self.rules if isinstance(r, VolumeRule))
        )

        # The call patterns that history scans test, one bit each: every step
        # of every sequence rule, and the sensitive reads of each
        # sensitive_read_then_egress rule. ``_bits`` maps a rule's id to the
        # bits of its steps, or to its one bit.
        self._patterns: list[Callable[[str, frozenset, frozenset], bool]] = []
        self._bits: dict[str, tuple[int, ...]] = {}
        for rule in self.rules:
            if isinstance(rule, SequenceRule):
                self._bits[rule.id] = tuple(self._add_pattern(step.matches)
                                            for step in rule.steps)
            elif isinstance(rule, SensitiveThenEgress):
                self._bits[rule.id] = (self._add_pattern(_sensitive_read(rule)),)
        self._masks: dict[tuple[str, frozenset, frozenset], int] = {}

        # The list fields that checks test membership in, as frozensets.
        self._sets: dict[str, dict[str, frozenset[str]]] = {}
        for rule in self.rules:
            if isinstance(rule, DataFlowRule):
                names = ("labels", "roles", "sources")
            elif isinstance(rule, VolumeRule):
                names = ("data_classes",)
            elif isinstance(rule, SensitiveThenEgress):
                names = ("trusted_sources",)
            else:
                continue
            self._sets[rule.id] = {name: frozenset(getattr(rule, name))
                                   for name in names}

        self._checks = [(rule, *CHECKS.get(type(rule), ("_unknown_kind", False)))
                        for rule in self.rules]
        self.lock = threading.RLock()

    def _add_pattern(self, matches: Callable[[str, frozenset, frozenset], bool]
                     ) -> int:
        self._patterns.append(matches)
        return 1 << (len(self._patterns) - 1)

    def _mask(self, profile: ToolProfile) -> int:
        """Return the bits of the patterns a call of this profile matches."""
        key = (profile.name, profile.labels, profile.data_classes)
        mask = self._masks.get(key)
        if mask is None:
            mask = 0
            for position, matches in enumerate(self._patterns):
                if matches(*key):
                    mask |= 1 << position
            if len(self._masks) >= _MASK_CACHE_SIZE:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def evaluate(self, state: SessionState, facts: CallFacts) -> list[Firing]:
        """Return the rules that fire for this call. Call with ``lock`` held."""
        firings = []
        for rule, name, reads_state in self._checks:
            try:
                check = getattr(self, name)
                text = (check(rule, state, facts) if reads_state
                        else check(rule, facts))
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
        state.digest = hashlib.sha256(
            state.digest.encode()
            + step_bytes(facts.profile.name, format_time(facts.now), verdict)
        ).hexdigest()
        if verdict != "allow":
            return state.digest
        amount = sum(facts.amounts) if "financial" in facts.profile.labels else 0.0
        moment = facts.moment
        if state.history and moment < state.history[-1].moment:
            state.ordered = False
        state.history.append(Step(
            facts.now, facts.profile.name, facts.profile.labels,
            facts.profile.data_classes, amount, moment, self._mask(facts.profile),
        ))
        self._trim(state, moment)
        labels = facts.profile.labels
        state.counters["calls"] += 1
        if "read" in labels:
            state.counters["reads"] += 1
            if facts.profile.data_classes & self.sensitive_classes:
                state.counters["sensitive_reads"] += 1
        if "egress" in labels:
            state.counters["egress"] += 1
        for per, key in facts.rate_keys.items():
            self._windows.add(key, moment, horizon=self._rate_horizons.get(per, 0.0))
        return state.digest

    def end_session(self, session: str) -> None:
        """Forget the rate and volume windows of a session that has ended."""
        keys = [f"session:{session}"]
        keys += [f"session:{session}:{kind}:{data_class}"
                 for kind in ("records", "bytes")
                 for data_class in self._volume_classes]
        with self.lock:
            self._windows.discard(keys)

    def counts_volume(self, profile: ToolProfile) -> bool:
        """Return True when a volume rule counts this tool's results."""
        return bool(profile.data_classes & self._volume_classes)

    def record_result(self, agent: str, session: str, profile: ToolProfile,
                      now: datetime, result: Any) -> None:
        """Count the records and bytes an executed call returned.

        ``result`` is the plain JSON form of the output (``to_plain``), or its
        ``repr`` when the output is not JSON. A list counts one record per
        item and anything else one record. Bytes are the length of the
        result's RFC 8785 form. The call counts under each of its data
        classes that a volume rule watches.
        """
        classes = profile.data_classes & self._volume_classes
        if not classes:
            return
        records = len(result) if isinstance(result, list) else 1
        try:
            size = len(jcs.canonical(result))
        except InvalidRequest:
            size = len(repr(result).encode("utf-8", "replace"))
        moment = now.timestamp()
        with self.lock:
            for owner in (f"session:{session}", f"agent:{agent}"):
                for data_class in sorted(classes):
                    self._windows.add(f"{owner}:records:{data_class}", moment,
                                      records)
                    self._windows.add(f"{owner}:bytes:{data_class}", moment, size)

    def _trim(self, state: SessionState, now: float) -> None:
        # History older than the longest window can no longer make a rule fire.
        horizon = now - self._max_window
        trimmed = 0
        for step in state.history:
            if step.moment >= horizon:
                break
            trimmed += 1
        if trimmed:
            del state.history[:trimmed]

def _moment_of(step: Step) -> float:
    return step.moment


def _sensitive_read(rule: SensitiveThenEgress
                    ) -> Callable[[str, frozenset, frozenset], bool]:
    """Return a test of whether a call is a read of the rule's data classes."""
    classes = frozenset(rule.data_classes)

    def matches(tool: str, labels: frozenset, data_classes: frozenset) -> bool:
        return "read" in labels and bool(data_classes & classes)
    return matches


def step_bytes(tool: str, time: str, verdict: str) -> bytes:
    """Return ``JCS({"time": time, "tool": tool, "verdict": verdict})``.

    For strings without lone surrogates, ``json.encoder.encode_basestring``
    (what ``json.dumps`` uses with ``ensure_ascii=False``) writes the escapes
    RFC 8785 requires, and the names are written in RFC 8785 order. A lone
    surrogate raises ``InvalidRequest``.
    """
    text = (f'{{"time":{encode_basestring(time)},"tool":{encode_basestring(tool)},'
            f'"verdict":{encode_basestring(verdict)}}}')
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRequest(
            f"tool name {tool!r} contains a lone surrogate; name tools with "
            "valid Unicode"
        ) from err


def strictest(verdicts) -> str:
    """Return the most restrictive of the verdicts (deny > hold > allow)."""
    return max(verdicts, key=VERDICT_ORDER.__getitem__, default="allow")
