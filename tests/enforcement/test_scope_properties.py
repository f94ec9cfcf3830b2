"""Property tests for attenuation: no valid chain ever grants more than its root.

Hypothesis draws a root scope and up to two further links, each mostly a
narrowing of its parent's scope (same or narrower pattern, tighter, kept or
dropped constraints, smaller budgets) and sometimes a random or loosened one.
Constraints use every kind: numbers (max, min), JSON values (one_of), path
and URL prefixes, domains and shell commands. The chain is signed and
verified for real. When it is accepted, every call that its effective scope
allows must also be allowed by the root's scope and by each link's own scope,
and no sequence of calls may be admitted more often than a budget of the
root allows.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from enforcement.constraints import Constraint
from enforcement.delegation import ChainVerifier
from enforcement.errors import DelegationError
from enforcement.scope import CallBudgets, Scope
from tests.enforcement.conftest import T0, issue, seeded_identity

TOOLS = ["read_file", "read_mail", "send_money", "send_mail", "delete_file",
         "readme", "send_money_now"]
PATTERNS = ["*", "read_*", "send_*", "send_m*", "delete_*", "re*", *TOOLS]
ARGUMENTS = ["amount", "recipient", "count"]
# Booleans sit next to 0 and 1 on purpose: JSON true is not the number 1.
VALUES = ["a", "b", "c", 0, 1, 2, True, False, 1.5]

# Entries of the set-like kinds, and argument values that probe their edges:
# siblings sharing a text prefix, traversal, encoding and case tricks.
ENTRIES = {
    "path_prefix": ["/", "/srv", "/srv/data", "/srv/data/reports", "/srv/database",
                    "/etc"],
    "url_prefix": ["https://api.example.com/", "https://api.example.com/v1/",
                   "https://api.example.com/v1/users", "http://api.example.com/",
                   "https://api.example.com:8443/", "https://other.example/"],
    "domains": ["example.com", "*.example.com", "a.example.com", "*.a.example.com",
                "evil.example"],
    "commands": ["git", "git status", "git status --short", "*/git", "*/git status",
                 "/usr/bin/git", "ls", "ls -la"],
}
PROBES = {
    "path_prefix": ["/srv/data/x", "/srv/data", "/srv/database/y", "/srv/data/../etc",
                    "/srv/data/reports/q1", "/etc/passwd", "/srv/data/%2e%2e/x",
                    "rel/x", "/srv//data/reports/../x", "/"],
    "url_prefix": ["https://api.example.com/v1/users/7", "HTTPS://API.EXAMPLE.COM/v1",
                   "https://api.example.com/v1/../admin", "http://api.example.com/x",
                   "https://api.example.com:8443/v1/", "https://other.example/a",
                   "https://api.example.com@other.example/",
                   "https://api.example.com/"],
    "domains": ["x@example.com", "x@a.example.com", "x@b.a.example.com",
                "https://A.Example.com/", "x@evil.example",
                "x@example.com.evil.example",
                "example.com"],
    "commands": ["git status", "git status --short", "/usr/bin/git status", "git push",
                 "ls", "ls -la /srv", "git status; ls", "./git status", "ls | git"],
}

PRINCIPAL = seeded_identity("principal.test")
LINKS = [seeded_identity(name) for name in
         ("agent.test", "helper.test", "worker.test")]
CHAINS = ChainVerifier([PRINCIPAL.verifier_key])

maxima = st.one_of(st.integers(0, 1000), st.sampled_from([0.5, 99.5, 250.25]))
value_lists = st.lists(st.sampled_from(VALUES), min_size=1, max_size=4)
single_kinds = st.one_of(
    maxima.map(lambda n: {"max": n}),
    maxima.map(lambda n: {"min": n}),
    value_lists.map(lambda values: {"one_of": values}),
    *(st.lists(st.sampled_from(entries), min_size=1, max_size=3, unique=True).map(
        lambda chosen, kind=kind: {kind: chosen}) for kind, entries in ENTRIES.items()),
)
constraints = st.one_of(
    single_kinds,
    st.tuples(maxima, maxima).map(lambda pair: {"min": min(pair), "max": max(pair)}),
)
budgets = st.one_of(st.none(), st.integers(0, 4))


def _capability(tool: str, constrained: dict, budget: int | None) -> dict:
    result: dict[str, Any] = {"tool": tool}
    if constrained:
        result["constraints"] = constrained
    if budget is not None:
        result["budget"] = {"calls": budget}
    return result


capabilities = st.builds(
    _capability,
    st.sampled_from(PATTERNS),
    st.dictionaries(st.sampled_from(ARGUMENTS), constraints, max_size=3),
    budgets,
)
scopes = st.lists(capabilities, max_size=4).map(lambda c: {"capabilities": c})
argument_values = st.one_of(
    st.sampled_from(VALUES),
    st.integers(-5, 1200),
    st.lists(st.sampled_from(VALUES), max_size=3),
    *(st.sampled_from(probes) for probes in PROBES.values()),
)
calls = st.tuples(
    st.sampled_from(TOOLS),
    st.dictionaries(st.sampled_from(ARGUMENTS), argument_values, max_size=3),
)


def _narrower_pattern(draw, pattern: str) -> str:
    if not pattern.endswith("*"):
        return pattern
    prefix = pattern[:-1]
    return draw(st.sampled_from([p for p in PATTERNS if p.startswith(prefix)]))


def _changed_kind(draw, kind: str, value: Any) -> Any:
    """Return the kind's value tightened, kept, or (rarely) loosened."""
    how = draw(st.sampled_from(["tighten", "tighten", "keep", "keep", "loosen"]))
    if how == "keep":
        return value
    if kind == "max":
        step = draw(st.integers(1, 100))
        return max(0, int(value) - step) if how == "tighten" else value + step
    if kind == "min":
        step = draw(st.integers(1, 100))
        return value + step if how == "tighten" else value - step
    pool = VALUES if kind == "one_of" else ENTRIES[kind]
    if how == "loosen":
        return [*value, draw(st.sampled_from(pool))]
    if kind == "one_of":
        return draw(st.lists(st.sampled_from(value), min_size=1, max_size=len(value)))
    # Any entry that the library finds within the parent's, a narrowing or not;
    # the property is checked on calls, not on this choice.
    parent = Constraint.parse("x", {kind: value})
    narrower = [e for e in pool if Constraint.parse("x", {kind: [e]}).within(parent)]
    return draw(st.lists(st.sampled_from(narrower), min_size=1, max_size=3,
                         unique=True))


