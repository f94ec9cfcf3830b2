"""The audit of approval requests and the signed approvals sealed for them.

An approval request must follow the hold decision it was opened for and
cite the policy in force, whose ``approvals.quorum`` it repeats.

An approval must be signed by its approver over ``agentgate-approval-v1``, a
newline and the JCS of its body. It must repeat the binding fields of an
earlier request and name an approver that the request's policy lists. It
may not expire after the request, and its nonce must be new. How decisions
use approvals is checked in ``verifier.audit_decisions``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

from verifier._encoding import decode_base64, shorten
from verifier._record_fields import require_hex64, require_members
from verifier._time import parse_time
from verifier.errors import MalformedInput
from verifier.jcs import canonicalize
from verifier.note import VerifierKey, parse_verifier_key

if TYPE_CHECKING:
    from verifier.audit_records import RecordAuditor

_HEX32 = re.compile(r"[0-9a-f]{32}")
_APPROVAL_CONTEXT = b"agentgate-approval-v1\n"
_APPROVAL_BINDING = ("decision", "tool", "arguments", "agent", "session")
_APPROVAL_FIELDS = frozenset(
    {
        "type",
        "version",
        "request",
        "nonce",
        "expiry",
        "verdict",
        "approver",
        *_APPROVAL_BINDING,
    }
)


def check_request(auditor: RecordAuditor, index: int, record: dict, leaf: str) -> None:
    """Check an approval-request record against its decision and policy."""
    require_members(
        record,
        {
            "decision",
            "decision_index",
            "tool",
            "arguments",
            "agent",
            "session",
            "rules",
            "quorum",
            "expiry",
            "policy",
        },
    )
    require_hex64(record["arguments"], "arguments")
    expiry = parse_time(record["expiry"], "expiry")
    rules = record["rules"]
    if (
        not isinstance(rules, list)
        or rules != sorted(set(rules))
        or not all(isinstance(rule, str) for rule in rules)
    ):
        raise MalformedInput("rules must be a sorted list of distinct rule ids")
    quorum = record["quorum"]
    if not isinstance(quorum, int) or isinstance(quorum, bool) or quorum < 1:
        raise MalformedInput(f"quorum must be an integer >= 1, got {shorten(quorum)}")

    decision = auditor.decisions.get(record["decision_index"])
    if decision is None or decision.id != record["decision"]:
        auditor.report(
            "approval-request.decision",
            index,
            f"approval request {index} names decision {record['decision']} "
            f"at index {record['decision_index']}, which is not there",
        )
    elif decision.verdict != "hold" or any(
        getattr(decision, name) != record[name]
        for name in ("session", "tool", "agent", "policy")
    ):
        auditor.report(
            "approval-request.decision",
            index,
            f"approval request {index} does not match decision "
            f"{record['decision_index']}: it must be a hold of the same "
            "session, tool, agent and policy",
        )
    policy = auditor.policies.get(record["policy"])
    approvals = (policy[1].get("approvals") if policy else None) or {}
    if policy is None:
        auditor.report(
            "approval-request.policy",
            index,
            f"approval request {index} cites policy {record['policy']}, "
            "which no earlier policy record has",
        )
    elif approvals.get("quorum", 1) != quorum:
        auditor.report(
            "approval-request.quorum",
            index,
            f"approval request {index} asks for quorum {quorum}, but its "
            f"policy sets {approvals.get('quorum', 1)}",
        )
    if expiry <= parse_time(record["time"], "time"):
        auditor.report(
            "approval-request.expiry",
            index,
            f"approval request {index} expires at {record['expiry']}, "
            "before it was sealed",
        )
    auditor.requests[record["id"]] = (index, record)


def check_approval(auditor: RecordAuditor, index: int, record: dict, leaf: str) -> None:
    """Check an approval's signature, its request, its approver and its nonce."""
    # 1. Shape of the record and of the signed body.
    require_members(record, {"approval", "signature"})
    body = record["approval"]
    if not isinstance(body, dict) or set(body) != _APPROVAL_FIELDS:
        raise MalformedInput(
            f"approval must have the members {sorted(_APPROVAL_FIELDS)}"
        )
    if body["type"] != "agentgate.approval" or body["version"] != 1:
        raise MalformedInput("approval type/version must be agentgate.approval/1")
    if body["verdict"] not in ("approve", "deny"):
        raise MalformedInput(
            f"verdict must be approve or deny, got {body['verdict']!r}"
        )
    if not isinstance(body["nonce"], str) or not _HEX32.fullmatch(body["nonce"]):
        raise MalformedInput("nonce must be 32 lowercase hex digits")
    expiry = parse_time(body["expiry"], "approval expiry")
    approver = parse_verifier_key(body["approver"])
    signature = decode_base64(record["signature"], "approval signature")
    approver_id = f"{approver.name}+{approver.key_id.hex()}"

    # 2. Signature, request binding, expiry, approver and nonce.
    problems = []
    if not approver.verify(_APPROVAL_CONTEXT + canonicalize(body), signature):
        problems.append(
            (
                "approval.signature",
                f"the signature does not verify under approver {approver_id}",
            )
        )
    found = auditor.requests.get(body["request"])
    if found is None:
        problems.append(
            (
                "approval.request",
                f"it names request {body['request']}, which no earlier "
                "approval-request record has",
            )
        )
    else:
        problems.extend(_request_problems(auditor, body, expiry, approver, found))
    if body["nonce"] in auditor.nonces:
        problems.append(
            (
                "approval.replayed",
                f"nonce {body['nonce']} was sealed in an earlier approval",
            )
        )
    auditor.nonces.add(body["nonce"])

    # 3. Report, and keep what decisions check.
    for kind, text in problems:
        auditor.report(kind, index, f"approval {index}: {text}")
    auditor.remember_approval(
        index,
        record_id=record["id"],
        request=body["request"],
        verdict=body["verdict"],
        approver=approver.public_key,
        expiry=expiry,
        valid=not problems,
    )


def _request_problems(
    auditor: RecordAuditor,
    body: dict,
    expiry: datetime,
    approver: VerifierKey,
    found: tuple[int, dict],
) -> list[tuple[str, str]]:
    """Return how an approval disagrees with the request it names."""
    request_index, request = found
    problems = []
    wrong = [name for name in _APPROVAL_BINDING if body[name] != request[name]]
    if wrong:
        problems.append(
            (
                "approval.binding",
                f"its {', '.join(wrong)} differ from request {request_index}'s",
            )
        )
    if expiry > parse_time(request["expiry"], "request expiry"):
        problems.append(
            (
                "approval.expiry",
                f"it expires at {body['expiry']}, after its request "
                f"({request['expiry']})",
            )
        )
    policy = auditor.policies.get(request["policy"])
    approvals = (policy[1].get("approvals") or {}) if policy else {}
    if approver.text not in approvals.get("approvers", []):
        problems.append(
            (
                "approval.approver",
                f"approver {approver.name}+{approver.key_id.hex()} is not "
                "listed in the policy",
            )
        )
    return problems
