"""The pipeline's two steps: ``evaluate`` judges a call without touching the
log, and ``seal`` records exactly what it judged."""

from __future__ import annotations

import pytest

from enforcement.errors import InvalidRequest, Reason, SealError
from enforcement.verdict import Evaluation
from tests.enforcement.conftest import issue, verify
from tests.enforcement.test_approvals import (
    ALICE,
    LARGE,
    RENT,
    approvals_policy,
    approve,
    hold,
)

IBAN = "GB29NWBK60161331926819"
PAYMENT = {"recipient": IBAN, "amount": 900}


def test_evaluate_appends_nothing(harness):
    session = harness.gate.session(RENT)
    size = harness.ledger.size

    evaluation = session.evaluate("send_money", PAYMENT)

    assert isinstance(evaluation, Evaluation)
    assert harness.ledger.size == size
    assert evaluation.verdict == "allow"
    assert evaluation.reasons == ()
    assert evaluation.tool == "send_money"
    assert evaluation.arguments == PAYMENT
    assert evaluation.chain.agent == harness.agent.key_id
    assert evaluation.chain.hashes == (harness.certificate.hash,)


def test_evaluate_reports_refusal_reasons(harness):
    session = harness.gate.session(RENT)

    evaluation = session.evaluate("send_money", LARGE)

    assert evaluation.verdict == "hold"
    assert [reason.rule for reason in evaluation.reasons] == ["value.large-amount"]
    assert evaluation.hold_rules == frozenset({"value.large-amount"})
    assert evaluation.sequence["fired"] == ["value.large-amount"]


def test_evaluate_rejects_bad_request(harness):
    session = harness.gate.session(RENT)
    size = harness.ledger.size

    with pytest.raises(InvalidRequest, match="tool name must be a non-empty string"):
        session.evaluate("", PAYMENT)
    assert harness.ledger.size == size


def test_seal_records_the_evaluation(harness):
    session = harness.gate.session(RENT)
    evaluation = session.evaluate("send_money", LARGE)

    decision = session.seal(evaluation)

    record = verify(decision.receipt).record
    assert harness.ledger.size == decision.index + 1
    assert record["verdict"] == evaluation.verdict == decision.verdict
    assert record["reasons"] == [reason.to_json() for reason in evaluation.reasons]
    assert record["tool"] == "send_money"
    assert record["agent"] == evaluation.chain.agent
    assert record["delegation"]["chain"] == list(evaluation.chain.hashes)
    assert record["sequence"]["before"] == evaluation.sequence["before"]
    assert record["sequence"]["after"] == evaluation.sequence["after"]
    assert record["sequence"]["previous"] is None
    assert record["time"] == "2026-12-04T10:00:00.000000Z"


def test_seal_links_to_previous_decision(harness):
    session = harness.gate.session(RENT)
    first = session.seal(session.evaluate("send_money", PAYMENT))

    second = session.seal(session.evaluate("send_money", PAYMENT))

    record = verify(second.receipt).record
    assert record["sequence"]["previous"] == first.leaf_hash
    assert record["sequence"]["before"] == verify(first.receipt).record[
        "sequence"]["after"]


def test_failed_chain_described_untrusted(harness, principal, agent):
    expired = [issue(principal, agent, end=harness.clock())]
    session = harness.gate.session(RENT, chain=expired)

    evaluation = session.evaluate("send_money", PAYMENT)

    assert evaluation.verdict == "deny"
    assert evaluation.chain.verified is None
    assert evaluation.reasons[0].rule == "chain.expired"
    assert evaluation.chain.hashes == (expired[0].hash,)


def test_failed_seal_leaves_no_decision(make_harness):
    harness = make_harness(tampering=True)
    session = harness.gate.session(RENT)
    harness.client.fail_with = OSError("disk full")

    with pytest.raises(SealError, match="the ledger did not seal decision record"):
        session.decide("send_money", PAYMENT)

    assert session.decisions == []


def test_approvals_sealed_by_seal_step(make_harness):
    harness = make_harness(policy=approvals_policy())
    session = harness.gate.session(RENT)
    with session:
        held = hold(session)
    approve(harness, held.request)
    size = harness.ledger.size

    evaluation = session.evaluate("send_money", LARGE)
    size_after_evaluate = harness.ledger.size
    decision = session.seal(evaluation)

    assert size_after_evaluate == size
    assert evaluation.verdict == "allow"
    assert evaluation.reasons[-1] == Reason(
        "approval",
        f"request {held.request} approved by 1 of 1 required: {ALICE.key_id}")
    approval, sealed = harness.records()[-2:]
    assert approval["type"] == "approval"
    assert sealed["approval"] == {
        "request": held.request,
        "approvals": [{"id": approval["id"], "index": decision.index - 1}],
    }


def test_changed_record_scope_not_reused(harness):
    session = harness.gate.session(RENT)
    first = session.decide("send_money", PAYMENT)

    first.record["delegation"]["scope"]["capabilities"].clear()
    second = session.decide("send_money", PAYMENT)

    assert verify(second.receipt).record["delegation"]["scope"] == {
        "capabilities": [{"tool": "*"}]}
