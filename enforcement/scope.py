"""Scopes: what a delegation lets its subject do.

A scope is a list of capabilities. A capability names a tool, exactly or as a
prefix ending in ``*``, may constrain the call's arguments (the kinds are in
``enforcement.constraints``), and may carry a call budget. A child scope is
attenuated by its parent's: every child capability must lie within a parent
capability and inherits the parent's constraints and budgets. Parsing is
strict: an unknown member raises ``DelegationError``, so a checker never
skips a field it does not understand. The format is in
``specs/delegation.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from enforcement.constraints import Constraint
from enforcement.errors import DelegationError

_CAPABILITY_MEMBERS = {"tool", "constraints", "budget"}
_MAX_CALLS = 2**53 - 1
_COVERING_MEMO_SIZE = 1024


def _pattern_within(child: str, parent: str) -> bool:
    """Return True when every tool name ``child`` matches also matches ``parent``."""
    if parent.endswith("*"):
        return child.startswith(parent[:-1])
    return child == parent


def _check_pattern(pattern: Any) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise DelegationError(
            f"capability tool must be a non-empty string, got {pattern!r}",
            rule="scope.tool",
        )
    if "*" in pattern[:-1] or ".." in pattern:
        raise DelegationError(
            f"tool pattern {pattern!r}: '*' is allowed only at the end and "
            "'..' is never allowed",
            rule="scope.tool",
        )
    return pattern


def _parse_budget(tool: str, raw: Any) -> int | None:
    if raw is None:
        return None
    calls = raw.get("calls") if isinstance(raw, Mapping) else None
    if (not isinstance(raw, Mapping) or set(raw) != {"calls"}
            or not isinstance(calls, int) or isinstance(calls, bool)
            or not 0 <= calls <= _MAX_CALLS):
        raise DelegationError(
            f"budget of {tool!r} must be {{\"calls\": n}} with n a non-negative "
            f"integer, got {raw!r}",
            rule="scope.budget",
        )
    return calls


@dataclass(frozen=True)
class BudgetRef:
    """One counter a call is charged to: a certificate's capability and its limit."""

    key: str
    calls: int


@dataclass(frozen=True)
class Capability:
    """A tool pattern, the constraints on its arguments and an optional budget.

    ``charges`` lists the counters an admitted call is charged to: one per
    certificate in the chain whose capability carries a budget. It is filled
    in by ``Scope.bind_budgets`` and ``inherit``, never parsed.
    """

    tool: str
    constraints: tuple[tuple[str, Constraint], ...] = ()
    budget: int | None = None
    charges: tuple[BudgetRef, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> Capability:
        if not isinstance(raw, Mapping):
            raise DelegationError(
                f"capability must be an object, got {raw!r}", rule="scope.capability"
            )
        unknown = set(raw) - _CAPABILITY_MEMBERS
        if unknown:
            raise DelegationError(
                f"capability has unknown members {sorted(unknown)}; "
                "allowed: tool, constraints, budget",
                rule="scope.capability",
            )
        tool = _check_pattern(raw.get("tool"))
        constraints_raw = raw.get("constraints", {})
        if not isinstance(constraints_raw, Mapping):
            raise DelegationError(
                f"constraints of {tool!r} must be an object", rule="scope.constraint"
            )
        for argument in constraints_raw:
            if not isinstance(argument, str):
                raise DelegationError(
                    f"constraints of {tool!r}: argument name {argument!r} must be "
                    f"a string, got {type(argument).__name__}",
                    rule="scope.constraint",
                )
        constraints = []
        for argument, constraint in sorted(constraints_raw.items()):
            if ".." in argument:
                raise DelegationError(
                    f"argument name {argument!r} may not contain '..'",
                    rule="scope.constraint",
                )
            constraints.append((argument, Constraint.parse(argument, constraint)))
        budget = _parse_budget(tool, raw.get("budget"))
        return cls(tool, tuple(constraints), budget)

    def matches_tool(self, tool: str) -> bool:
        return _pattern_within(tool, self.tool)

    def violations(self, arguments: Mapping[str, Any]) -> list[str]:
        """Return a sentence for each constraint kind the arguments break."""
        problems = []
        for argument, constraint in self.constraints:
            if argument not in arguments:
                problems.append(
                    f"argument {argument!r} is constrained "
                    f"({constraint.to_json()}) but missing"
                )
                continue
            value = arguments[argument]
            for kind, reason in constraint.failures(value):
                detail = f": {reason}" if reason else ""
                problems.append(
                    f"argument {argument!r}={value!r} breaks "
                    f"{ {kind.name: kind.to_json()} }{detail}"
                )
        return problems

    def within(self, parent: Capability) -> bool:
        """Return True when this capability never grants more than ``parent``.

        A parent constraint kind that this capability lacks is inherited, so
        it does not widen the grant. A kind it has must be at least as tight,
        and so must its budget.
        """
        if not _pattern_within(self.tool, parent.tool):
            return False
        if parent.budget is not None and self.budget is not None and (
                self.budget > parent.budget):
            return False
        own = dict(self.constraints)
        return all(
            own[argument].merged_with(constraint).within(constraint)
            for argument, constraint in parent.constraints
            if argument in own
        )

    def inherit(self, parent: Capability) -> Capability:
        """Return this capability with the parent's constraints and budgets added."""
        merged = dict(parent.constraints)
        for argument, constraint in self.constraints:
            inherited = merged.get(argument)
            merged[argument] = (constraint if inherited is None
                                else constraint.merged_with(inherited))
        charges = parent.charges + tuple(
            ref for ref in self.charges if ref not in parent.charges)
        return Capability(
            self.tool, tuple(sorted(merged.items())),
            self.budget if self.budget is not None else parent.budget, charges,
        )

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"tool": self.tool}
        if self.constraints:
            result["constraints"] = {a: c.to_json() for a, c in self.constraints}
        if self.budget is not None:
            result["budget"] = {"calls": self.budget}
        return result


