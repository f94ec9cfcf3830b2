"""Property tests for attenuation: no valid chain ever grants more than its root.

Hypothesis draws a root scope and up to two further links, each mostly a
narrowing of its parent's scope (same or narrower pattern, tighter, kept or
dropped constraints) and sometimes a random or loosened one. The chain is
signed and verified for real. When it is accepted, every call that its
effective scope allows must also be allowed by the root's scope and by each
link's own scope.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from enforcement.delegation import ChainVerifier
from enforcement.errors import DelegationError
from enforcement.scope import Constraint, Scope
from tests.enforcement.conftest import T0, issue, seeded_identity

TOOLS = ["read_file", "read_mail", "send_money", "send_mail", "delete_file",
         "readme", "send_money_now"]
PATTERNS = ["*", "read_*", "send_*", "send_m*", "delete_*", "re*", *TOOLS]
ARGUMENTS = ["amount", "recipient", "count"]
# Booleans sit next to 0 and 1 on purpose: JSON true is not the number 1.
VALUES = ["a", "b", "c", 0, 1, 2, True, False, 1.5]

PRINCIPAL = seeded_identity("principal.test")
LINKS = [seeded_identity(name) for name in
         ("agent.test", "helper.test", "worker.test")]
CHAINS = ChainVerifier([PRINCIPAL.verifier_key])

maxima = st.one_of(st.integers(0, 1000), st.sampled_from([0.5, 99.5, 250.25]))
value_lists = st.lists(st.sampled_from(VALUES), min_size=1, max_size=4)
constraints = st.one_of(
    maxima.map(lambda n: {"max": n}),
    value_lists.map(lambda values: {"one_of": values}),
)
capabilities = st.builds(
    lambda tool, constrained: (
        {"tool": tool, "constraints": constrained} if constrained else {"tool": tool}
    ),
    st.sampled_from(PATTERNS),
    st.dictionaries(st.sampled_from(ARGUMENTS), constraints, max_size=3),
)
scopes = st.lists(capabilities, max_size=4).map(lambda c: {"capabilities": c})
argument_values = st.one_of(
    st.sampled_from(VALUES),
    st.integers(-5, 1200),
    st.lists(st.sampled_from(VALUES), max_size=3),
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


def _changed_constraint(draw, constraint: dict[str, Any]) -> dict[str, Any]:
    """Return the constraint tightened, kept, or (rarely) loosened."""
    ((kind, value),) = constraint.items()
    how = draw(st.sampled_from(["tighten", "tighten", "keep", "keep", "loosen"]))
    if kind == "max":
        if how == "tighten":
            return {"max": draw(st.integers(0, int(value)))}
        if how == "loosen":
            return {"max": value + draw(st.integers(1, 100))}
        return {"max": value}
    if how == "tighten":
        return {"one_of": draw(st.lists(st.sampled_from(value), min_size=1,
                                        max_size=len(value)))}
    if how == "loosen":
        return {"one_of": [*value, draw(st.sampled_from(VALUES))]}
    return {"one_of": list(value)}


def _child_scope(draw, parent: dict[str, Any]) -> dict[str, Any]:
    children = []
    for _ in range(draw(st.integers(0, 3))):
        if not parent["capabilities"] or draw(st.integers(0, 9)) == 0:
            children.append(draw(capabilities))
            continue
        base = draw(st.sampled_from(parent["capabilities"]))
        child: dict[str, Any] = {"tool": _narrower_pattern(draw, base["tool"])}
        constrained = {}
        for argument, constraint in base.get("constraints", {}).items():
            if draw(st.booleans()):
                constrained[argument] = _changed_constraint(draw, constraint)
            # else: dropped, so the parent's constraint is inherited
        if draw(st.integers(0, 3)) == 0:
            constrained[draw(st.sampled_from(ARGUMENTS))] = draw(constraints)
        if constrained:
            child["constraints"] = constrained
        children.append(child)
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


def _call_near(draw, capability: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Draw a call that the capability probably allows, to reach the boundary."""
    pattern = capability["tool"]
    tools = [t for t in TOOLS if t == pattern or (
        pattern.endswith("*") and t.startswith(pattern[:-1]))]
    tool = draw(st.sampled_from(tools or TOOLS))
    arguments: dict[str, Any] = {}
    for argument, constraint in capability.get("constraints", {}).items():
        ((kind, value),) = constraint.items()
        if kind == "max":
            arguments[argument] = draw(st.sampled_from([value, value - 1, value + 1]))
        else:
            arguments[argument] = draw(st.one_of(
                st.sampled_from(value), st.lists(st.sampled_from(value), max_size=2),
                st.sampled_from(VALUES)))
    return tool, arguments


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.lists(calls, max_size=10), st.data())
def test_chain_never_grants_more_than_root(chain_and_scopes, drawn_calls, data):
    certificates, link_scopes = chain_and_scopes
    try:
        verified = CHAINS.verify(certificates, T0)
    except DelegationError as err:
        assert err.rule == "chain.scope", str(err)
        event("chain rejected: scope widened")
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


@settings(max_examples=200, deadline=None)
@given(scopes)
def test_same_scope_redelegated_accepted(scope):
    parent = Scope.parse(scope)

    effective = parent.attenuate(parent)

    assert {c.to_json()["tool"] for c in effective.capabilities} == {
        c["tool"] for c in scope["capabilities"]
    }


@settings(max_examples=300, deadline=None)
@given(constraints, constraints, argument_values)
def test_tighter_constraint_holds_less(child_raw, parent_raw, value):
    child = Constraint.parse("x", child_raw)
    parent = Constraint.parse("x", parent_raw)

    if child.within(parent) and child.holds(value):
        assert parent.holds(value), f"{child_raw} within {parent_raw} but {value!r}"
