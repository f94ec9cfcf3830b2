"""Delegation scopes and the attenuation check, from ``specs/delegation.md``.

A scope is ``{"capabilities": [...]}``. A capability has ``tool`` (a name,
or a prefix ending in ``*``), optional ``constraints`` (argument name to an
object of constraint kinds) and an optional ``budget`` (``{"calls": n}``).
Parsing is strict: an unknown member or kind, or ``..`` anywhere in the
definition, makes the certificate invalid.

``capability_within(child, parent)`` is chain rule 6. The child's tool
pattern must lie within the parent's, and its budget must be no larger.
Each constraint kind the parent sets on an argument must, when the child
sets it too, be within the parent's; a kind the child leaves out is
inherited. With
``strict=True`` a kind or budget the parent sets must also be present: an
effective scope, which carries every ancestor's kinds, is checked that way.
The per-kind comparisons are in ``verifier.constraints``.
"""

from dataclasses import dataclass
from typing import Any

from verifier._encoding import shorten
from verifier.constraints import KINDS, kind_within, parse_kind
from verifier.errors import MalformedInput

_CAPABILITY_MEMBERS = {"tool", "constraints", "budget"}
_MAX_CALLS = 2**53 - 1


@dataclass(frozen=True)
class Capability:
    """One parsed capability; constraint values are in their normal form."""

    tool: str
    constraints: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    budget: int | None

    def matches_tool(self, tool: str) -> bool:
        """Return whether the tool name ``tool`` is one this capability names."""
        return pattern_within(tool, self.tool)


def pattern_within(child: str, parent: str) -> bool:
    """Return whether every tool name ``child`` matches is matched by ``parent``."""
    if parent.endswith("*"):
        return child.startswith(parent[:-1])
    return child == parent


def parse_scope(raw: object, label: str = "scope") -> tuple[Capability, ...]:
    """Parse a scope object strictly; raise ``MalformedInput`` naming the problem."""
    if not isinstance(raw, dict) or set(raw) != {"capabilities"}:
        raise MalformedInput(
            f"{label}: expected an object with only 'capabilities', got {shorten(raw)}"
        )
    items = raw["capabilities"]
    if not isinstance(items, list):
        raise MalformedInput(f"{label}: capabilities must be a list")
    return tuple(
        _parse_capability(item, f"{label} capability {position}")
        for position, item in enumerate(items)
    )


def capability_within(
    child: Capability, parent: Capability, strict: bool = False
) -> str | None:
    """Return None when ``child`` grants nothing beyond ``parent``, else the reason."""
    if not pattern_within(child.tool, parent.tool):
        return f"tool {child.tool!r} is not within {parent.tool!r}"
    if parent.budget is not None:
        if child.budget is None and strict:
            return f"tool {child.tool!r} lacks the budget of {parent.budget} calls"
        if child.budget is not None and child.budget > parent.budget:
            return (
                f"tool {child.tool!r} has a budget of {child.budget} calls, "
                f"more than the {parent.budget} of its parent"
            )
    own = {argument: dict(kinds) for argument, kinds in child.constraints}
    for argument, kinds in parent.constraints:
        child_kinds = own.get(argument, {})
        for kind, parent_value in kinds:
            if kind not in child_kinds:
                if strict:
                    return (
                        f"tool {child.tool!r}: argument {argument!r} lacks the "
                        f"{kind} constraint of its parent"
                    )
                continue
            problem = kind_within(kind, child_kinds[kind], parent_value)
            if problem is not None:
                return f"tool {child.tool!r}: argument {argument!r}: {problem}"
    return None


def scope_within(
    child: tuple[Capability, ...], parent: tuple[Capability, ...], strict: bool = False
) -> str | None:
    """Return None when every child capability is within some parent capability."""
    for position, capability in enumerate(child):
        reasons = [capability_within(capability, p, strict) for p in parent]
        if all(reason is not None for reason in reasons):
            detail = (
                reasons[0]
                if len(reasons) == 1
                else ("no capability of the parent covers it")
            )
            if not reasons:
                detail = "the parent scope is empty"
            return f"capability {position} ({capability.tool!r}) is too wide: {detail}"
    return None


def _parse_capability(raw: object, label: str) -> Capability:
    if not isinstance(raw, dict):
        raise MalformedInput(f"{label}: expected an object, got {shorten(raw)}")
    unknown = set(raw) - _CAPABILITY_MEMBERS
    if unknown:
        raise MalformedInput(
            f"{label}: unknown members {sorted(unknown)}; a capability has only "
            "tool, constraints and budget"
        )
    tool = raw.get("tool")
    if not isinstance(tool, str) or not tool or "*" in tool[:-1] or ".." in tool:
        raise MalformedInput(
            f"{label}: tool must be a non-empty name or prefix ending in '*', "
            f"without '..', got {shorten(tool)}"
        )

    constraints_raw = raw.get("constraints", {})
    if not isinstance(constraints_raw, dict):
        raise MalformedInput(f"{label}: constraints of {tool!r} must be an object")
    constraints = []
    for argument in sorted(constraints_raw):
        kinds_raw = constraints_raw[argument]
        where = f"{label} argument {argument!r}"
        if ".." in argument:
            raise MalformedInput(f"{where}: an argument name may not contain '..'")
        if not isinstance(kinds_raw, dict) or not kinds_raw:
            raise MalformedInput(f"{where}: expected an object of constraint kinds")
        unknown_kinds = set(kinds_raw) - KINDS
        if unknown_kinds:
            raise MalformedInput(
                f"{where}: unknown constraint kinds {sorted(unknown_kinds)}; "
                f"known kinds are {sorted(KINDS)}"
            )
        kinds = tuple(
            (kind, parse_kind(kind, kinds_raw[kind], where))
            for kind in sorted(kinds_raw)
        )
        constraints.append((argument, kinds))

    budget = None
    if raw.get("budget") is not None:
        value = raw["budget"]
        calls = value.get("calls") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or set(value) != {"calls"}
            or not isinstance(calls, int)
            or isinstance(calls, bool)
            or not 0 <= calls <= _MAX_CALLS
        ):
            raise MalformedInput(
                f'{label}: budget must be {{"calls": n}} with n from 0 to 2^53 - 1, '
                f"got {shorten(value)}"
            )
        budget = calls
    return Capability(tool, tuple(constraints), budget)