def _changed_budget(draw, budget: int | None) -> int | None:
    how = draw(st.sampled_from(["tighten", "keep", "drop", "loosen"]))
    if budget is None or how == "drop":
        return None
    if how == "tighten":
        return draw(st.integers(0, budget))
    return budget + 1 if how == "loosen" else budget


def _child_scope(draw, parent: dict[str, Any]) -> dict[str, Any]:
    children = []
    for _ in range(draw(st.integers(0, 3))):
        if not parent["capabilities"] or draw(st.integers(0, 9)) == 0:
            children.append(draw(capabilities))
            continue
        base = draw(st.sampled_from(parent["capabilities"]))
        constrained = {}
        for argument, constraint in base.get("constraints", {}).items():
            if draw(st.booleans()):
                changed = {kind: _changed_kind(draw, kind, value)
                           for kind, value in constraint.items()
                           if draw(st.integers(0, 4))}
                if changed:
                    constrained[argument] = changed
            # else: dropped, so the parent's constraint is inherited
        if draw(st.integers(0, 3)) == 0:
            constrained[draw(st.sampled_from(ARGUMENTS))] = draw(constraints)
        budget = base.get("budget", {}).get("calls")
        children.append(_capability(_narrower_pattern(draw, base["tool"]),
                                    constrained, _changed_budget(draw, budget)))
    return {"capabilities": children}


@st.composite
def chains(draw):
    root_scope = {"capabilities": draw(st.lists(capabilities, min_size=1, max_size=4))}
    link_scopes = [root_scope]
    for _ in range(draw(st.integers(0, 2))):
        link_scopes.append(_child_scope(draw, link_scopes[-1]))
    certificates = []
    for position, scope in enumerate(link_scopes):
        issuer = PRINCIPAL if position == 0 else LINKS[position - 1]
        certificates.append(issue(
            issuer, LINKS[position], scope,
            parent=certificates[-1] if certificates else None,
            max_depth=len(link_scopes) - 1 - position,
        ))
    return certificates, link_scopes


def _value_near(draw, kind: str, value: Any) -> Any:
    if kind in ("max", "min"):
        return draw(st.sampled_from([value, value - 1, value + 1]))
    if kind == "one_of":
        return draw(st.one_of(st.sampled_from(value),
                              st.lists(st.sampled_from(value), max_size=2),
                              st.sampled_from(VALUES)))
    return draw(st.one_of(st.sampled_from(PROBES[kind]),
                          st.lists(st.sampled_from(PROBES[kind]), max_size=2)))


