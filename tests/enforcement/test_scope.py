"""Scope checks: missing arguments, tool patterns, attenuation and call
budgets."""

from __future__ import annotations

import threading

import pytest

from enforcement.errors import DelegationError
from enforcement.scope import CallBudgets, Capability, Scope


def scope_of(*capabilities: dict) -> Scope:
    return Scope.parse({"capabilities": list(capabilities)})


PAY = scope_of({"tool": "send_money", "constraints": {
    "amount": {"max": 500}, "recipient": {"one_of": ["GB29", "DE89"]}}})


# -- missing arguments, patterns ------------------------------------------------


def test_missing_constrained_argument_refused():
    problems = PAY.check("send_money", {"recipient": "GB29"})
    assert problems == ["argument 'amount' is constrained ({'max': 500}) but missing"]


def test_unconstrained_extra_argument_allowed():
    assert PAY.check("send_money",
                     {"amount": 1, "recipient": "GB29", "subject": "rent"}) == []


@pytest.mark.parametrize(("pattern", "tool", "inside"), [
    ("read_*", "read_file", True),
    ("read_*", "read_", True),
    ("read_*", "reads", False),
    ("read_*", "pre_read_file", False),
    ("*", "anything_at_all", True),
    ("read_file", "read_file", True),
    ("read_file", "read_file_now", False),
    ("read_file", "read_*", False),
])
def test_tool_patterns(pattern, tool, inside):
    problems = scope_of({"tool": pattern}).check(tool, {})
    assert (problems == []) is inside
    if not inside:
        assert problems == [f"no capability covers tool {tool!r}"]


def test_any_matching_capability_allows():
    scope = scope_of(
        {"tool": "send_*", "constraints": {"amount": {"max": 10}}},
        {"tool": "send_money", "constraints": {"amount": {"max": 100}}},
    )
    assert scope.check("send_money", {"amount": 50}) == []
    assert scope.check("send_mail", {"amount": 50}) == [
        "argument 'amount'=50 breaks {'max': 10}"
    ]


def test_every_failing_capability_reported():
    scope = scope_of(
        {"tool": "send_*", "constraints": {"amount": {"max": 10}}},
        {"tool": "send_money", "constraints": {"amount": {"max": 100}}},
    )
    assert scope.check("send_money", {"amount": 500}) == [
        "argument 'amount'=500 breaks {'max': 10}",
        "argument 'amount'=500 breaks {'max': 100}",
    ]


def test_empty_scope_allows_nothing():
    assert scope_of().check("read_file", {}) == [
        "no capability covers tool 'read_file'"
    ]


@pytest.mark.parametrize("pattern", ["", None, 7])
def test_tool_must_be_non_empty_string(pattern):
    with pytest.raises(DelegationError, match="capability tool must be a non-empty "
                       "string") as caught:
        Capability.parse({"tool": pattern})
    assert caught.value.rule == "scope.tool"


def test_capability_needs_object():
    with pytest.raises(DelegationError, match="capability must be an object, got "
                       "'read_file'"):
        Scope.parse({"capabilities": ["read_file"]})


def test_capabilities_must_be_list():
    with pytest.raises(DelegationError, match="scope capabilities must be a list"):
        Scope.parse({"capabilities": {"tool": "*"}})


# -- attenuation ----------------------------------------------------------------


def test_attenuate_inherits_missing_constraints():
    child = scope_of({"tool": "send_money",
                      "constraints": {"amount": {"max": 100}}})

    effective = PAY.attenuate(child)

    assert effective.to_json() == {"capabilities": [{
        "tool": "send_money",
        "constraints": {"amount": {"max": 100},
                        "recipient": {"one_of": ["GB29", "DE89"]}},
    }]}


def test_attenuate_under_prefix_keeps_child_pattern():
    parent = scope_of({"tool": "read_*", "constraints": {"limit": {"max": 10}}})

    effective = parent.attenuate(scope_of({"tool": "read_mail"}))

    assert effective.check("read_mail", {"limit": 10}) == []
    assert effective.check("read_mail", {"limit": 11}) == [
        "argument 'limit'=11 breaks {'max': 10}"
    ]
    assert effective.check("read_file", {"limit": 1}) == [
        "no capability covers tool 'read_file'"
    ]


def test_attenuate_rejects_wider_capability():
    with pytest.raises(DelegationError, match=r"capability \{'tool': 'send_\*'\} "
                       "is wider than every capability") as caught:
        PAY.attenuate(scope_of({"tool": "send_*"}))
    assert caught.value.rule == "chain.scope"


