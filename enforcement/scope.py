"""Scopes: what a delegation lets its subject do.

A scope is a list of capabilities. A capability names a tool, exactly or as a
prefix ending in ``*``, and may constrain the call's arguments. Parsing is
strict: an unknown member or constraint kind raises ``DelegationError``, so a
checker never skips a field it does not understand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from enforcement import jcs
from enforcement.errors import DelegationError, InvalidRequest

_CAPABILITY_MEMBERS = {"tool", "constraints"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _values_of(argument: Any) -> list[Any]:
    """Return the values a constraint checks: the items of a list, else the value."""
    return list(argument) if isinstance(argument, list) else [argument]


def _canonical_or_none(value: Any) -> bytes | None:
    try:
        return jcs.canonical(value)
    except InvalidRequest:
        return None


def _is_one_of(value: Any, allowed: tuple[Any, ...]) -> bool:
    """Return True when ``value`` is the same JSON value as an item of ``allowed``.

    Python's ``==`` finds ``True == 1`` and ``False == 0``; JSON does not, so
    values are compared by their RFC 8785 bytes, where ``1`` and ``1.0`` are
    one number. A value that is not JSON matches nothing.
    """
    key = _canonical_or_none(value)
    return key is not None and any(key == _canonical_or_none(item) for item in allowed)


@dataclass(frozen=True)
class Constraint:
    """One constraint on one argument: ``max`` or ``one_of``."""

    kind: str
    value: Any

    @classmethod
    def parse(cls, argument: str, raw: Any) -> Constraint:
        if not isinstance(raw, Mapping) or len(raw) != 1:
            raise DelegationError(
                f"constraint on {argument!r} must be an object with exactly one "
                f"kind (max or one_of), got {raw!r}",
                rule="scope.constraint",
            )
        ((kind, value),) = raw.items()
        if kind == "max":
            if not _is_number(value):
                raise DelegationError(
                    f"constraint max on {argument!r} must be a number, got {value!r}",
                    rule="scope.constraint",
                )
        elif kind == "one_of":
            if not isinstance(value, list) or not value:
                raise DelegationError(
                    f"constraint one_of on {argument!r} must be a non-empty list, "
                    f"got {value!r}",
                    rule="scope.constraint",
                )
            value = tuple(value)
        else:
            raise DelegationError(
                f"unknown constraint kind {kind!r} on {argument!r}; "
                "this gate understands max and one_of",
                rule="scope.constraint",
            )
        return cls(kind, value)

    def holds(self, argument: Any) -> bool:
        """Return True when the argument's value satisfies this constraint."""
        if self.kind == "max":
            return _is_number(argument) and argument <= self.value
        return all(_is_one_of(item, self.value) for item in _values_of(argument))

    def within(self, parent: Constraint) -> bool:
        """Return True when this constraint is at least as tight as ``parent``."""
        if self.kind != parent.kind:
            return False
        if self.kind == "max":
            return self.value <= parent.value
        return all(_is_one_of(item, parent.value) for item in self.value)

    def to_json(self) -> dict[str, Any]:
        value = list(self.value) if self.kind == "one_of" else self.value
        return {self.kind: value}


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


@dataclass(frozen=True)
class Capability:
    """A tool pattern and the constraints on its arguments."""

    tool: str
    constraints: tuple[tuple[str, Constraint], ...] = ()

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
                "allowed: tool, constraints",
                rule="scope.capability",
            )
        tool = _check_pattern(raw.get("tool"))
        constraints_raw = raw.get("constraints", {})
        if not isinstance(constraints_raw, Mapping):
            raise DelegationError(
                f"constraints of {tool!r} must be an object", rule="scope.constraint"
            )
        constraints = []
        for argument in constraints_raw:
            if not isinstance(argument, str):
                raise DelegationError(
                    f"constraints of {tool!r}: argument name {argument!r} must be "
                    f"a string, got {type(argument).__name__}",
                    rule="scope.constraint",
                )
        for argument, constraint in sorted(constraints_raw.items()):
            if ".." in argument:
                raise DelegationError(
                    f"argument name {argument!r} may not contain '..'",
                    rule="scope.constraint",
                )
            constraints.append((argument, Constraint.parse(argument, constraint)))
        return cls(tool, tuple(constraints))

    def matches_tool(self, tool: str) -> bool:
        return _pattern_within(tool, self.tool)

    def violations(self, arguments: Mapping[str, Any]) -> list[str]:
        """Return a sentence for each constraint the arguments break."""
        problems = []
        for argument, constraint in self.constraints:
            if argument not in arguments:
                problems.append(
                    f"argument {argument!r} is constrained "
                    f"({constraint.to_json()}) but missing"
                )
            elif not constraint.holds(arguments[argument]):
                problems.append(
                    f"argument {argument!r}={arguments[argument]!r} breaks "
                    f"{constraint.to_json()}"
                )
        return problems

    def within(self, parent: Capability) -> bool:
        """Return True when this capability never grants more than ``parent``.

        A parent constraint that this capability lacks is inherited, so it does
        not widen the grant. A constraint it has must be at least as tight.
        """
        if not _pattern_within(self.tool, parent.tool):
            return False
        own = dict(self.constraints)
        return all(
            own[argument].within(constraint)
            for argument, constraint in parent.constraints
            if argument in own
        )

    def inherit(self, parent: Capability) -> Capability:
        """Return this capability with the parent's constraints it lacks added."""
        merged = dict(parent.constraints)
        merged.update(self.constraints)
        return Capability(self.tool, tuple(sorted(merged.items())))

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"tool": self.tool}
        if self.constraints:
            result["constraints"] = {a: c.to_json() for a, c in self.constraints}
        return result


@dataclass(frozen=True)
class Scope:
    """A set of capabilities."""

    capabilities: tuple[Capability, ...] = field(default_factory=tuple)

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
        """Return why the call is outside the scope; an empty list means inside."""
        candidates = [c for c in self.capabilities if c.matches_tool(tool)]
        if not candidates:
            return [f"no capability covers tool {tool!r}"]
        problems: list[str] = []
        for capability in candidates:
            found = capability.violations(arguments)
            if not found:
                return []
            problems.extend(found)
        return problems

    def to_json(self) -> dict[str, Any]:
        return {"capabilities": [c.to_json() for c in self.capabilities]}
