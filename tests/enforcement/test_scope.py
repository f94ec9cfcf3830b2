"""Scope checks: max, one_of, missing arguments, tool patterns, attenuation."""

from __future__ import annotations

import pytest

from enforcement.errors import DelegationError
from enforcement.scope import Capability, Constraint, Scope


def scope_of(*capabilities: dict) -> Scope:
    return Scope.parse({"capabilities": list(capabilities)})


PAY = scope_of({"tool": "send_money", "constraints": {
    "amount": {"max": 500}, "recipient": {"one_of": ["GB29", "DE89"]}}})


# -- max ------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, 499.99, 500, 500.0, -3])
def test_max_allows_up_to_limit(amount):
    assert PAY.check("send_money", {"amount": amount, "recipient": "GB29"}) == []


def test_max_refuses_above_limit():
    problems = PAY.check("send_money", {"amount": 500.01, "recipient": "GB29"})
    assert problems == ["argument 'amount'=500.01 breaks {'max': 500}"]


@pytest.mark.parametrize("amount", ["100", True, None, [100], {"value": 100}])
def test_max_refuses_non_number(amount):
    problems = PAY.check("send_money", {"amount": amount, "recipient": "GB29"})
    assert problems == [f"argument 'amount'={amount!r} breaks {{'max': 500}}"]


def test_max_must_be_number():
    with pytest.raises(DelegationError, match="constraint max on 'amount' must be "
                       "a number, got '500'") as caught:
        Constraint.parse("amount", {"max": "500"})
    assert caught.value.rule == "scope.constraint"


# -- one_of ---------------------------------------------------------------------


def test_one_of_scalar_allowed():
    assert PAY.check("send_money", {"amount": 1, "recipient": "DE89"}) == []


def test_one_of_scalar_refused():
    problems = PAY.check("send_money", {"amount": 1, "recipient": "FR76"})
    assert problems == [
        "argument 'recipient'='FR76' breaks {'one_of': ['GB29', 'DE89']}"
    ]


def test_one_of_list_all_inside_allowed():
    assert PAY.check("send_money", {"amount": 1, "recipient": ["GB29", "DE89"]}) == []


def test_one_of_list_one_outside_refused():
    problems = PAY.check("send_money",
                         {"amount": 1, "recipient": ["GB29", "FR76"]})
    assert problems == [
        "argument 'recipient'=['GB29', 'FR76'] breaks {'one_of': ['GB29', 'DE89']}"
    ]


@pytest.mark.parametrize(("allowed", "value"), [([1], True), ([0], False),
                                                ([True], 1), (["1"], 1)])
def test_one_of_compares_json_types(allowed, value):
    scope = scope_of({"tool": "t", "constraints": {"flag": {"one_of": allowed}}})
    assert scope.check("t", {"flag": value}) != []


def test_one_of_integer_equals_float():
    scope = scope_of({"tool": "t", "constraints": {"n": {"one_of": [2]}}})
    assert scope.check("t", {"n": 2.0}) == []


def test_one_of_object_values():
    scope = scope_of({"tool": "t", "constraints": {
        "to": {"one_of": [{"iban": "GB29"}]}}})
    assert scope.check("t", {"to": {"iban": "GB29"}}) == []
    assert scope.check("t", {"to": {"iban": "FR76"}}) != []


@pytest.mark.parametrize("value", [[], "GB29"])
def test_one_of_must_be_non_empty_list(value):
    with pytest.raises(DelegationError, match="one_of on 'to' must be a non-empty "
                       "list"):
        Constraint.parse("to", {"one_of": value})


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
