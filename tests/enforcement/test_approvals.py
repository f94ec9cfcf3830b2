"""Human approval of held calls: requests, signed approvals, quorum, replay,
expiry, denial and waiting, each checked against the sealed records."""

from __future__ import annotations

import base64
import re
import threading
import time
from datetime import timedelta

import pytest

from enforcement import jcs
from enforcement.approvals import (
    SIGNATURE_CONTEXT,
    SignedApproval,
    sign_approval,
    submit_approval,
    tally,
)
from enforcement.approvals_store import call_hash
from enforcement.errors import (
    ApprovalError,
    ApprovalRequired,
    ConfigError,
    Denied,
    Held,
)
from enforcement.vault import check_opening
from tests.enforcement.conftest import policy_with, seeded_identity, verify
from tests.enforcement.test_gate import FixedScorer, fixed

IBAN = "GB29NWBK60161331926819"
RENT = f"pay the rent of 900 to {IBAN}"
LARGE = {"recipient": IBAN, "amount": 9000}
ALICE = seeded_identity("alice.approver")
BOB = seeded_identity("bob.approver")
MALLORY = seeded_identity("mallory.approver")


def approvals_policy(quorum: int = 1, **changes):
    approvals = {"approvers": [ALICE.verifier_key, BOB.verifier_key],
                 "quorum": quorum, "expiry_seconds": 600,
                 "rules": ["value.large-amount", "value.session-total"],
                 **changes}
    return policy_with(approvals=approvals)


class Counter:
    def __init__(self) -> None:
        self.runs = 0

    def __call__(self):
        self.runs += 1
        return "paid"


@pytest.fixture
def approving(make_harness):
    return make_harness(policy=approvals_policy())


@pytest.fixture
def quorum_two(make_harness):
    return make_harness(policy=approvals_policy(quorum=2))


def hold(session, tool=None, arguments=LARGE) -> ApprovalRequired:
    with pytest.raises(ApprovalRequired) as caught:
        session.call("send_money", arguments, tool or Counter())
    return caught.value


def approve(harness, request_id, identity=ALICE, verdict="approve", expiry=None):
    store = harness.gate.approval_store
    signed = sign_approval(identity, store.request(request_id), verdict,
                           harness.clock(), expiry)
    submit_approval(store, signed, harness.clock())
    return signed


# -- the request ------------------------------------------------------------------


def test_hold_opens_sealed_request(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)

    decision, request = approving.records()[-2:]
    assert isinstance(held, Held)
    assert held.verdict == "hold"
    assert re.fullmatch(r"q-[0-9a-f]{32}", held.request)
    assert held.to_json()["request"] == held.request
    assert request["type"] == "approval-request"
    assert request["id"] == held.request
    assert request["decision"] == decision["id"] == held.decision.id
    assert request["decision_index"] == held.decision.index
    assert request["tool"] == "send_money"
    assert request["agent"] == approving.agent.key_id
    assert request["session"] == session.id
    assert request["rules"] == ["value.large-amount"]
    assert request["quorum"] == 1
    assert request["expiry"] == "2026-12-04T10:10:00.000000Z"
    assert request["policy"] == approving.gate.policy_hash


def test_request_hides_unsalted_argument_hash(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)

    request = approving.records_of("approval-request")[-1]
    stored = approving.gate.approval_store.request(held.request)
    assert request["arguments"] != call_hash(LARGE)
    assert stored.call_hash == call_hash(LARGE)
    name, salt, value = approving.vault.open(request["arguments"])
    assert name == "arguments"
    assert value == LARGE
    assert check_opening(request["arguments"], salt, value)


def test_hold_without_approvers_stays_plain(harness):
    with harness.gate.session(RENT) as session:
        with pytest.raises(Held) as caught:
            session.call("send_money", LARGE, Counter())

    assert not isinstance(caught.value, ApprovalRequired)
    assert harness.gate.approval_store is None
    assert harness.records_of("approval-request") == []


def test_hold_from_uncovered_rule_stays_plain(make_harness):
    harness = make_harness(policy=approvals_policy(rules=["value.session-total"]))

    with harness.gate.session(RENT) as session:
        with pytest.raises(Held) as caught:
            session.call("send_money", LARGE, Counter())

    assert not isinstance(caught.value, ApprovalRequired)
    assert harness.records_of("approval-request") == []


def test_repeated_hold_reuses_request(approving):
    with approving.gate.session(RENT) as session:
        first = hold(session)
        second = hold(session)

    assert second.request == first.request
    assert len(approving.records_of("approval-request")) == 1
    assert approving.records_of("decision")[-1]["approval"] == {
        "request": first.request, "approvals": []}


# -- approve, then run once --------------------------------------------------------


