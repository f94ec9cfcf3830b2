"""Delegation chains as the auditor checks them: one case per chain rule, the
validity window, revocation authority, and agreement with the gate."""

import base64
from datetime import timedelta

import pytest

from enforcement.delegation import ChainVerifier
from enforcement.errors import DelegationError
from enforcement.revocation import sign_revocation
from tests.enforcement.conftest import T0, issue, seeded_identity, sign_body
from verifier.delegation import (
    Revocation,
    check_window,
    find_revocation,
    parse_certificate,
    parse_revocation,
    verify_chain,
)
from verifier.errors import ChainInvalid, MalformedInput

ROOT = seeded_identity("root.delegation")
AGENT = seeded_identity("agent.delegation")
SUB = seeded_identity("sub.delegation")
SCOPE = {
    "capabilities": [{"tool": "send_money", "constraints": {"amount": {"max": 100}}}]
}


def parsed(*certificates):
    return [parse_certificate(c.to_json()) for c in certificates]


def chain_of_two(child_scope=SCOPE, **child_options):
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    child = issue(AGENT, SUB, child_scope, parent=parent, **child_options)
    return parent, child


def rule_of(certificates, anchors=(ROOT.verifier_key,)):
    with pytest.raises(ChainInvalid) as caught:
        verify_chain(parsed(*certificates), anchors)
    return caught.value.rule


def test_valid_chain_facts():
    parent, child = chain_of_two()
    chain = verify_chain(parsed(parent, child), [ROOT.verifier_key])

    assert chain.hashes == (parent.hash, child.hash)
    assert chain.root == ROOT.verifier_key
    assert chain.agent == SUB.key_id
    check_window(chain, T0)


def test_hash_and_signature_match_the_gate():
    parent, _ = chain_of_two()
    certificate = parse_certificate(parent.to_json())
    assert certificate.hash == parent.hash
    assert certificate.signature_valid()


def test_rule_anchor():
    parent, child = chain_of_two()
    assert rule_of([parent, child], anchors=[AGENT.verifier_key]) == "chain.anchor"


def test_rule_signature():
    parent, child = chain_of_two()
    signed = child.to_json()
    signature = bytearray(base64.b64decode(signed["signature"]))
    signature[0] ^= 1
    signed["signature"] = base64.b64encode(bytes(signature)).decode()
    with pytest.raises(ChainInvalid) as caught:
        verify_chain([parse_certificate(parent.to_json()), parse_certificate(signed)])
    assert caught.value.rule == "chain.signature"


def test_rule_link_issuer():
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    child = issue(SUB, seeded_identity("other.delegation"), SCOPE, parent=parent)
    assert rule_of([parent, child]) == "chain.link"


def test_rule_link_parent_hash():
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    other = issue(ROOT, AGENT, SCOPE, max_depth=1)
    child = issue(AGENT, SUB, SCOPE, parent=other)
    assert rule_of([parent, child]) == "chain.link"


def test_rule_root_has_parent():
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    body = dict(parent.body, parent="ab" * 32)
    assert rule_of([sign_body(ROOT, body)]) == "chain.link"


def test_rule_window_nesting():
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    body = dict(
        issue(AGENT, SUB, SCOPE, parent=parent).body, not_after="2027-12-04T10:00:00Z"
    )
    assert rule_of([parent, sign_body(AGENT, body)]) == "chain.window"


def test_rule_expired_at_decision_time():
    parent, child = chain_of_two()
    chain = verify_chain(parsed(parent, child))
    with pytest.raises(ChainInvalid, match="not at 2026-12-06") as caught:
        check_window(chain, T0 + timedelta(days=2))
    assert caught.value.rule == "chain.expired"


def test_rule_depth():
    parent = issue(ROOT, AGENT, SCOPE, max_depth=0)
    child = issue(AGENT, SUB, SCOPE, parent=parent)
    assert rule_of([parent, child]) == "chain.depth"