def _call_near(draw, capability: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Draw a call that the capability probably allows, to reach the boundary."""
    pattern = capability["tool"]
    tools = [t for t in TOOLS if t == pattern or (
        pattern.endswith("*") and t.startswith(pattern[:-1]))]
    tool = draw(st.sampled_from(tools or TOOLS))
    arguments: dict[str, Any] = {}
    for argument, constraint in capability.get("constraints", {}).items():
        kind = draw(st.sampled_from(sorted(constraint)))
        arguments[argument] = _value_near(draw, kind, constraint[kind])
    return tool, arguments


def _verified_or_none(certificates):
    try:
        return CHAINS.verify(certificates, T0)
    except DelegationError as err:
        assert err.rule == "chain.scope", str(err)
        event("chain rejected: scope widened")
        return None


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.lists(calls, max_size=10), st.data())
def test_chain_never_grants_more_than_root(chain_and_scopes, drawn_calls, data):
    certificates, link_scopes = chain_and_scopes
    verified = _verified_or_none(certificates)
    if verified is None:
        return
    event(f"chain accepted: {len(certificates)} link(s)")
    link_checks = [Scope.parse(scope) for scope in link_scopes]
    for capability in verified.scope.to_json()["capabilities"]:
        drawn_calls.append(_call_near(data.draw, capability))

    for tool, arguments in drawn_calls:
        if verified.scope.check(tool, arguments):
            continue
        event("call allowed by the effective scope")
        for position, scope in enumerate(link_checks):
            assert scope.check(tool, arguments) == [], (
                f"effective scope {verified.scope.to_json()} allows {tool} "
                f"{arguments} but link {position} scope {link_scopes[position]} "
                "does not"
            )


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.lists(st.sampled_from(TOOLS), min_size=1, max_size=12))
def test_chain_never_spends_more_than_root_budget(chain_and_scopes, tools):
    certificates, link_scopes = chain_and_scopes
    verified = _verified_or_none(certificates)
    if verified is None:
        return
    root = Scope.parse(link_scopes[0])
    counters = CallBudgets()
    admitted: list[str] = []
    for tool in tools:
        if verified.scope.admit(tool, {}, counters).admitted:
            admitted.append(tool)

    # Each admitted call used one root capability that covers it; with every
    # root capability covering the tool budgeted, the sum of those budgets
    # bounds the calls admitted for that tool.
    for tool in set(admitted):
        covering = [c for c in root.capabilities if c.matches_tool(tool)]
        if covering and all(c.budget is not None for c in covering):
            event("tool limited by root budgets")
            limit = sum(c.budget for c in covering)
            assert admitted.count(tool) <= limit, (
                f"{tool} admitted {admitted.count(tool)} times; root budgets "
                f"{[c.to_json() for c in covering]}"
            )


@settings(max_examples=200, deadline=None)
@given(scopes)
def test_same_scope_redelegated_accepted(scope):
    parent = Scope.parse(scope)

    effective = parent.attenuate(parent)

    assert {c.to_json()["tool"] for c in effective.capabilities} == {
        c["tool"] for c in scope["capabilities"]
    }


@settings(max_examples=400, deadline=None)
@given(constraints, constraints, argument_values)
def test_tighter_constraint_holds_less(child_raw, parent_raw, value):
    child = Constraint.parse("x", child_raw)
    parent = Constraint.parse("x", parent_raw)

    if child.within(parent) and child.holds(value):
        assert parent.holds(value), f"{child_raw} within {parent_raw} but {value!r}"


@st.composite
def same_kind_pairs(draw):
    """Draw a child and a parent constraint of one set-like kind, and a probe."""
    kind = draw(st.sampled_from(sorted(ENTRIES)))
    entries = st.lists(st.sampled_from(ENTRIES[kind]), min_size=1, max_size=3,
                       unique=True)
    value = draw(st.one_of(st.sampled_from(PROBES[kind]),
                           st.lists(st.sampled_from(PROBES[kind]), max_size=2)))
    return {kind: draw(entries)}, {kind: draw(entries)}, value


@settings(max_examples=600, deadline=None)
@given(same_kind_pairs())
def test_resource_kind_within_holds_less(pair):
    child_raw, parent_raw, value = pair
    child = Constraint.parse("x", child_raw)
    parent = Constraint.parse("x", parent_raw)

    if child.within(parent) and child.holds(value):
        event("child within parent and holds")
        assert parent.holds(value), f"{child_raw} within {parent_raw} but {value!r}"