def test_approved_call_runs_once(approving):
    tool = Counter()
    with approving.gate.session(RENT) as session:
        held = hold(session, tool)
        signed = approve(approving, held.request)
        assert session.call("send_money", LARGE, tool) == "paid"

    assert tool.runs == 1
    approval, decision, outcome = approving.records()[-3:]
    assert approval["type"] == "approval"
    assert approval["approval"] == signed.to_json()["approval"]
    assert approval["signature"] == signed.to_json()["signature"]
    assert decision["verdict"] == "allow"
    assert decision["approval"] == {
        "request": held.request,
        "approvals": [{"id": approval["id"], "index": approving.ledger.size - 3}],
    }
    assert decision["sequence"]["fired"] == ["value.large-amount"]
    assert [r["rule"] for r in decision["reasons"]] == [
        "value.large-amount", "approval"]
    assert decision["reasons"][1]["text"] == (
        f"request {held.request} approved by 1 of 1 required: {ALICE.key_id}")
    assert outcome["decision"] == decision["id"]
    assert approving.gate.approval_store.request(held.request).status == "used"


def test_sealed_approval_signature_verifies(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)
        approve(approving, held.request)
        session.call("send_money", LARGE, Counter())

    record = approving.records_of("approval")[-1]
    signed = SignedApproval.from_json(
        {"approval": record["approval"], "signature": record["signature"]})
    assert ALICE.public.verify(
        base64.b64decode(record["signature"]),
        SIGNATURE_CONTEXT + jcs.canonical(record["approval"]))
    assert signed.body["arguments"] == approving.records_of(
        "approval-request")[-1]["arguments"]


def test_presented_request_id_runs(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)
        approve(approving, held.request)
        assert session.call("send_money", LARGE, Counter(),
                            approval=held.request) == "paid"


def test_guarded_function_matches_request(approving):
    @approving.gate.guard
    def send_money(recipient: str, amount: float) -> str:
        return "paid"

    with approving.gate.session(RENT):
        with pytest.raises(ApprovalRequired) as caught:
            send_money(IBAN, 9000)
        approve(approving, caught.value.request)
        assert send_money(IBAN, 9000) == "paid"


# -- replay -------------------------------------------------------------------------


def test_used_approval_not_replayed(approving):
    tool = Counter()
    with approving.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(approving, held.request)
        session.call("send_money", LARGE, tool)
        again = hold(session, tool)
        with pytest.raises(Denied) as presented:
            session.call("send_money", LARGE, tool, approval=held.request)

    assert tool.runs == 1
    assert again.request != held.request
    assert presented.value.reasons[-1].rule == "approval.used"
    assert presented.value.reasons[-1].text == (
        f"request {held.request} was already used by an earlier call; an approval "
        "is used once")


def test_stored_approval_resubmitted_rejected(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)
        signed = approve(approving, held.request)

        with pytest.raises(ApprovalError, match="already stored; each approval is "
                           "used once"):
            approving.gate.approval_store.insert_approval(
                nonce=signed.nonce, request_id=held.request,
                approver=ALICE.key_id, verdict="approve",
                signed=jcs.canonical(signed.to_json()), now=approving.clock())


def test_approval_rebound_to_other_request_rejected(approving):
    with approving.gate.session(RENT) as session:
        first = hold(session)
        signed = approve(approving, first.request)
        session.call("send_money", LARGE, Counter())
        second = hold(session)

        with pytest.raises(ApprovalError, match="the signature does not verify"):
            submit_approval(approving.gate.approval_store,
                            _rebound(signed, second.request), approving.clock())


def test_approval_filed_under_other_request_not_counted(approving):
    tool = Counter()
    with approving.gate.session(RENT) as session:
        first = hold(session, tool)
        signed = approve(approving, first.request)
        session.call("send_money", LARGE, tool)
        second = hold(session, tool)
        # A tampered store files the used approval under the new request.
        approving.gate.approval_store.insert_approval(
            nonce="0" * 32, request_id=second.request, approver=ALICE.key_id,
            verdict="approve", signed=jcs.canonical(signed.to_json()),
            now=approving.clock())
        again = hold(session, tool)

    assert tool.runs == 1
    rejected = [r.text for r in again.reasons if r.rule == "approval.rejected"]
    assert rejected == [
        f"approval stored under nonce {'0' * 32} carries nonce {signed.nonce}"]


def _rebound(signed: SignedApproval, request_id: str) -> SignedApproval:
    """Return the approval with another request id and its old signature."""
    return SignedApproval({**signed.body, "request": request_id}, signed.signature)


