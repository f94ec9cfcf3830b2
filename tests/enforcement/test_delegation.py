"""Delegation: valid chains, and one named case per way a chain can be wrong.

Each rejected chain is checked twice: ``ChainVerifier`` raises a
``DelegationError`` naming the rule, and a gate given the same chain seals a
deny decision whose reasons carry that rule id, without running the tool.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from enforcement import jcs
from enforcement.delegation import (
    MAX_CHAIN_LENGTH,
    Certificate,
    ChainVerifier,
    issue_certificate,
)
from enforcement.errors import (
    ConfigError,
    DelegationError,
    Denied,
    Reason,
    SealError,
)
from enforcement.identity import Identity
from enforcement.scope import CallBudgets
from tests.enforcement.conftest import (
    ALL_TOOLS,
    T0,
    issue,
    seeded_identity,
    sign_body,
    verify,
)

HOUR = timedelta(hours=1)
PAY_500 = {"capabilities": [{
    "tool": "send_money",
    "constraints": {"amount": {"max": 500}, "recipient": {"one_of": ["GB29"]}},
}]}


@dataclass(frozen=True)
class People:
    principal: Identity
    agent: Identity
    helper: Identity
    worker: Identity
    mallory: Identity


@pytest.fixture
def people(principal, agent) -> People:
    return People(principal, agent, seeded_identity("helper.test"),
                  seeded_identity("worker.test"), seeded_identity("mallory.test"))


@pytest.fixture
def chains(people) -> ChainVerifier:
    return ChainVerifier([people.principal.verifier_key])


def two_links(people: People, child_scope: dict, parent_scope: dict = ALL_TOOLS,
              **child_options) -> list[Certificate]:
    root = issue(people.principal, people.agent, parent_scope, max_depth=1)
    return [root, issue(people.agent, people.helper, child_scope, root,
                        **child_options)]


def altered(certificate: Certificate, **changes) -> dict:
    body = dict(certificate.body)
    body.update(changes)
    return body


# -- valid chains -------------------------------------------------------------


def test_one_link_chain_valid(chains, people):
    root = issue(people.principal, people.agent, PAY_500)

    verified = chains.verify([root], T0)

    assert verified.hashes == (root.hash,)
    assert verified.root == people.principal.verifier_key
    assert verified.agent.key_id == people.agent.key_id
    assert verified.scope.to_json() == PAY_500


def test_two_link_chain_valid(chains, people):
    chain = two_links(people, {"capabilities": [{"tool": "send_money"}]}, PAY_500)

    verified = chains.verify(chain, T0)

    assert verified.hashes == tuple(c.hash for c in chain)
    assert verified.agent.key_id == people.helper.key_id
    # The child named no constraint, so it inherits both of the root's.
    assert verified.scope.to_json() == PAY_500


def test_three_link_chain_valid(chains, people):
    root = issue(people.principal, people.agent, PAY_500, max_depth=2)
    middle = issue(people.agent, people.helper, PAY_500, root, max_depth=1,
                   start=T0 - HOUR / 2, end=T0 + HOUR)
    last = issue(people.helper, people.worker, {"capabilities": [
        {"tool": "send_money", "constraints": {"amount": {"max": 100}}}]}, middle,
        start=T0 - HOUR / 4, end=T0 + HOUR / 2)

    verified = chains.verify([root, middle, last], T0)

    assert verified.agent.key_id == people.worker.key_id
    assert verified.not_after == T0 + HOUR / 2
    assert verified.scope.check("send_money", {"amount": 100, "recipient": "GB29"}) \
        == []
    assert verified.scope.check("send_money", {"amount": 101, "recipient": "GB29"}) \
        == ["argument 'amount'=101 breaks {'max': 100}"]


def test_valid_chain_sealed_in_decision(make_harness, people):
    harness = make_harness()
    chain = two_links(people, {"capabilities": [{"tool": "read_*"}]})
    runs = []

    with harness.gate.session("read the report file", chain=chain) as session:
        session.call("read_file", {"path": "report.txt"}, lambda: runs.append(1))

    decision = harness.records_of("decision")[-1]
    assert runs == [1]
    assert decision["verdict"] == "allow"
    assert decision["agent"] == people.helper.key_id
    assert decision["delegation"] == {
        "chain": [c.hash for c in chain],
        "root": people.principal.verifier_key,
        "scope": {"capabilities": [{"tool": "read_*"}]},
    }


def test_window_checked_on_every_call(chains, people):
    """The cache keeps signatures and scopes, never the verdict on time."""
    root = issue(people.principal, people.agent)
    chains.verify([root], T0)

    with pytest.raises(DelegationError) as caught:
        chains.verify([root], T0 + timedelta(days=2))

    assert caught.value.rule == "chain.expired"


def test_window_start_inclusive_end_exclusive(chains, people):
    root = issue(people.principal, people.agent, start=T0, end=T0 + HOUR)

    chains.verify([root], T0)
    with pytest.raises(DelegationError, match="now is 2026-12-04T11:00:00Z"):
        chains.verify([root], T0 + HOUR)


def test_dropped_constraint_inherited_not_widened(make_harness, people):
    harness = make_harness()
    chain = two_links(people, {"capabilities": [{"tool": "send_money"}]}, PAY_500)
    runs = []

    with harness.gate.session("pay 900 to GB29", chain=chain) as session:
        with pytest.raises(Denied) as caught:
            session.call("send_money", {"amount": 900, "recipient": "GB29"},
                         lambda: runs.append(1))

    assert runs == []
    assert caught.value.reasons[0].rule == "delegation.scope"
    assert caught.value.reasons[0].text == "argument 'amount'=900 breaks {'max': 500}"


def test_empty_chain_rejected(chains):
    with pytest.raises(DelegationError, match="chain is empty") as caught:
        chains.verify([], T0)
    assert caught.value.rule == "chain.empty"


def test_session_without_chain_rejected(harness):
    harness.gate.default_chain = ()
    with pytest.raises(ConfigError, match="a session needs a delegation chain"):
        harness.gate.session("anything")


def test_no_trust_anchor_rejected():
    with pytest.raises(ConfigError, match="at least one trust anchor"):
        ChainVerifier([])


def test_issue_rejects_bad_depth(people):
    with pytest.raises(DelegationError, match="max_depth must be an integer from 0 "
                       "to 15, got 16") as caught:
        issue(people.principal, people.agent, max_depth=16)
    assert caught.value.rule == "certificate.format"


def test_issue_rejects_empty_window(people):
    with pytest.raises(DelegationError, match="is not after not_before"):
        issue(people.principal, people.agent, start=T0, end=T0)


def test_from_bytes_rejects_duplicate_member(people):
    text = jcs.canonical(issue(people.principal, people.agent).to_json()).decode()
    duplicated = text.replace('"signature":', '"signature":"AA==","signature":')

    with pytest.raises(DelegationError, match="duplicate member name 'signature'") \
            as caught:
        Certificate.from_bytes(duplicated.encode())

    assert caught.value.rule == "certificate.format"


def test_from_json_round_trip(people):
    certificate = issue(people.principal, people.agent, PAY_500)

    parsed = Certificate.from_bytes(jcs.canonical(certificate.to_json()))

    assert parsed == certificate
    assert parsed.hash == certificate.hash


def test_from_json_rejects_bad_signature_encoding(people):
    raw = issue(people.principal, people.agent).to_json()
    raw["signature"] = "not base64!"

    with pytest.raises(DelegationError, match="signature is not base64"):
        Certificate.from_json(raw)


def test_issue_with_non_string_argument_name(people):
    scope = {"capabilities": [{"tool": "t", "constraints": {1: {"max": 1}}}]}
    with pytest.raises(DelegationError, match="constraints of 't': argument name 1 "
                       "must be a string, got int") as caught:
        issue_certificate(people.principal, people.agent.verifier_key, scope, "p",
                          T0, T0 + HOUR)
    assert caught.value.rule == "scope.constraint"


# -- rejected chains ----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    build: Callable[[People], list]
    rule: str
    message: str
    now: datetime = T0


def _flipped_signature(people):
    root = issue(people.principal, people.agent)
    signature = bytearray(root.signature)
    signature[7] ^= 0x01
    return [Certificate(root.body, bytes(signature))]


def _signed_by_wrong_key(people):
    root = issue(people.principal, people.agent)
    return [sign_body(people.mallory, dict(root.body))]


def _forged_second_link(people):
    root, child = two_links(people, ALL_TOOLS)
    return [root, sign_body(people.mallory, dict(child.body))]


def _loop_back_to_agent(people):
    root = issue(people.principal, people.agent, max_depth=2)
    middle = issue(people.agent, people.helper, parent=root, max_depth=1)
    return [root, middle, issue(people.helper, people.agent, parent=middle)]


def _loop_back_to_principal(people):
    root = issue(people.principal, people.agent, max_depth=1)
    return [root, issue(people.agent, people.principal, parent=root)]


def _duplicate_link(people):
    root = issue(people.principal, people.agent, max_depth=2)
    middle = issue(people.agent, people.helper, parent=root, max_depth=1)
    return [root, middle, middle]


def _root_depth_exceeded(people):
    root = issue(people.principal, people.agent, max_depth=0)
    return [root, issue(people.agent, people.helper, parent=root)]


def _middle_depth_exceeded(people):
    root = issue(people.principal, people.agent, max_depth=2)
    middle = issue(people.agent, people.helper, parent=root, max_depth=0)
    return [root, middle, issue(people.helper, people.worker, parent=middle)]


def _too_long(people):
    identities = [people.principal] + [
        seeded_identity(f"link{i}.test") for i in range(MAX_CHAIN_LENGTH + 1)
    ]
    chain = []
    for position in range(MAX_CHAIN_LENGTH + 1):
        chain.append(issue(identities[position], identities[position + 1],
                           parent=chain[-1] if chain else None,
                           max_depth=min(15, MAX_CHAIN_LENGTH - position)))
    return chain


def _wrong_parent_hash(people):
    root = issue(people.principal, people.agent, max_depth=1)
    sibling = issue(people.principal, people.agent, max_depth=1)
    return [root, issue(people.agent, people.helper, parent=sibling)]


def _issuer_not_parent_subject(people):
    root = issue(people.principal, people.agent, max_depth=1)
    return [root, issue(people.helper, people.worker, parent=root)]


def _root_with_parent(people):
    other = issue(people.principal, people.agent)
    return [issue(people.principal, people.agent, parent=other)]


def _root_scope(scope):
    def build(people):
        body = altered(issue(people.principal, people.agent), scope=scope)
        return [sign_body(people.principal, body)]
    return build


def _root_body(**changes):
    def build(people):
        body = altered(issue(people.principal, people.agent), **changes)
        return [sign_body(people.principal, body)]
    return build


def _missing_field(people):
    body = dict(issue(people.principal, people.agent).body)
    del body["subject"]
    return [sign_body(people.principal, body)]


def _body_not_json(people):
    body = altered(issue(people.principal, people.agent), purpose={"a set"})
    return [Certificate(body, b"\x00" * 64)]


def _child(scope, parent_scope=ALL_TOOLS, **options):
    return lambda people: two_links(people, scope, parent_scope, **options)


def _one(tool: str, argument: str, constraint: dict) -> dict:
    """Return a scope of one capability with one constrained argument."""
    return {"capabilities": [{"tool": tool, "constraints": {argument: constraint}}]}


MAX_900 = {"capabilities": [
    {"tool": "send_money", "constraints": {"amount": {"max": 900}}}]}


def _widened_two_links_down(people):
    root = issue(people.principal, people.agent, PAY_500, max_depth=2)
    middle = issue(people.agent, people.helper,
                   {"capabilities": [{"tool": "send_money"}]}, root, max_depth=1)
    return [root, middle, issue(people.helper, people.worker, MAX_900, middle)]


CASES = {
    "signature_flipped_byte": Case(
        _flipped_signature, "chain.signature",
        r"link 0: signature does not verify under issuer principal\.test\+"),
    "signature_wrong_key": Case(
        _signed_by_wrong_key, "chain.signature",
        r"link 0: signature does not verify under issuer principal\.test\+"),
    "signature_second_link_forged": Case(
        _forged_second_link, "chain.signature",
        r"link 1: signature does not verify under issuer agent\.test\+"),
    "expired": Case(
        lambda p: [issue(p.principal, p.agent)], "chain.expired",
        r"valid from 2026-12-04T09:00:00Z to 2026-12-05T10:00:00Z; "
        r"now is 2026-12-06T10:00:00Z",
        now=T0 + timedelta(days=2)),
    "not_yet_valid": Case(
        lambda p: [issue(p.principal, p.agent)], "chain.expired",
        r"now is 2026-12-04T08:00:00Z", now=T0 - 2 * HOUR),
    "child_ends_after_parent": Case(
        _child(ALL_TOOLS, end=T0 + timedelta(days=2)), "chain.window",
        r"link 1 is valid 2026-12-04T09:00:00Z to 2026-12-06T10:00:00Z, "
        r"outside its parent's window"),
    "child_starts_before_parent": Case(
        _child(ALL_TOOLS, start=T0 - 2 * HOUR), "chain.window",
        r"link 1 is valid 2026-12-04T08:00:00Z to"),
    "scope_wider_tool_pattern": Case(
        _child(ALL_TOOLS, {"capabilities": [{"tool": "read_*"}]}), "chain.scope",
        r"capability \{'tool': '\*'\} is wider than every capability"),
    "scope_exact_to_prefix": Case(
        _child({"capabilities": [{"tool": "send_*"}]},
               {"capabilities": [{"tool": "send_money"}]}), "chain.scope",
        r"\{'tool': 'send_\*'\} is wider"),
    "scope_looser_max": Case(
        _child(MAX_900, PAY_500), "chain.scope",
        r"'amount': \{'max': 900\}"),
    "scope_looser_one_of": Case(
        _child({"capabilities": [{"tool": "send_money", "constraints": {
            "recipient": {"one_of": ["GB29", "DE89"]}}}]}, PAY_500),
        "chain.scope", r"'one_of': \['GB29', 'DE89'\]"),
    "scope_one_of_true_for_1": Case(
        _child({"capabilities": [{"tool": "t", "constraints": {
            "flag": {"one_of": [True]}}}]},
            {"capabilities": [{"tool": "t", "constraints": {
                "flag": {"one_of": [1]}}}]}),
        "chain.scope", r"'one_of': \[True\]"),
    "scope_added_kind_beside_looser_max": Case(
        _child({"capabilities": [{"tool": "send_money", "constraints": {
            "amount": {"one_of": [100], "max": 900}}}]}, PAY_500),
        "chain.scope", r"is wider than every capability"),
    "scope_wider_path_prefix": Case(
        _child(_one("read_file", "path", {"path_prefix": ["/srv"]}),
               _one("read_file", "path", {"path_prefix": ["/srv/data"]})),
        "chain.scope", r"'path_prefix': \['/srv'\]"),
    "scope_sibling_path_prefix": Case(
        _child(_one("read_file", "path", {"path_prefix": ["/srv/database"]}),
               _one("read_file", "path", {"path_prefix": ["/srv/data"]})),
        "chain.scope", r"'path_prefix': \['/srv/database'\]"),
    "scope_path_prefix_adds_base": Case(
        _child(_one("read_file", "path", {"path_prefix": {
            "prefixes": ["/srv/data"], "base": "/srv/data"}}),
            _one("read_file", "path", {"path_prefix": ["/srv/data"]})),
        "chain.scope", r"is wider than every capability"),
    "scope_wider_url_prefix": Case(
        _child(_one("fetch", "url", {"url_prefix": ["https://api.example.com/"]}),
               _one("fetch", "url", {"url_prefix": ["https://api.example.com/v1/"]})),
        "chain.scope", r"'url_prefix': \['https://api\.example\.com/'\]"),
    "scope_url_prefix_other_port": Case(
        _child(_one("fetch", "url",
                    {"url_prefix": ["https://api.example.com:8443/v1/"]}),
               _one("fetch", "url", {"url_prefix": ["https://api.example.com/v1/"]})),
        "chain.scope", r"is wider than every capability"),
    "scope_domains_wildcard_from_exact": Case(
        _child(_one("send_email", "to", {"domains": ["*.example.com"]}),
               _one("send_email", "to", {"domains": ["example.com"]})),
        "chain.scope", r"'domains': \['\*\.example\.com'\]"),
    "scope_wider_commands": Case(
        _child(_one("run_shell", "command", {"commands": ["git"]}),
               _one("run_shell", "command", {"commands": ["git status"]})),
        "chain.scope", r"'commands': \['git'\]"),
    "scope_commands_basename_from_exact": Case(
        _child(_one("run_shell", "command", {"commands": ["*/git status"]}),
               _one("run_shell", "command", {"commands": ["git status"]})),
        "chain.scope", r"'commands': \['\*/git status'\]"),
    "scope_larger_budget": Case(
        _child({"capabilities": [{"tool": "send_money", "budget": {"calls": 4}}]},
               {"capabilities": [{"tool": "send_money", "budget": {"calls": 3}}]}),
        "chain.scope", r"'budget': \{'calls': 4\}"),
    "scope_widened_two_links_down": Case(
        _widened_two_links_down, "chain.scope", r"'amount': \{'max': 900\}"),
    "loop_subject_repeats": Case(
        _loop_back_to_agent, "chain.loop",
        r"link 2: subject agent\.test\+[0-9a-f]{8} already appears earlier in the "
        r"chain \(a loop\)"),
    "loop_back_to_principal": Case(
        _loop_back_to_principal, "chain.loop", r"link 1: subject principal\.test"),
    "duplicate_link": Case(
        _duplicate_link, "chain.duplicate",
        r"a certificate appears twice in the chain"),
    "depth_root": Case(
        _root_depth_exceeded, "chain.depth",
        r"link 0 allows 0 further links but 1 follow"),
    "depth_middle": Case(
        _middle_depth_exceeded, "chain.depth",
        r"link 1 allows 0 further links but 1 follow"),
    "depth_chain_too_long": Case(
        _too_long, "chain.depth", r"chain has 17 links; at most 16 allowed"),
    "root_not_trust_anchor": Case(
        lambda p: [issue(p.mallory, p.agent)], "chain.anchor",
        r"root issuer mallory\.test\+[0-9a-f]{8} is not a configured trust anchor"),
    "wrong_parent_hash": Case(
        _wrong_parent_hash, "chain.link",
        r"link 1: parent hash does not match link 0"),
    "issuer_not_parent_subject": Case(
        _issuer_not_parent_subject, "chain.link",
        r"link 1: issuer is not the subject of link 0"),
    "root_has_parent": Case(
        _root_with_parent, "chain.link", r"the root certificate must have parent null"),
    "unknown_certificate_field": Case(
        _root_body(extension="x"), "certificate.format",
        r"missing \[\], unknown \['extension'\]; a field this gate does not "
        r"understand is refused"),
    "missing_certificate_field": Case(
        _missing_field, "certificate.format", r"missing \['subject'\], unknown \[\]"),
    "version_true": Case(
        _root_body(version=True), "certificate.format",
        r"must be 'agentgate.delegation'/1, got 'agentgate.delegation'/True"),
    "issuer_not_string": Case(
        _root_body(issuer=5), "certificate.format",
        r"certificate issuer: verifier key must be a string 'name\+hex8\+base64', "
        r"got 5 \(int\)"),
    "unknown_scope_member": Case(
        _root_scope({"capabilities": [], "note": "x"}), "scope",
        r"scope must be an object with only 'capabilities'"),
    "unknown_capability_member": Case(
        _root_scope({"capabilities": [{"tool": "t", "limit": 3}]}),
        "scope.capability",
        r"capability has unknown members \['limit'\]; allowed: tool, constraints, "
        r"budget"),
    "unknown_constraint_kind": Case(
        _root_scope({"capabilities": [{"tool": "t", "constraints": {
            "amount": {"regex": "1"}}}]}), "scope.constraint",
        r"unknown constraint kind 'regex' on 'amount'; this gate understands "
        r"commands, domains, max, min, one_of, path_prefix, url_prefix"),
    "constraint_empty": Case(
        _root_scope({"capabilities": [{"tool": "t", "constraints": {
            "amount": {}}}]}), "scope.constraint",
        r"constraint on 'amount' must be an object of one or more constraint kinds"),
    "dotdot_in_path_prefix": Case(
        _root_scope(_one("t", "path", {"path_prefix": ["/srv/data/../etc"]})),
        "scope.constraint",
        r"path prefix '/srv/data/\.\./etc' contains '\.\.': '\.\.' is never allowed"),
    "dotdot_in_url_prefix": Case(
        _root_scope(_one("t", "url", {"url_prefix": ["https://a.example/v1/%2E%2E/"]})),
        "scope.constraint", r"URL prefix 'https://a\.example/v1/%2E%2E/' contains"),
    "dotdot_in_command_entry": Case(
        _root_scope(_one("t", "command", {"commands": ["cat ../secret"]})),
        "scope.constraint", r"command entry 'cat \.\./secret' contains '\.\.'"),
    "budget_unknown_member": Case(
        _root_scope({"capabilities": [{"tool": "t", "budget": {
            "calls": 1, "per": "day"}}]}), "scope.budget",
        r"budget of 't' must be \{\"calls\": n\}"),
    "dotdot_in_tool_pattern": Case(
        _root_scope({"capabilities": [{"tool": "files/../admin_*"}]}), "scope.tool",
        r"tool pattern 'files/\.\./admin_\*': .*'\.\.' is never allowed"),
    "star_inside_tool_pattern": Case(
        _root_scope({"capabilities": [{"tool": "read_*_file"}]}), "scope.tool",
        r"'\*' is allowed only at the end"),
    "link_not_certificate": Case(
        lambda p: [issue(p.principal, p.agent).to_json()], "certificate.format",
        r"link 0 is a dict, expected a Certificate; build one with "
        r"Certificate\.from_json"),
    "body_not_json": Case(
        _body_not_json, "certificate.format",
        r"link 0 cannot be canonicalized: .*a set is not a JSON value"),
    "dotdot_in_argument_name": Case(
        _root_scope({"capabilities": [{"tool": "t", "constraints": {
            "../path": {"one_of": ["a"]}}}]}), "scope.constraint",
        r"argument name '\.\./path' may not contain '\.\.'"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_chain_rejected(name, chains, people):
    case = CASES[name]

    with pytest.raises(DelegationError) as caught:
        chains.verify(case.build(people), case.now)

    assert caught.value.rule == case.rule
    assert re.search(case.message, str(caught.value)), str(caught.value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rejected_chain_sealed_as_deny(name, make_harness, people):
    case = CASES[name]
    harness = make_harness()
    harness.clock.now = case.now
    runs = []

    session = harness.gate.session("read the report", chain=case.build(people))
    with pytest.raises(Denied) as caught:
        session.call("read_file", {"path": "report.txt"}, lambda: runs.append(1))

    assert runs == []
    assert [r.rule for r in caught.value.reasons] == [case.rule]
    record = verify(caught.value.receipt).record
    assert record["type"] == "decision"
    assert record["verdict"] == "deny"
    assert record["reasons"][0]["rule"] == case.rule
    assert re.search(case.message, record["reasons"][0]["text"])
    assert record["delegation"]["scope"] == {"capabilities": []}
    assert record["policy"] == harness.gate.policy_hash


def test_unhashable_chain_sealed_without_hashes(make_harness, people):
    harness = make_harness()
    session = harness.gate.session("read", chain=_body_not_json(people))

    with pytest.raises(Denied) as caught:
        session.call("read_file", {"path": "report.txt"}, lambda: None)

    delegation = verify(caught.value.receipt).record["delegation"]
    assert delegation == {"chain": [], "root": people.principal.verifier_key,
                          "scope": {"capabilities": []}}
    assert verify(caught.value.receipt).record["agent"] == people.agent.key_id


# -- resource constraints and budgets through a gate --------------------------------


def test_added_kind_narrows_inherited_one(chains, people):
    chain = two_links(people, {"capabilities": [{"tool": "send_money", "constraints": {
        "amount": {"one_of": [100, 700]}}}]}, PAY_500)

    verified = chains.verify(chain, T0)

    assert verified.scope.to_json()["capabilities"][0]["constraints"]["amount"] == \
        {"max": 500, "one_of": [100, 700]}
    assert verified.scope.check("send_money", {"amount": 700, "recipient": "GB29"}) \
        == ["argument 'amount'=700 breaks {'max': 500}"]


def test_path_prefix_denied_through_gate(make_harness, people):
    harness = make_harness()
    chain = two_links(people, _one("read_file", "path",
                                   {"path_prefix": ["/srv/data/reports"]}),
                      _one("read_file", "path", {"path_prefix": ["/srv/data"]}))
    runs = []

    with harness.gate.session("read the quarterly report", chain=chain) as session:
        session.call("read_file", {"path": "/srv/data/reports/q1.txt"},
                     lambda: runs.append(1))
        with pytest.raises(Denied) as caught:
            session.call("read_file", {"path": "/srv/data/reports/../../../etc/passwd"},
                         lambda: runs.append(2))

    assert runs == [1]
    assert caught.value.reasons[0] == Reason(
        "delegation.scope",
        "argument 'path'='/srv/data/reports/../../../etc/passwd' breaks "
        "{'path_prefix': ['/srv/data/reports']}: it reads as /etc/passwd",
    )


BUDGET_3 = {"capabilities": [{"tool": "send_money", "budget": {"calls": 3}}]}


def test_budget_denies_after_limit(make_harness, people):
    harness = make_harness()
    chain = two_links(people, {"capabilities": [{"tool": "send_money"}]}, BUDGET_3)
    runs = []

    with harness.gate.session("send money to GB29", chain=chain) as session:
        for _ in range(3):
            session.call("send_money", {"amount": 1, "recipient": "GB29"},
                         lambda: runs.append(1))
        with pytest.raises(Denied) as caught:
            session.call("send_money", {"amount": 1, "recipient": "GB29"},
                         lambda: runs.append(1))

    assert runs == [1, 1, 1]
    assert caught.value.reasons[0] == Reason(
        "delegation.budget",
        f"capability 'send_money' has used its budget of 3 calls (certificate "
        f"{chain[0].hash})",
    )
    record = verify(caught.value.receipt).record
    assert record["reasons"][0]["rule"] == "delegation.budget"
    # The inherited budget is part of the effective scope the record shows.
    assert record["delegation"]["scope"] == BUDGET_3


def test_budget_shared_by_sibling_chains(make_harness, people):
    harness = make_harness()
    root = issue(people.principal, people.agent, BUDGET_3, max_depth=1)
    left = [root, issue(people.agent, people.helper, BUDGET_3, root)]
    right = [root, issue(people.agent, people.worker, BUDGET_3, root)]
    verdicts = []

    for chain in (left, right, left, right):
        session = harness.gate.session("send money to GB29", chain=chain)
        decision = session.decide("send_money", {"amount": 1, "recipient": "GB29"})
        verdicts.append(decision.verdict)

    assert verdicts == ["allow", "allow", "allow", "deny"]


def test_budget_exact_under_32_gate_threads(make_harness, people):
    harness = make_harness()
    chain = [issue(people.principal, people.agent, {"capabilities": [
        {"tool": "send_money", "budget": {"calls": 5}}]})]
    barrier = threading.Barrier(32)
    verdicts: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        session = harness.gate.session("send money to GB29", chain=chain)
        barrier.wait()
        decision = session.decide("send_money", {"amount": 1, "recipient": "GB29"})
        with lock:
            verdicts.append(decision.verdict)

    threads = [threading.Thread(target=call) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert verdicts.count("allow") == 5
    assert verdicts.count("deny") == 27
    budget_denies = [r for r in harness.records_of("decision")
                     if r["reasons"] and r["reasons"][0]["rule"] == "delegation.budget"]
    assert len(budget_denies) == 27


BUDGET_1 = {"capabilities": [{"tool": "send_money", "budget": {"calls": 1}}]}
SMALL = {"amount": 1, "recipient": "GB29"}
# Above the default policy's amount_threshold of 5000, which holds the call.
LARGE = {"amount": 9000, "recipient": "GB29"}


def test_budget_given_back_when_rule_holds(make_harness, people):
    harness = make_harness()
    chain = [issue(people.principal, people.agent, BUDGET_1)]
    session = harness.gate.session("send money to GB29", chain=chain)

    held = session.decide("send_money", LARGE)
    allowed = session.decide("send_money", SMALL)
    spent = session.decide("send_money", SMALL)

    assert held.verdict == "hold"
    assert [reason.rule for reason in held.reasons] == ["value.large-amount"]
    assert allowed.verdict == "allow"
    assert spent.verdict == "deny"
    assert spent.reasons[0] == Reason(
        "delegation.budget",
        f"capability 'send_money' has used its budget of 1 calls (certificate "
        f"{chain[0].hash})",
    )


def test_budget_given_back_when_alignment_refuses(make_harness, people):
    harness = make_harness()
    chain = [issue(people.principal, people.agent, BUDGET_1)]
    off_purpose = harness.gate.session("summarize the news", chain=chain)
    on_purpose = harness.gate.session("send money to GB29", chain=chain)

    refused = off_purpose.decide("send_money", SMALL)
    allowed = on_purpose.decide("send_money", SMALL)

    assert refused.verdict in ("hold", "deny")
    assert [reason.rule for reason in refused.reasons] == ["alignment"]
    assert allowed.verdict == "allow"


def test_budget_given_back_when_seal_fails(make_harness, people):
    harness = make_harness(tampering=True)
    chain = [issue(people.principal, people.agent, BUDGET_1)]
    session = harness.gate.session("send money to GB29", chain=chain)
    harness.client.fail_with = OSError("disk full")

    with pytest.raises(SealError, match="disk full"):
        session.decide("send_money", SMALL)
    harness.client.fail_with = None
    allowed = session.decide("send_money", SMALL)
    spent = session.decide("send_money", SMALL)

    assert allowed.verdict == "allow"
    assert spent.verdict == "deny"
    assert spent.reasons[0].rule == "delegation.budget"


def test_held_calls_never_spend_budget_under_threads(make_harness, people):
    """16 held and 16 allowable calls at once against a budget of 5: the held
    calls' charges are given back under the lock that charged them, so
    exactly 5 allowable calls run whatever the interleaving."""
    harness = make_harness()
    chain = [issue(people.principal, people.agent, {"capabilities": [
        {"tool": "send_money", "budget": {"calls": 5}}]})]
    barrier = threading.Barrier(32)
    verdicts: list[tuple[int, str]] = []
    lock = threading.Lock()

    def call(amount: int) -> None:
        session = harness.gate.session("send money to GB29", chain=chain)
        barrier.wait()
        decision = session.decide("send_money", {"amount": amount,
                                                 "recipient": "GB29"})
        with lock:
            verdicts.append((amount, decision.verdict))

    threads = [threading.Thread(target=call, args=(amount,))
               for amount in [9000] * 16 + [1] * 16]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert verdicts.count((1, "allow")) == 5
    assert verdicts.count((1, "deny")) == 11
    # A held call decided after the budget ran out is denied for budget.
    assert all(verdict in ("hold", "deny") for amount, verdict in verdicts
               if amount == 9000)


def test_cached_three_link_chain_is_verified_once(people, monkeypatch):
    """A chain's signatures and attenuation are checked once, then cached.

    Its speed is measured in bench/bench_decision.py, not here.
    """
    chains = ChainVerifier([people.principal.verifier_key])
    scope = {"capabilities": [{"tool": f"tool_{i}"} for i in range(20)] + [
        {"tool": "send_money", "budget": {"calls": 10**9}, "constraints": {
            "amount": {"max": 500, "min": 1}, "recipient": {"one_of": ["GB29"]}}}]}
    root = issue(people.principal, people.agent, scope, max_depth=2)
    middle = issue(people.agent, people.helper, scope, root, max_depth=1)
    chain = [root, middle, issue(people.helper, people.worker, scope, middle)]
    budgets = CallBudgets()
    arguments = {"amount": 100, "recipient": "GB29"}
    uncached = []
    verify_uncached = chains._verify_uncached
    monkeypatch.setattr(chains, "_verify_uncached",
                        lambda *args: uncached.append(1) or verify_uncached(*args))

    for _ in range(50):
        admitted = chains.verify(chain, T0).scope.admit("send_money", arguments,
                                                         budgets).admitted
        assert admitted

    assert len(uncached) == 1
