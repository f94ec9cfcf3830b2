"""Record checks of the audit: a real gate's log, rewritten and re-signed with the
log's key one record at a time, so that only the evidence can tell. Each test
names the finding kind and the index it must be found at.

Leaves of the gate log: 0 key, 1 policy, 2 and 3 delegations (agent, sub-agent),
4 allow read_balance, 5 outcome, 6 allow send_money 50, 7 outcome, 8 hold
send_money 9000, 9 approval request, 10 and 11 approvals, 12 allow lifted by
them, 13 outcome, 14 allow fetch, 15 outcome, 16 sub-agent allow, 17 outcome,
18 revocation, 19 deny (revoked), 20 deny (alignment), 21 deny (scope).
"""

import base64
import hashlib
import json

import pytest
import rfc8785

from enforcement.approvals import SIGNATURE_CONTEXT as APPROVAL_CONTEXT
from tests.verifier.gate_log import (
    AGENT_SCOPE,
    ALICE,
    BOB,
    RESIGNER,
    build_gate_log,
    resign,
)
from tests.verifier.tiles_writer import write_tiles
from verifier.audit import audit_log
from verifier.note import parse_verifier_key

KEY = parse_verifier_key(RESIGNER.verifier_key)


@pytest.fixture(scope="module")
def gate_log(tmp_path_factory):
    return build_gate_log(tmp_path_factory.mktemp("gate"))


@pytest.fixture
def rewrite(tmp_path, gate_log):
    """Return a function that edits records, re-signs the log and audits it."""

    def run(*edits, append=()):
        entries = list(gate_log.entries)
        for index, change in edits:
            record = json.loads(entries[index])
            change(record)
            entries[index] = rfc8785.dumps(record)
        for record in append:
            entries.append(
                rfc8785.dumps(record) if isinstance(record, dict) else record
            )
        directory = tmp_path / f"log-{len(list(tmp_path.iterdir()))}"
        write_tiles(directory, entries, resign(entries))
        return audit_log(str(directory), [KEY], anchors=[gate_log.principal])

    return run


def record(gate_log, index):
    return json.loads(gate_log.entries[index])


def setter(path, value):
    def change(target):
        for name in path[:-1]:
            target = target[name]
        target[path[-1]] = value

    return change


def message(result, kind):
    return next(f.message for f in result.findings if f.kind == kind)


def test_revoked_chain_allowed(rewrite):
    result = rewrite((19, setter(["verdict"], "allow")))
    assert result.first_bad()["decision.chain"] == 19
    assert "chain fails chain.revoked: link 1" in message(result, "decision.chain")
    assert "revoked by record 18" in message(result, "decision.chain")


def test_low_alignment_allowed(rewrite):
    result = rewrite((20, setter(["verdict"], "allow")))
    assert result.first_bad()["decision.alignment"] == 20
    assert "score 0.05 below the deny threshold 0.15" in message(
        result, "decision.alignment"
    )


def test_tool_outside_scope_allowed(rewrite):
    result = rewrite((21, setter(["verdict"], "allow")))
    assert result.first_bad()["decision.scope"] == 21
    assert "'delete_everything', which no capability" in message(
        result, "decision.scope"
    )


def test_recorded_scope_wider_than_chain(rewrite):
    result = rewrite((16, setter(["delegation", "scope"], AGENT_SCOPE)))
    assert result.first_bad()["decision.scope"] == 16
    assert "the chain does not grant" in message(result, "decision.scope")


def test_unknown_certificate(rewrite):
    result = rewrite((4, setter(["delegation", "chain"], ["ab" * 32])))
    assert result.first_bad()["decision.chain"] == 4
    assert "chain.unknown" in message(result, "decision.chain")


def test_recorded_agent_differs(rewrite):
    result = rewrite((4, setter(["agent"], "someone+00000000")))
    assert result.first_bad()["decision.delegation"] == 4


def test_quorum_not_reached(rewrite, gate_log):
    approvals = record(gate_log, 12)["approval"]["approvals"][:1]
    result = rewrite((12, setter(["approval", "approvals"], approvals)))
    assert result.first_bad()["approval.quorum"] == 12
    assert "1 valid approvals from distinct keys; request 9 needs 2" in message(
        result, "approval.quorum"
    )


def test_same_approval_cited_twice(rewrite, gate_log):
    first = record(gate_log, 12)["approval"]["approvals"][0]
    result = rewrite((12, setter(["approval", "approvals"], [first, first])))
    assert result.first_bad()["approval.quorum"] == 12


def test_approval_signature_broken(rewrite):
    result = rewrite((10, setter(["approval", "nonce"], "0" * 32)))
    assert result.first_bad()["approval.signature"] == 10
    assert result.first_bad()["decision.approval"] == 12


