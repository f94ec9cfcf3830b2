"""The checks of each sequence-rule kind, mixed into ``SequenceEngine``.

Each check receives a rule, the facts of the call being decided and, for
the kinds that read history, the session's state. It returns None when the
rule does not fire, or the sentence a decision's reason carries. The rule
kinds are described in ``specs/policy.md``.

``RuleChecks`` keeps no state of its own. It reads what the engine prepares
once (``enforcement.sequence``): ``_windows`` (the sliding windows of rate
and volume rules), ``_bits`` (a rule's call-pattern bits), ``_sets`` (a
rule's list fields as frozensets) and ``_mask`` (the pattern bits of a
profile).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enforcement.policy import (
    AmountThreshold,
    AmountTotal,
    CallPattern,
    DataFlowRule,
    RateLimit,
    SensitiveThenEgress,
    SequenceRule,
    VolumeRule,
    tool_matches,
)

if TYPE_CHECKING:
    from enforcement.sequence import CallFacts, SessionState

# The check method of each rule kind, and whether it reads the session's
# state. The engine looks a method up by name on each call, so a test can
# replace one.
CHECKS: dict[type, tuple[str, bool]] = {
    SensitiveThenEgress: ("_sensitive_then_egress", True),
    SequenceRule: ("_sequence", True),
    DataFlowRule: ("_data_flow", False),
    VolumeRule: ("_volume", False),
    RateLimit: ("_rate_limit", False),
    AmountThreshold: ("_amount_threshold", False),
    AmountTotal: ("_amount_total", True),
}


class RuleChecks:
    """The check of each rule kind; see the module docstring."""

    @staticmethod
    def _unknown_kind(rule, facts: CallFacts) -> str | None:
        raise TypeError(f"no evaluator for rule kind {type(rule).__name__}")

    def _sensitive_then_egress(self, rule, state, facts) -> str | None:
        if "egress" not in facts.profile.labels:
            return None
        trusted = self._sets[rule.id]["trusted_sources"]
        untrusted = sorted(
            argument
            for argument, source in facts.destination_sources.items()
            if source not in trusted
        )
        if not untrusted and (facts.destination_sources or facts.names_destinations):
            return None
        horizon = facts.moment - rule.window_seconds
        (bit,) = self._bits[rule.id]
        reads = [step for step in state.since(horizon)
                 if step.matched & bit and step.moment >= horizon]
        if len(reads) < rule.min_reads:
            return None
        classes = set(rule.data_classes)
        read_classes = sorted(set().union(*(s.data_classes & classes for s in reads)))
        where = ", ".join(untrusted) if untrusted else "an unnamed destination"
        return (
            f"{len(reads)} read(s) of {', '.join(read_classes)} data, then "
            f"{facts.profile.name} sends to {where} that the purpose did not name"
        )

    def _rate_limit(self, rule: RateLimit, facts: CallFacts) -> str | None:
        used = self._windows.total(facts.rate_keys[rule.per], facts.moment,
                                   rule.window_seconds)
        if used < rule.limit:
            return None
        return (
            f"{rule.per} made {used} calls in the last {rule.window_seconds:g} s; "
            f"the limit is {rule.limit}"
        )

    def _sequence(self, rule: SequenceRule, state: SessionState,
                  facts: CallFacts) -> str | None:
        # Completing each step at its earliest possible call leaves the most
        # history for the steps after it, so one greedy pass finds a match
        # whenever any assignment of calls to steps exists.
        profile = facts.profile
        steps = rule.steps
        bits = self._bits[rule.id]
        last = len(steps) - 1
        if not self._mask(profile) & bits[last]:
            return None
        horizon = facts.moment - rule.window_seconds
        position, count = 0, 0
        for step in state.since(horizon):
            # The window is (now - window_seconds, now], as for rate limits.
            if step.moment <= horizon:
                continue
            if not step.matched & bits[position]:
                continue
            count += 1
            if position < last and count >= steps[position].min_count:
                position, count = position + 1, 0
        # The current call is one more match of the last step.
        if position < last or count + 1 < steps[last].min_count:
            return None
        described = [
            f"{step.min_count} call(s) {_describe_pattern(step)}"
            for step in steps[:-1]
        ]
        prefix = f"after {', then '.join(described)}, " if described else ""
        return (
            f"{prefix}{profile.name} is call {count + 1} "
            f"{_describe_pattern(steps[last])} within {rule.window_seconds:g} s"
        )

    def _data_flow(self, rule: DataFlowRule, facts: CallFacts) -> str | None:
        profile = facts.profile
        sets = self._sets[rule.id]
        if rule.labels and not profile.labels & sets["labels"]:
            return None
        if rule.tools and not any(tool_matches(p, profile.name) for p in rule.tools):
            return None
        flagged = []
        for argument in profile.arguments_with_roles(sets["roles"]):
            value = facts.arguments.get(argument)
            if value is None:
                continue
            source = facts.source_of(value) if facts.source_of else "unknown"
            if source in sets["sources"]:
                flagged.append(f"{argument} ({profile.role(argument)}) from {source}")
        if not flagged:
            return None
        return (
            f"{profile.name} takes {', '.join(flagged)}, not from the purpose or "
            "the principal"
        )

    def _volume(self, rule: VolumeRule, facts: CallFacts) -> str | None:
        classes = facts.profile.data_classes & self._sets[rule.id]["data_classes"]
        if not classes:
            return None
        owner = facts.session if rule.per == "session" else facts.agent
        for data_class in sorted(classes):
            used = self._windows.total(
                f"{rule.per}:{owner}:{rule.unit}:{data_class}",
                facts.moment, rule.window_seconds,
            )
            if used >= rule.limit:
                return (
                    f"{rule.per} already read {used} {rule.unit} of {data_class} "
                    f"data in the last {rule.window_seconds:g} s; the limit is "
                    f"{rule.limit}"
                )
        return None

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
        horizon = facts.moment - rule.window_seconds
        spent = sum(step.amount for step in state.since(horizon)
                    if step.amount and step.moment >= horizon)
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


def _describe_pattern(pattern: CallPattern) -> str:
    parts = []
    if pattern.tools:
        parts.append(f"tool {' or '.join(pattern.tools)}")
    if pattern.labels:
        parts.append(f"label {' or '.join(pattern.labels)}")
    if pattern.data_classes:
        parts.append(f"data {' or '.join(pattern.data_classes)}")
    return "with " + " and ".join(parts)
