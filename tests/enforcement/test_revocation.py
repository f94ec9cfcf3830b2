"""Revocation: who may revoke, what stops working, and what a restart keeps.

The chain used throughout is principal -> agent -> helper -> worker, with a
sibling branch agent -> worker2 to show that a revocation reaches only the
certificates below the revoked one.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest

from enforcement import jcs
from enforcement.delegation import Certificate, ChainVerifier
from enforcement.errors import ConfigError, DelegationError, Denied, SealError
from enforcement.gate import Gate
from enforcement.identity import Identity
from enforcement.policy import load_policy
from enforcement.revocation import (
    SIGNATURE_CONTEXT,
    Revocation,
    RevocationSet,
    read_revocations,
    sign_revocation,
)
from tests.enforcement.conftest import (
    LOG_KEY,
    ORIGIN,
    T0,
    TamperingClient,
    issue,
    seeded_identity,
    verify,
)


@dataclass(frozen=True)
class Tree:
    principal: Identity
    agent: Identity
    helper: Identity
    worker: Identity
    mallory: Identity
    root: Certificate
    middle: Certificate
    leaf: Certificate
    sibling: Certificate

    @property
    def chain(self) -> list[Certificate]:
        return [self.root, self.middle, self.leaf]

    @property
    def sibling_chain(self) -> list[Certificate]:
        return [self.root, self.sibling]


@pytest.fixture
def tree(principal, agent) -> Tree:
    helper = seeded_identity("helper.test")
    worker = seeded_identity("worker.test")
    root = issue(principal, agent, max_depth=2)
    middle = issue(agent, helper, parent=root, max_depth=1)
    leaf = issue(helper, worker, parent=middle)
    sibling = issue(agent, seeded_identity("worker2.test"), parent=root)
    return Tree(principal, agent, helper, worker, seeded_identity("mallory.test"),
                root, middle, leaf, sibling)


@pytest.fixture
def gate_and_log(make_harness, tree):
    """A gate that has verified both chains once, so they are cached."""
    harness = make_harness()
    harness.gate._chains.verify(tree.chain, T0)
    harness.gate._chains.verify(tree.sibling_chain, T0)
    return harness


def decide(harness, chain) -> object:
    session = harness.gate.session("read the report", chain=chain)
    return session.decide("read_file", {"path": "report.txt"})


# -- who may revoke ---------------------------------------------------------------


@pytest.mark.parametrize(("target", "revoker"), [
    ("root", "principal"),
    ("middle", "agent"),
    ("middle", "principal"),
    ("leaf", "helper"),
    ("leaf", "agent"),
    ("leaf", "principal"),
])
def test_issuer_or_ancestor_revokes(gate_and_log, tree, target, revoker):
    harness = gate_and_log
    certificate = getattr(tree, target)

    sealed = harness.gate.revoke(certificate.hash, by=getattr(tree, revoker),
                                 reason="key lost")

    record = verify(sealed.receipt).record
    assert record["type"] == "revocation"
    assert record["certificate"] == certificate.hash
    assert record["revoker"] == getattr(tree, revoker).verifier_key
    assert record["reason"] == "key lost"
    assert Revocation.from_record(record).certificate == certificate.hash
    assert harness.gate.is_revoked(certificate.hash)


@pytest.mark.parametrize("revoker", ["mallory", "worker"])
def test_stranger_or_subject_rejected_before_sealing(gate_and_log, tree, revoker):
    harness = gate_and_log
    size = harness.ledger.size

    with pytest.raises(DelegationError) as caught:
        harness.gate.revoke(tree.leaf.hash, by=getattr(tree, revoker))

    assert caught.value.rule == "revocation.authority"
    assert str(caught.value) == (
        f"{getattr(tree, revoker).key_id} may not revoke certificate "
        f"{tree.leaf.hash}: only its issuer, an issuer above it in its chain, or a "
        "trust anchor may"
    )
    assert harness.ledger.size == size
    assert not harness.gate.is_revoked(tree.leaf.hash)
    assert decide(harness, tree.chain).verdict == "allow"


def test_issuer_below_cannot_revoke_ancestor(gate_and_log, tree):
    with pytest.raises(DelegationError) as caught:
        gate_and_log.gate.revoke(tree.middle.hash, by=tree.helper)
    assert caught.value.rule == "revocation.authority"


def test_unknown_certificate_needs_chain(make_harness, tree):
    harness = make_harness()

    with pytest.raises(DelegationError, match="is unknown to this gate; pass the "
                       "chain that contains it") as caught:
        harness.gate.revoke(tree.leaf.hash, by=tree.helper)
    assert caught.value.rule == "revocation.unknown"

    harness.gate.revoke(tree.leaf.hash, by=tree.helper, chain=tree.chain)
    assert decide(harness, tree.chain).verdict == "deny"


def test_chain_not_containing_certificate_rejected(make_harness, tree):
    with pytest.raises(DelegationError, match="is not in the chain given") as caught:
        make_harness().gate.revoke(tree.leaf.hash, by=tree.helper,
                                   chain=tree.sibling_chain)
    assert caught.value.rule == "revocation.unknown"


def test_anchor_revokes_unseen_certificate(make_harness, tree):
    harness = make_harness()

    harness.gate.revoke(tree.middle.hash, by=tree.principal)

    assert decide(harness, tree.chain).verdict == "deny"


@pytest.mark.parametrize(("certificate_hash", "reason", "message"), [
    ("ABC", "", "a certificate hash must be 64 lowercase hex digits, got 'ABC'"),
    ("A" * 64, "", "must be 64 lowercase hex digits"),
    ("a" * 64, "x" * 1025, "a revocation reason must be a string of at most 1024 "
                           "characters, got str of length 1025"),
    ("a" * 64, None, "got NoneType of length -"),
])
def test_malformed_revocation_rejected(harness, tree, certificate_hash, reason,
                                       message):
    with pytest.raises(DelegationError, match=message) as caught:
        harness.gate.revoke(certificate_hash, by=tree.principal, reason=reason)
    assert caught.value.rule == "revocation.format"


def test_revoker_must_be_identity(harness, tree):
    with pytest.raises(ConfigError, match="by= must be the revoker's Identity"):
        harness.gate.revoke(tree.root.hash, by=tree.principal.public)


# -- what stops working -----------------------------------------------------------


def test_revoked_root_refuses_every_chain(gate_and_log, tree):
    harness = gate_and_log
    harness.gate.revoke(tree.root.hash, by=tree.principal, reason="compromised")

    for chain in (tree.chain, tree.sibling_chain, [tree.root]):
        decision = decide(harness, chain)
        assert decision.verdict == "deny"
        assert decision.reasons[0].rule == "chain.revoked"
        assert decision.reasons[0].text == (
            f"link 0 (certificate {tree.root.hash}) was revoked by "
            f"{tree.principal.key_id} at 2026-12-04T10:00:00.000000Z: compromised"
        )


def test_revoked_middle_spares_sibling(gate_and_log, tree):
    harness = gate_and_log
    harness.gate.revoke(tree.middle.hash, by=tree.agent)

    refused = decide(harness, tree.chain)

    assert refused.verdict == "deny"
    assert refused.reasons[0].text == (
        f"link 1 (certificate {tree.middle.hash}) was revoked by "
        f"{tree.agent.key_id} at 2026-12-04T10:00:00.000000Z"
    )
    assert decide(harness, tree.sibling_chain).verdict == "allow"
    assert decide(harness, tree.chain[:2]).verdict == "deny"


def test_revoked_leaf_spares_parents(gate_and_log, tree):
    harness = gate_and_log
    harness.gate.revoke(tree.leaf.hash, by=tree.helper)

    assert decide(harness, tree.chain).reasons[0].rule == "chain.revoked"
    assert decide(harness, tree.chain[:2]).verdict == "allow"
    assert decide(harness, tree.sibling_chain).verdict == "allow"


def test_cached_chain_refused_after_revocation(gate_and_log, tree):
    harness = gate_and_log
    runs = []
    with harness.gate.session("read the report", chain=tree.chain) as session:
        session.call("read_file", {"path": "report.txt"}, lambda: runs.append(1))
        harness.gate.revoke(tree.leaf.hash, by=tree.helper, reason="done")
        with pytest.raises(Denied) as caught:
            session.call("read_file", {"path": "report.txt"}, lambda: runs.append(2))

    assert runs == [1]
    record = verify(caught.value.receipt).record
    assert record["reasons"][0]["rule"] == "chain.revoked"
    assert record["delegation"]["scope"] == {"capabilities": []}


def test_revoked_reported_before_expired(gate_and_log, tree):
    harness = gate_and_log
    harness.gate.revoke(tree.root.hash, by=tree.principal)
    harness.clock.advance(timedelta(days=3).total_seconds())

    assert decide(harness, tree.chain).reasons[0].rule == "chain.revoked"


def test_stranger_revocation_ignored_in_chain(tree):
    revocations = RevocationSet([sign_revocation(tree.leaf.hash, tree.mallory, "",
                                                 T0)])
    chains = ChainVerifier([tree.principal.verifier_key], revocations=revocations)

    assert chains.verify(tree.chain, T0).hashes[-1] == tree.leaf.hash


def test_revocation_by_issuer_counts_without_gate(tree):
    revocations = RevocationSet([sign_revocation(tree.leaf.hash, tree.helper, "",
                                                 T0)])
    chains = ChainVerifier([tree.principal.verifier_key], revocations=revocations)

    with pytest.raises(DelegationError) as caught:
        chains.verify(tree.chain, T0)

    assert caught.value.rule == "chain.revoked"


# -- records ------------------------------------------------------------------------


def _record(tree: Tree) -> dict:
    return sign_revocation(tree.leaf.hash, tree.helper, "rotated", T0).to_record()


def _resigned(tree: Tree, **changes) -> dict:
    """Change the record and sign it again, so only the change is wrong."""
    record = _record(tree)
    record.update(changes)
    body = {k: v for k, v in record.items() if k != "signature"}
    signature = tree.helper.sign(SIGNATURE_CONTEXT + jcs.canonical(body))
    record["signature"] = base64.b64encode(signature).decode()
    return record


def test_record_id_has_revocation_letter(tree):
    record = _record(tree)

    assert re.fullmatch(r"r-[0-9a-f]{32}", record["id"])


def test_record_round_trip(tree):
    record = _record(tree)
    parsed = Revocation.from_record(json.loads(jcs.canonical(record)))
    assert parsed.to_record() == record


@pytest.mark.parametrize(("mutate", "rule", "message"), [
    (lambda r, t: {**r, "certificate": "b" * 64}, "revocation.signature",
     "signature does not verify under helper.test+"),
    (lambda r, t: {**r, "reason": "other"}, "revocation.signature",
     "signature does not verify"),
    (lambda r, t: {**r, "revoker": t.principal.verifier_key}, "revocation.signature",
     "signature does not verify under principal.test+"),
    (lambda r, t: {**r, "signature": "AAAA"}, "revocation.signature",
     "signature does not verify"),
    (lambda r, t: {**r, "signature": "not base64!"}, "revocation.format",
     "revocation 'r-"),
    (lambda r, t: {**r, "extra": 1}, "revocation.format",
     "a revocation record has exactly the fields"),
    (lambda r, t: {k: v for k, v in r.items() if k != "reason"}, "revocation.format",
     "a revocation record has exactly the fields"),
    (lambda r, t: {**r, "version": True}, "revocation.format",
     "expected type 'revocation' version 1, got 'revocation' version True"),
    (lambda r, t: {**r, "time": "yesterday"}, "revocation.format",
     "revocation time: expected an RFC 3339 UTC time"),
    (lambda r, t: _resigned(t, id="x-1"), "revocation.format",
     "revocation id must start with 'r-', got 'x-1'"),
    (lambda r, t: _resigned(t, certificate="B" * 64), "revocation.format",
     "a certificate hash must be 64 lowercase hex digits"),
])
def test_record_mutation_rejected(tree, mutate, rule, message):
    with pytest.raises(DelegationError, match=message) as caught:
        Revocation.from_record(mutate(_record(tree), tree))
    assert caught.value.rule == rule


# -- restart ------------------------------------------------------------------------


def restarted(harness, **options) -> Gate:
    return Gate(harness.client, LOG_KEY, load_policy(),
                [harness.principal.verifier_key], clock=harness.clock,
                vault=harness.vault, **options)


def test_restarted_gate_refuses_revoked_chain(gate_and_log, tree):
    harness = gate_and_log
    harness.gate.revoke(tree.middle.hash, by=tree.agent, reason="rotated")

    gate = restarted(harness)

    assert gate.is_revoked(tree.middle.hash)
    decision = gate.session("read the report", chain=tree.chain).decide(
        "read_file", {"path": "report.txt"})
    assert decision.reasons[0].rule == "chain.revoked"
    sibling = gate.session("read the report", chain=tree.sibling_chain).decide(
        "read_file", {"path": "report.txt"})
    assert sibling.verdict == "allow"


def test_restart_without_reading_log(gate_and_log, tree):
    harness = gate_and_log
    harness.gate.revoke(tree.middle.hash, by=tree.agent)

    gate = restarted(harness, revocations=())

    assert not gate.is_revoked(tree.middle.hash)


def test_stranger_revocation_in_log_ignored(harness, tree):
    forged = sign_revocation(tree.leaf.hash, tree.mallory, "", T0).to_record()
    harness.client.append(jcs.canonical(forged))

    gate = restarted(harness)

    assert gate.is_revoked(tree.leaf.hash)
    decision = gate.session("read the report", chain=tree.chain).decide(
        "read_file", {"path": "report.txt"})
    assert decision.verdict == "allow"


def test_bad_signature_in_log_skipped(harness, tree, caplog):
    record = sign_revocation(tree.root.hash, tree.principal, "", T0).to_record()
    record["reason"] = "altered after signing"
    harness.client.append(jcs.canonical(record))

    with caplog.at_level(logging.WARNING, logger="enforcement.revocation"):
        gate = restarted(harness)

    assert not gate.is_revoked(tree.root.hash)
    assert f"skipping revocation record '{record['id']}'" in caplog.text


def test_read_revocations_fetches_checkpoint(harness, tree):
    harness.gate.revoke(tree.root.hash, by=tree.principal)

    found = read_revocations(harness.client, log_keys=[LOG_KEY], origin=ORIGIN,
                             batch_size=2)

    assert [r.certificate for r in found] == [tree.root.hash]


def test_read_revocations_wrong_key_fails(harness):
    other = seeded_identity("other.test").verifier_key
    with pytest.raises(SealError, match="the log's checkpoint did not verify"):
        read_revocations(harness.client, log_keys=[other], origin=ORIGIN)


class HidingClient(TamperingClient):
    """Returns the log's entries with every revocation record replaced."""

    def entries(self, start: int, stop: int) -> list[bytes]:
        return [b'{"type":"hidden"}' if b'"revocation"' in entry else entry
                for entry in self.inner.entries(start, stop)]


class ShortClient(TamperingClient):
    """Returns one entry too few."""

    def entries(self, start: int, stop: int) -> list[bytes]:
        return self.inner.entries(start, stop)[:-1]


def test_log_hiding_revocation_stops_gate(harness, tree):
    harness.gate.revoke(tree.root.hash, by=tree.principal)

    with pytest.raises(SealError, match=r"the log's first \d+ entries do not hash "
                       "to the root of its signed checkpoint"):
        Gate(HidingClient(harness.client), LOG_KEY, load_policy(),
             [tree.principal.verifier_key], clock=harness.clock, vault=harness.vault)


def test_log_returning_too_few_entries_stops_gate(harness, tree):
    with pytest.raises(SealError, match=r"the log returned \d+ entries for \[0, \d+\)"):
        Gate(ShortClient(harness.client), LOG_KEY, load_policy(),
             [tree.principal.verifier_key], clock=harness.clock, vault=harness.vault)