def test_rule_scope():
    wider = {
        "capabilities": [
            {"tool": "send_money", "constraints": {"amount": {"max": 1000}}}
        ]
    }
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    body = dict(issue(AGENT, SUB, SCOPE, parent=parent).body, scope=wider)
    with pytest.raises(
        ChainInvalid, match="max 1000 exceeds the parent's 100"
    ) as caught:
        verify_chain(parsed(parent, sign_body(AGENT, body)))
    assert caught.value.rule == "chain.scope"


def test_rule_duplicate():
    parent, _ = chain_of_two()
    assert rule_of([parent, parent]) == "chain.duplicate"


def test_rule_loop():
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    child = issue(AGENT, ROOT, SCOPE, parent=parent)
    assert rule_of([parent, child]) == "chain.loop"


def test_unknown_member_is_format_error():
    parent = issue(ROOT, AGENT, SCOPE)
    signed = parent.to_json()
    signed["certificate"] = dict(signed["certificate"], extra=1)
    with pytest.raises(ChainInvalid, match="expected the members") as caught:
        parse_certificate(signed)
    assert caught.value.rule == "certificate.format"


def test_unknown_constraint_kind_is_format_error():
    scope = {"capabilities": [{"tool": "x", "constraints": {"a": {"regex": ".*"}}}]}
    body = dict(issue(ROOT, AGENT, SCOPE).body, scope=scope)
    with pytest.raises(ChainInvalid, match=r"unknown constraint kinds \['regex'\]"):
        parse_certificate(sign_body(ROOT, body).to_json())


def revocation(certificate_hash, revoker, index=5):
    return {
        certificate_hash: [
            Revocation(index, "r-" + "0" * 32, certificate_hash, revoker.verifier_key)
        ]
    }


def test_revocation_authority():
    parent, child = chain_of_two()
    chain = verify_chain(parsed(parent, child))
    anchors = [ROOT.verifier_key]

    # The child's issuer and the anchor may revoke it; its subject may not.
    assert find_revocation(chain, revocation(child.hash, AGENT), anchors)[0] == 1
    assert find_revocation(chain, revocation(child.hash, ROOT), anchors)[0] == 1
    assert find_revocation(chain, revocation(child.hash, SUB), anchors) is None
    # The agent may not revoke its own certificate from the root.
    assert find_revocation(chain, revocation(parent.hash, AGENT), anchors) is None


def test_revocation_record_signature():
    signed = sign_revocation("ab" * 32, AGENT, "done", T0).to_record()
    assert parse_revocation(signed, 7).revoker == AGENT.verifier_key
    with pytest.raises(ChainInvalid) as caught:
        parse_revocation(dict(signed, reason="other"), 7)
    assert caught.value.rule == "revocation.signature"
    with pytest.raises(MalformedInput, match="reason must be a string of at most 1024"):
        parse_revocation(dict(signed, reason="x" * 1025), 7)


@pytest.mark.parametrize(
    "scope",
    [
        {
            "capabilities": [
                {"tool": "send_money", "constraints": {"amount": {"max": 50}}}
            ]
        },
        {"capabilities": [{"tool": "send_*"}]},
        {"capabilities": [{"tool": "send_money", "budget": {"calls": 3}}]},
    ],
)
def test_agrees_with_gate(scope):
    parent = issue(ROOT, AGENT, SCOPE, max_depth=1)
    body = dict(issue(AGENT, SUB, SCOPE, parent=parent).body, scope=scope)
    child = sign_body(AGENT, body)
    try:
        ChainVerifier([ROOT.verifier_key]).verify([parent, child], T0)
        gate_rule = None
    except DelegationError as err:
        gate_rule = err.rule
    try:
        verify_chain(parsed(parent, child), [ROOT.verifier_key])
        audit_rule = None
    except ChainInvalid as err:
        audit_rule = err.rule
    assert audit_rule == gate_rule