def test_approval_bound_to_other_call(rewrite):
    def other_tool(target):
        body = target["approval"]
        body["tool"] = "read_balance"
        approver = next(a for a in (ALICE, BOB) if a.verifier_key == body["approver"])
        signature = approver.sign(APPROVAL_CONTEXT + rfc8785.dumps(body))
        target["signature"] = base64.b64encode(signature).decode()

    result = rewrite((11, other_tool))
    assert result.first_bad()["approval.binding"] == 11
    assert "its tool differ from request 9's" in message(result, "approval.binding")
    assert "approval.signature" not in result.first_bad()


def test_request_used_twice(rewrite, gate_log):
    again = record(gate_log, 12)
    again["id"] = "d-" + "7" * 32
    result = rewrite(append=[again])
    assert result.first_bad()["approval.reused"] == 22
    assert "decision 12 used it already" in message(result, "approval.reused")


def test_request_expired_before_use(rewrite, gate_log):
    request_time = record(gate_log, 9)["time"]
    expiry = request_time.replace(".000000Z", ".500000Z")
    result = rewrite((9, setter(["expiry"], expiry)))
    assert result.first_bad()["approval.expired"] == 12
    assert result.first_bad()["approval.expiry"] == 10


def test_request_quorum_differs_from_policy(rewrite):
    result = rewrite((9, setter(["quorum"], 1)))
    assert result.first_bad()["approval-request.quorum"] == 9


def test_request_for_allowed_decision(rewrite):
    result = rewrite((9, setter(["decision_index"], 6)))
    assert result.first_bad()["approval-request.decision"] == 9


def test_approval_reason_without_request(rewrite, gate_log):
    reasons = [{"rule": "approval", "text": "lifted"}]
    result = rewrite((6, setter(["reasons"], reasons)))
    assert result.first_bad()["decision.approval"] == 6


def test_unknown_policy(rewrite):
    result = rewrite((4, setter(["policy"], "cd" * 32)))
    assert result.first_bad()["decision.policy"] == 4


def test_policy_document_changed(rewrite):
    result = rewrite((1, setter(["document", "name"], "lenient")))
    assert result.first_bad()["policy.hash"] == 1
    assert result.first_bad()["decision.policy"] == 4


def test_thresholds_differ_from_policy(rewrite):
    result = rewrite((6, setter(["alignment", "thresholds", "hold"], 0.4)))
    assert result.first_bad()["decision.alignment"] == 6
    assert "sets {'hold': 0.5, 'deny': 0.15}" in message(result, "decision.alignment")


def test_session_digest_broken(rewrite):
    result = rewrite((6, setter(["sequence", "before"], "ef" * 32)))
    assert result.first_bad()["session.digest"] == 6


def test_outcome_of_denied_call(rewrite, gate_log):
    outcome = record(gate_log, 17)
    outcome.update(
        id="o-" + "1" * 32,
        decision=record(gate_log, 21)["id"],
        decision_index=21,
        session=record(gate_log, 21)["session"],
        previous=gate_log_leaf(gate_log, 21),
    )
    result = rewrite(append=[outcome])
    assert result.first_bad()["outcome.decision"] == 22
    assert "whose verdict is deny, not allow" in message(result, "outcome.decision")


def test_second_outcome(rewrite, gate_log):
    outcome = record(gate_log, 5)
    outcome["id"] = "o-" + "2" * 32
    result = rewrite(append=[outcome])
    assert result.first_bad()["outcome.duplicate"] == 22


def test_delegation_hash_mismatch(rewrite):
    result = rewrite((3, setter(["hash"], "12" * 32)))
    assert result.first_bad()["delegation.hash"] == 3
    assert result.first_bad()["decision.chain"] == 16


def test_revocation_signature_broken(rewrite):
    result = rewrite((18, setter(["reason"], "forged")))
    assert result.first_bad()["revocation.signature"] == 18
    assert "decision.chain" not in result.first_bad()


def test_log_key_retired(rewrite):
    result = rewrite((0, setter(["status"], "retired")))
    assert result.first_bad()["key.retired"] == 0
    assert result.first_bad()["key.inactive"] is None


def test_unknown_type_and_bad_entries(rewrite, gate_log):
    duplicate_id = record(gate_log, 5)
    result = rewrite(
        append=[
            {
                "type": "mystery",
                "version": 1,
                "id": "m-" + "3" * 32,
                "time": "2026-12-04T10:00:00.000000Z",
            },
            b'{"b":1, "a":2}',
            duplicate_id,
        ]
    )
    assert result.first_bad()["record.type"] == 22
    assert result.first_bad()["record.format"] == 23
    assert "not in RFC 8785 canonical form" in message(result, "record.format")
    assert "was used by an earlier record" in result.findings[-1].message


def gate_log_leaf(gate_log, index):
    return hashlib.sha256(b"\x00" + gate_log.entries[index]).hexdigest()