def test_forged_approval_rejected(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)
        signed = sign_approval(ALICE, approving.gate.approval_store.request(
            held.request), "approve", approving.clock())
        forged = {**signed.to_json(),
                  "approval": {**signed.body, "expiry": "2027-01-01T00:00:00.000000Z"}}

        with pytest.raises(ApprovalError, match="the signature does not verify"):
            SignedApproval.from_json(forged)


# -- changed arguments ----------------------------------------------------------------


def test_changed_arguments_need_new_approval(approving):
    tool = Counter()
    changed = {"recipient": IBAN, "amount": 9500}
    with approving.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(approving, held.request)
        other = hold(session, tool, changed)
        with pytest.raises(Denied) as presented:
            session.call("send_money", changed, tool, approval=held.request)

    assert tool.runs == 0
    assert other.request != held.request
    reason = presented.value.reasons[-1]
    assert reason.rule == "approval.mismatch"
    assert reason.text == (
        f"request {held.request} was opened for another call (tool, arguments or "
        "session differ); a changed call needs a new approval")
    record = verify(presented.value.receipt).record
    assert record["approval"] == {"request": held.request, "approvals": []}


def test_approval_from_other_session_not_used(approving):
    tool = Counter()
    with approving.gate.session(RENT) as first:
        held = hold(first, tool)
        approve(approving, held.request)
    with approving.gate.session(RENT) as second:
        other = hold(second, tool)

    assert tool.runs == 0
    assert other.request != held.request


# -- expiry ---------------------------------------------------------------------------


def test_expired_approval_rejected(approving):
    tool = Counter()
    with approving.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(approving, held.request,
                expiry=approving.clock() + timedelta(seconds=60))
        approving.clock.advance(60)
        again = hold(session, tool)

    assert tool.runs == 0
    assert again.request == held.request
    rejected = [r for r in again.reasons if r.rule == "approval.rejected"]
    assert [r.text for r in rejected] == [
        f"approval by {ALICE.key_id} expired at 2026-12-04T10:01:00.000000Z"]
    assert approving.records_of("approval") == []


def test_expired_request_rejected(approving):
    tool = Counter()
    with approving.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(approving, held.request)
        approving.clock.advance(600)
        with pytest.raises(Denied) as presented:
            session.call("send_money", LARGE, tool, approval=held.request)
        fresh = hold(session, tool)

    assert tool.runs == 0
    assert presented.value.reasons[-1].rule == "approval.expired"
    assert fresh.request != held.request
    assert approving.gate.approval_store.request(held.request).status == "expired"


def test_expired_approval_not_stored(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)
        request = approving.gate.approval_store.request(held.request)
        signed = sign_approval(ALICE, request, "approve", approving.clock(),
                               approving.clock() + timedelta(seconds=1))
        approving.clock.advance(1)

        with pytest.raises(ApprovalError, match=r"expired at "
                           r"2026-12-04T10:00:01\.000000Z"):
            submit_approval(approving.gate.approval_store, signed,
                            approving.clock())


# -- quorum and denial -----------------------------------------------------------------


def test_quorum_counts_distinct_keys(quorum_two):
    tool = Counter()
    with quorum_two.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(quorum_two, held.request, ALICE)
        approve(quorum_two, held.request, ALICE)
        again = hold(session, tool)

    assert tool.runs == 0
    assert again.request == held.request
    assert [r.text for r in again.reasons if r.rule == "approval.rejected"] == [
        f"approval by {ALICE.key_id} counted once; the quorum counts distinct keys"]


def test_quorum_of_two_runs(quorum_two):
    tool = Counter()
    with quorum_two.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(quorum_two, held.request, ALICE)
        hold(session, tool)
        approve(quorum_two, held.request, BOB)
        assert session.call("send_money", LARGE, tool) == "paid"

    assert tool.runs == 1
    decision = quorum_two.records_of("decision")[-1]
    assert len(decision["approval"]["approvals"]) == 2
    assert decision["reasons"][-1]["text"] == (
        f"request {held.request} approved by 2 of 2 required: {ALICE.key_id}, "
        f"{BOB.key_id}")


def test_one_denial_denies(quorum_two):
    tool = Counter()
    with quorum_two.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(quorum_two, held.request, ALICE)
        approve(quorum_two, held.request, BOB, verdict="deny")
        with pytest.raises(Denied) as caught:
            session.call("send_money", LARGE, tool)

    assert tool.runs == 0
    assert caught.value.reasons[-1].rule == "approval.denied"
    assert caught.value.reasons[-1].text == (
        f"request {held.request} denied by {BOB.key_id}")
    record = verify(caught.value.receipt).record
    assert record["verdict"] == "deny"
    assert len(record["approval"]["approvals"]) == 2
    assert quorum_two.gate.approval_store.request(held.request).status == "denied"