class CallBudgets:
    """Counts of admitted calls per budget counter, kept in the gate's memory.

    ``try_charge`` checks and increments every counter of a capability under
    one lock, so N concurrent calls against a budget of k admit exactly k.
    """

    def __init__(self) -> None:
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def try_charge(self, refs: Sequence[BudgetRef]) -> BudgetRef | None:
        """Charge one call to every counter; return the exhausted one, else None."""
        with self._lock:
            for ref in refs:
                if self._used.get(ref.key, 0) >= ref.calls:
                    return ref
            for ref in refs:
                self._used[ref.key] = self._used.get(ref.key, 0) + 1
        return None

    def refund(self, refs: Sequence[BudgetRef]) -> None:
        """Give back one call charged with ``try_charge``."""
        with self._lock:
            for ref in refs:
                self._used[ref.key] = max(0, self._used.get(ref.key, 0) - 1)

    def used(self, key: str) -> int:
        with self._lock:
            return self._used.get(key, 0)


@dataclass(frozen=True)
class Admission:
    """The result of ``Scope.admit``: why a call is outside, or what it was charged."""

    problems: tuple[str, ...] = ()
    exhausted: tuple[str, ...] = ()
    charged: tuple[BudgetRef, ...] = ()

    @property
    def admitted(self) -> bool:
        return not self.problems and not self.exhausted


@dataclass(frozen=True)
class Scope:
    """A set of capabilities."""

    capabilities: tuple[Capability, ...] = field(default_factory=tuple)
    # The capabilities naming each tool seen, in order; see ``covering``.
    _covering: dict[str, tuple[Capability, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def covering(self, tool: str) -> tuple[Capability, ...]:
        """Return the capabilities whose tool pattern matches ``tool``, in order."""
        found = self._covering.get(tool)
        if found is None:
            found = tuple(c for c in self.capabilities if c.matches_tool(tool))
            # Tool names come from agents, so the memo is bounded.
            if len(self._covering) >= _COVERING_MEMO_SIZE:
                self._covering.clear()
            self._covering[tool] = found
        return found

    @classmethod
    def parse(cls, raw: Any) -> Scope:
        if not isinstance(raw, Mapping) or set(raw) != {"capabilities"}:
            raise DelegationError(
                f"scope must be an object with only 'capabilities', got {raw!r}",
                rule="scope",
            )
        items = raw["capabilities"]
        if not isinstance(items, list):
            raise DelegationError("scope capabilities must be a list", rule="scope")
        return cls(tuple(Capability.parse(item) for item in items))

    def bind_budgets(self, certificate_hash: str) -> Scope:
        """Return the scope with each budget bound to a counter of this certificate."""
        return Scope(tuple(
            replace(capability, charges=(
                BudgetRef(f"{certificate_hash}/{position}", capability.budget),))
            if capability.budget is not None else capability
            for position, capability in enumerate(self.capabilities)
        ))

    def attenuate(self, child: Scope) -> Scope:
        """Return the effective scope of ``child`` under this scope.

        Raises ``DelegationError`` when a child capability is not within any
        capability of this scope.
        """
        effective: list[Capability] = []
        for capability in child.capabilities:
            parents = [p for p in self.capabilities if capability.within(p)]
            if not parents:
                raise DelegationError(
                    f"capability {capability.to_json()} is wider than every "
                    "capability of the parent scope",
                    rule="chain.scope",
                )
            for parent in parents:
                merged = capability.inherit(parent)
                if merged not in effective:
                    effective.append(merged)
        return Scope(tuple(effective))

    def check(self, tool: str, arguments: Mapping[str, Any]) -> list[str]:
        """Return why the call is outside the scope; an empty list means inside.

        Budgets are not consulted; ``admit`` charges them.
        """
        candidates = self.covering(tool)
        if not candidates:
            return [f"no capability covers tool {tool!r}"]
        problems: list[str] = []
        for capability in candidates:
            found = capability.violations(arguments)
            if not found:
                return []
            problems.extend(found)
        return problems

    def admit(self, tool: str, arguments: Mapping[str, Any],
              budgets: CallBudgets) -> Admission:
        """Find the first capability that allows the call and has budget left.

        The call is charged to that capability's counters at once. A caller
        that then refuses the call gives the charge back with
        ``CallBudgets.refund(admission.charged)``.
        """
        candidates = self.covering(tool)
        if not candidates:
            return Admission(problems=(f"no capability covers tool {tool!r}",))
        problems: list[str] = []
        exhausted: list[str] = []
        for capability in candidates:
            found = capability.violations(arguments)
            if found:
                problems.extend(found)
                continue
            if not capability.charges:
                return Admission()
            spent = budgets.try_charge(capability.charges)
            if spent is None:
                return Admission(charged=capability.charges)
            certificate = spent.key.partition("/")[0]
            exhausted.append(
                f"capability {capability.tool!r} has used its budget of "
                f"{spent.calls} calls (certificate {certificate})"
            )
        return Admission(problems=tuple(problems), exhausted=tuple(exhausted))

    def to_json(self) -> dict[str, Any]:
        return {"capabilities": [c.to_json() for c in self.capabilities]}