def test_attenuate_new_constraint_narrows():
    child = scope_of({"tool": "send_money",
                      "constraints": {"subject": {"one_of": ["rent"]}}})

    effective = PAY.attenuate(child)

    assert effective.check("send_money", {"amount": 1, "recipient": "GB29",
                                          "subject": "gift"}) != []


# -- budgets --------------------------------------------------------------------------


def bound(raw_scope: dict, certificate: str = "c" * 64) -> Scope:
    return Scope.parse(raw_scope).bind_budgets(certificate)


def test_budget_parsed_and_serialized():
    raw = {"tool": "send_money", "budget": {"calls": 3}}
    assert Capability.parse(raw).to_json() == raw


@pytest.mark.parametrize("budget", [{"calls": -1}, {"calls": True}, {"calls": 1.5},
                                    {"calls": 1, "per": "day"}, 3, {}])
def test_bad_budget_rejected(budget):
    with pytest.raises(DelegationError, match="budget of 't' must be") as caught:
        Capability.parse({"tool": "t", "budget": budget})
    assert caught.value.rule == "scope.budget"


def test_admit_charges_up_to_budget():
    scope = bound({"capabilities": [{"tool": "t", "budget": {"calls": 2}}]})
    budgets = CallBudgets()

    results = [scope.admit("t", {}, budgets) for _ in range(3)]

    assert [r.admitted for r in results] == [True, True, False]
    assert results[2].exhausted == (
        f"capability 't' has used its budget of 2 calls (certificate {'c' * 64})",)
    assert budgets.used(f"{'c' * 64}/0") == 2


def test_admit_falls_back_to_next_capability():
    scope = bound({"capabilities": [{"tool": "t", "budget": {"calls": 1}},
                                    {"tool": "t*", "budget": {"calls": 1}}]})
    budgets = CallBudgets()

    assert [scope.admit("t", {}, budgets).admitted for _ in range(3)] == \
        [True, True, False]


def test_admit_does_not_charge_refused_call():
    scope = bound({"capabilities": [{"tool": "t", "budget": {"calls": 1},
                                     "constraints": {"n": {"max": 1}}}]})
    budgets = CallBudgets()

    refused = scope.admit("t", {"n": 2}, budgets)

    assert refused.problems == ("argument 'n'=2 breaks {'max': 1}",)
    assert refused.exhausted == ()
    assert scope.admit("t", {"n": 1}, budgets).admitted


def test_check_ignores_budget():
    scope = bound({"capabilities": [{"tool": "t", "budget": {"calls": 0}}]})
    assert scope.check("t", {}) == []
    assert not scope.admit("t", {}, CallBudgets()).admitted


def test_child_budget_charges_every_ancestor():
    parent = bound({"capabilities": [{"tool": "t", "budget": {"calls": 3}}]}, "a" * 64)
    child = bound({"capabilities": [{"tool": "t", "budget": {"calls": 2}}]}, "b" * 64)
    budgets = CallBudgets()

    effective = parent.attenuate(child)
    effective.admit("t", {}, budgets)

    assert effective.to_json() == {"capabilities": [
        {"tool": "t", "budget": {"calls": 2}}]}
    assert budgets.used(f"{'a' * 64}/0") == 1
    assert budgets.used(f"{'b' * 64}/0") == 1


def test_child_budget_larger_than_parent_rejected():
    parent = Scope.parse({"capabilities": [{"tool": "t", "budget": {"calls": 3}}]})
    with pytest.raises(DelegationError, match="is wider than every capability") \
            as caught:
        parent.attenuate(Scope.parse({"capabilities": [
            {"tool": "t", "budget": {"calls": 4}}]}))
    assert caught.value.rule == "chain.scope"


def test_budget_exact_under_32_threads():
    scope = bound({"capabilities": [{"tool": "t", "budget": {"calls": 7}}]})
    budgets = CallBudgets()
    barrier = threading.Barrier(32)
    admitted = []

    def call() -> None:
        barrier.wait()
        admitted.append(scope.admit("t", {}, budgets).admitted)

    threads = [threading.Thread(target=call) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert admitted.count(True) == 7
    assert admitted.count(False) == 25


def test_refund_returns_a_call():
    scope = bound({"capabilities": [{"tool": "t", "budget": {"calls": 1}}]})
    budgets = CallBudgets()
    admission = scope.admit("t", {}, budgets)

    budgets.refund(admission.charged)

    assert scope.admit("t", {}, budgets).admitted