def test_stranger_cannot_approve(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)

        with pytest.raises(ApprovalError, match=rf"approval by "
                           rf"{re.escape(MALLORY.key_id)}: the key is not one of the "
                           "policy's approvers"):
            approve(approving, held.request, MALLORY)


def test_tally_rejects_stranger_in_store(approving):
    with approving.gate.session(RENT) as session:
        held = hold(session)
        store = approving.gate.approval_store
        request = store.request(held.request)
        signed = sign_approval(MALLORY, request, "approve", approving.clock())
        store.insert_approval(nonce=signed.nonce, request_id=request.id,
                              approver=MALLORY.key_id, verdict="approve",
                              signed=jcs.canonical(signed.to_json()),
                              now=approving.clock())

        counted = tally(request, store.approvals(request.id),
                        [ALICE.verifier_key], 1, approving.clock())

    assert not counted.reached
    assert counted.rejected == (
        f"approval by {MALLORY.key_id}: the key is not one of the policy's "
        "approvers",)


# -- waiting ---------------------------------------------------------------------------


def test_wait_timeout_denies(make_harness):
    harness = make_harness(policy=approvals_policy(wait_seconds=0.2,
                                                   poll_seconds=0.05))
    tool = Counter()
    with harness.gate.session(RENT) as session:
        started = time.monotonic()
        with pytest.raises(Denied) as caught:
            session.call("send_money", LARGE, tool)
        waited = time.monotonic() - started

    assert tool.runs == 0
    assert waited >= 0.2
    request = harness.records_of("approval-request")[-1]
    assert [r.rule for r in caught.value.reasons] == [
        "value.large-amount", "approval.timeout"]
    assert caught.value.reasons[-1].text == (
        f"request {request['id']} timed out before its quorum was reached")
    record = verify(caught.value.receipt).record
    assert record["verdict"] == "deny"
    assert record["approval"] == {"request": request["id"], "approvals": []}
    assert harness.gate.approval_store.request(request["id"]).status == "timed_out"


def test_wait_returns_when_approved(approving):
    tool = Counter()
    store = approving.gate.approval_store

    def approver() -> None:
        for _ in range(200):
            pending = store.requests()
            if pending:
                signed = sign_approval(ALICE, pending[0], "approve",
                                       approving.clock())
                submit_approval(store, signed, approving.clock())
                return
            time.sleep(0.01)

    thread = threading.Thread(target=approver)
    thread.start()
    with approving.gate.session(RENT, approval_wait=10) as session:
        assert session.call("send_money", LARGE, tool) == "paid"
    thread.join()

    assert tool.runs == 1
    assert approving.records_of("decision")[-1]["verdict"] == "allow"


def test_session_rejects_bad_wait(approving):
    with pytest.raises(ConfigError, match=r"approval_wait must lie in \[0, 86400\] "
                       r"seconds, got -1"):
        approving.gate.session(RENT, approval_wait=-1)


def test_concurrent_retries_use_approval_once(approving):
    tool = Counter()
    results: list = []
    lock = threading.Lock()
    with approving.gate.session(RENT) as session:
        held = hold(session, tool)
        approve(approving, held.request)
        start = threading.Barrier(8)

        def worker() -> None:
            with session:
                start.wait(timeout=30)
                try:
                    outcome: object = session.call("send_money", LARGE, tool)
                except ApprovalRequired as err:
                    outcome = err.request
                with lock:
                    results.append(outcome)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert tool.runs == 1
    assert results.count("paid") == 1
    reopened = {r for r in results if r != "paid"}
    assert len(reopened) == 1
    assert held.request not in reopened


def test_new_hold_reason_opens_new_request(approving):
    with approving.gate.session(RENT) as session:
        first = hold(session)
        session.call("send_money", {"recipient": IBAN, "amount": 1500}, Counter())
        second = hold(session)

    assert second.request != first.request
    assert [r.rule for r in second.reasons] == [
        "value.large-amount", "value.session-total"]
    request = approving.records_of("approval-request")[-1]
    assert request["rules"] == ["value.large-amount", "value.session-total"]
    assert "approval" not in approving.records_of("decision")[-1]


def test_alignment_hold_approvable(make_harness):
    harness = make_harness(policy=approvals_policy(rules=["alignment"]),
                           scorer=FixedScorer(fixed(0.3, ["looks odd"])))
    tool = Counter()
    with harness.gate.session("check my balance") as session:
        with pytest.raises(ApprovalRequired) as caught:
            session.call("get_balance", {}, tool)
        approve(harness, caught.value.request)
        session.call("get_balance", {}, tool)

    assert tool.runs == 1
    assert harness.records_of("approval-request")[-1]["rules"] == ["alignment"]
    assert harness.records_of("decision")[-1]["verdict"] == "allow"
