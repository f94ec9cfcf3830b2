"""Attenuation of every constraint kind, as the auditor checks it: a table of
child and parent values per kind, each also checked against the gate's own
implementation, and a property test that a child within its parent never
admits a value the parent refuses."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcement.constraints import Constraint
from verifier.constraints import kind_within, parse_kind
from verifier.errors import MalformedInput
from verifier.scope import capability_within, parse_scope

# (kind, child value, parent value, child within parent)
CASES = [
    ("max", 50, 100, True),
    ("max", 100, 100, True),
    ("max", 101, 100, False),
    ("max", 99.5, 100, True),
    ("min", 10, 5, True),
    ("min", 4, 5, False),
    ("one_of", ["a"], ["a", "b"], True),
    ("one_of", ["a", "c"], ["a", "b"], False),
    ("one_of", [1.0], [1], True),
    ("one_of", [True], [1], False),
    ("one_of", [{"b": 1, "a": 2}], [{"a": 2, "b": 1}], True),
    ("path_prefix", ["/srv/data/reports"], ["/srv/data"], True),
    ("path_prefix", ["/srv/data"], ["/srv/data"], True),
    ("path_prefix", ["/srv//data/./x/"], ["/srv/data"], True),
    ("path_prefix", ["/srv/database"], ["/srv/data"], False),
    ("path_prefix", ["/etc"], ["/srv/data"], False),
    ("path_prefix", ["/anything"], ["/"], True),
    (
        "path_prefix",
        {"prefixes": ["/srv/data/a"], "base": "/srv/data"},
        {"prefixes": ["/srv/data"], "base": "/srv/data"},
        True,
    ),
    (
        "path_prefix",
        {"prefixes": ["/srv/data/a"], "base": "/srv/data"},
        ["/srv/data"],
        False,
    ),
    ("path_prefix", ["/srv/data/a"], {"prefixes": ["/srv/data"], "base": "/srv"}, True),
    (
        "url_prefix",
        ["https://api.example.com/v1/users"],
        ["https://api.example.com/v1/"],
        True,
    ),
    (
        "url_prefix",
        ["HTTPS://API.Example.com:443/v1/x"],
        ["https://api.example.com/v1"],
        True,
    ),
    (
        "url_prefix",
        ["https://api.example.com/v10/"],
        ["https://api.example.com/v1/"],
        False,
    ),
    (
        "url_prefix",
        ["http://api.example.com/v1/"],
        ["https://api.example.com/v1/"],
        False,
    ),
    (
        "url_prefix",
        ["https://api.example.com:8443/v1/"],
        ["https://api.example.com/v1/"],
        False,
    ),
    (
        "url_prefix",
        ["https://api.example.com/v1/%7Euser"],
        ["https://api.example.com/v1/~user"],
        True,
    ),
    ("url_prefix", ["https://evil.com/v1/"], ["https://api.example.com/"], False),
    ("domains", ["a.example.com"], ["*.example.com"], True),
    ("domains", ["example.com"], ["*.example.com"], False),
    ("domains", ["*.a.example.com"], ["*.example.com"], True),
    ("domains", ["*.example.com"], ["*.example.com"], True),
    ("domains", ["*.example.com"], ["example.com"], False),
    ("domains", ["Example.COM."], ["example.com"], True),
    ("domains", ["xn--bcher-kva.example"], ["*.example"], True),
    ("commands", ["git status --short"], ["git status"], True),
    ("commands", ["git status"], ["git status --short"], False),
    ("commands", ["git push"], ["git status"], False),
    ("commands", ["ls -l"], ["*/ls"], True),
    ("commands", ["/bin/ls"], ["*/ls"], True),
    ("commands", ["*/ls"], ["*/ls"], True),
    ("commands", ["*/ls"], ["ls"], False),
    ("commands", ["/bin/ls"], ["ls"], False),
    ("commands", ["'git' 'status'"], ["git status"], True),
    ("commands", ["echo ';'"], ["echo"], True),
]


@pytest.mark.parametrize(("kind", "child", "parent", "within"), CASES)
def test_kind_within(kind, child, parent, within):
    verdict = kind_within(
        kind, parse_kind(kind, child, "child"), parse_kind(kind, parent, "parent")
    )
    assert (verdict is None) == within, verdict


@pytest.mark.parametrize(("kind", "child", "parent", "within"), CASES)
def test_gate_agrees(kind, child, parent, within):
    gate_child = Constraint.parse("argument", {kind: child})
    gate_parent = Constraint.parse("argument", {kind: parent})
    assert gate_child.within(gate_parent) == within


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        ("max", "5", "expected a number"),
        ("max", True, "expected a number"),
        ("one_of", [], "non-empty list of JSON values"),
        ("path_prefix", ["relative"], "expected an absolute path"),
        ("path_prefix", ["/srv/../etc"], "contains '..'"),
        ("path_prefix", ["/srv/%2e%2e/etc"], "contains '..'"),
        ("path_prefix", ["/srv/\u212a"], "changes under NFKC"),
        ("path_prefix", {"prefixes": ["/a"]}, "exactly 'prefixes' and 'base'"),
        ("url_prefix", ["https://user@api.example.com/"], "user information"),
        ("url_prefix", ["gopher://example.com/"], "scheme 'gopher'"),
        ("url_prefix", ["https://example.com/a?x=1"], "no query or fragment"),
        ("url_prefix", ["https://127.1/"], "four decimal numbers"),
        ("url_prefix", ["https://example.com/a%2fb"], "encodes '/'"),
        ("url_prefix", ["https://example.com//a"], "empty segment"),
        ("url_prefix", ["https://example.com:0/"], "port must be 1 to 65535"),
        ("domains", ["-bad.example"], "not a valid domain name"),
        ("domains", ["b\u00fccher.example"], "write it as A-labels"),
        ("commands", ["git status; rm -rf /"], "one simple command"),
        ("commands", ["'unterminated"], "unterminated ' quote"),
        ("commands", [".. x"], "contains '..'"),
    ],
)
def test_kind_parse_errors(kind, value, problem):
    with pytest.raises(MalformedInput, match=problem):
        parse_kind(kind, value, "constraint")


def test_scope_parse_errors():
    with pytest.raises(MalformedInput, match=r"unknown members \['limit'\]"):
        parse_scope({"capabilities": [{"tool": "x", "limit": 1}]})
    with pytest.raises(MalformedInput, match="without '..'"):
        parse_scope({"capabilities": [{"tool": "read_.."}]})
    with pytest.raises(MalformedInput, match="only 'capabilities'"):
        parse_scope({"capabilities": [], "extra": 1})
    with pytest.raises(MalformedInput, match="budget must be"):
        parse_scope({"capabilities": [{"tool": "x", "budget": {"calls": -1}}]})


def capability(tool="send_money", budget=None, **constraints):
    raw = {"tool": tool, "constraints": constraints}
    if budget is not None:
        raw["budget"] = {"calls": budget}
    return parse_scope({"capabilities": [raw]})[0]


def test_capability_within_rules():
    parent = capability(budget=10, amount={"max": 100})
    assert capability_within(capability(budget=5, amount={"max": 50}), parent) is None
    # A kind the child leaves out is inherited, so it does not widen the grant.
    assert capability_within(capability(), parent) is None
    # An effective scope must carry every kind and budget of its ancestors.
    assert "lacks the budget" in capability_within(capability(), parent, strict=True)
    assert "more than the 10" in capability_within(capability(budget=11), parent)
    assert "not within 'send_money'" in capability_within(capability("send_*"), parent)
    assert capability_within(capability("read_x"), capability("read_*")) is None


@settings(max_examples=300, deadline=None)
@given(
    child_max=st.integers(-50, 150),
    parent_max=st.integers(-50, 150),
    child_set=st.sets(st.integers(0, 6), min_size=1),
    parent_set=st.sets(st.integers(0, 6), min_size=1),
    amount=st.integers(-60, 160),
    choice=st.integers(0, 6),
)
def test_within_never_widens(
    child_max, parent_max, child_set, parent_set, amount, choice
):
    child = capability(amount={"max": child_max}, pick={"one_of": sorted(child_set)})
    parent = capability(amount={"max": parent_max}, pick={"one_of": sorted(parent_set)})
    if capability_within(child, parent) is not None:
        return
    child_admits = amount <= child_max and choice in child_set
    parent_admits = amount <= parent_max and choice in parent_set
    assert not child_admits or parent_admits
