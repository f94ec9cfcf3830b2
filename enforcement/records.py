"""The records the gate seals: policy, delegation, decision, outcome, and the
approval requests and approvals of held calls. Revocation records are built
in ``enforcement.revocation``, which signs them.

Their fields are defined in ``specs/records.md``. Every record is sealed as
its RFC 8785 bytes; the leaf hash of a sealed record is
``SHA-256(0x00 || bytes)``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from enforcement.alignment import AlignmentResult
from enforcement.errors import Reason
from enforcement.timeutil import format_time

RECORD_VERSION = 1


# One letter per record type; where two types share a first letter, one takes
# another letter of its name.
_ID_PREFIX = {
    "key": "k", "policy": "p", "delegation": "g", "decision": "d", "outcome": "o",
    "approval-request": "q", "approval": "a", "revocation": "r",
}


def new_id(kind: str) -> str:
    """Return a record id: the type's letter, '-', 32 hex digits."""
    return f"{_ID_PREFIX[kind]}-{secrets.token_hex(16)}"


def leaf_hash(entry: bytes) -> str:
    return hashlib.sha256(b"\x00" + entry).hexdigest()


def _header(kind: str, record_id: str, now: datetime) -> dict[str, Any]:
    return {"type": kind, "version": RECORD_VERSION, "id": record_id,
            "time": format_time(now)}


def policy_record(document: dict, policy_hash: str, now: datetime) -> dict[str, Any]:
    record = _header("policy", new_id("policy"), now)
    record.update({"hash": policy_hash, "document": document})
    return record


def delegation_record(certificate: dict, certificate_hash: str,
                      now: datetime) -> dict[str, Any]:
    record = _header("delegation", new_id("delegation"), now)
    record.update({"hash": certificate_hash, "certificate": certificate})
    return record


def decision_record(
    *,
    record_id: str,
    now: datetime,
    agent: str,
    session: str,
    tool: str,
    commitments: dict[str, str],
    chain_hashes: list[str],
    root: str,
    scope: dict,
    alignment: dict,
    sequence: dict,
    policy_hash: str,
    verdict: str,
    reasons: list[Reason],
    approval: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record = _header("decision", record_id, now)
    record.update({
        "agent": agent,
        "session": session,
        "tool": tool,
        "arguments": commitments,
        "delegation": {"chain": chain_hashes, "root": root, "scope": scope},
        "alignment": alignment,
        "sequence": sequence,
        "policy": policy_hash,
        "verdict": verdict,
        "reasons": [r.to_json() for r in reasons],
    })
    if approval is not None:
        record["approval"] = approval
    return record


def approval_request_record(
    *,
    record_id: str,
    now: datetime,
    decision_id: str,
    decision_index: int,
    tool: str,
    arguments_commitment: str,
    agent: str,
    session: str,
    rules: list[str],
    quorum: int,
    expiry: datetime,
    policy_hash: str,
) -> dict[str, Any]:
    record = _header("approval-request", record_id, now)
    record.update({
        "decision": decision_id,
        "decision_index": decision_index,
        "tool": tool,
        "arguments": arguments_commitment,
        "agent": agent,
        "session": session,
        "rules": rules,
        "quorum": quorum,
        "expiry": format_time(expiry),
        "policy": policy_hash,
    })
    return record


def approval_record(record_id: str, now: datetime,
                    signed: dict[str, Any]) -> dict[str, Any]:
    """Wrap a signed approval (``{"approval": ..., "signature": ...}``)."""
    record = _header("approval", record_id, now)
    record.update(signed)
    return record


def outcome_record(
    *,
    record_id: str,
    now: datetime,
    session: str,
    decision_id: str,
    decision_index: int,
    status: str,
    error: str | None,
    duration_ms: float,
    result_commitment: str,
    previous: str,
) -> dict[str, Any]:
    record = _header("outcome", record_id, now)
    record.update({
        "session": session,
        "decision": decision_id,
        "decision_index": decision_index,
        "status": status,
        "duration_ms": round(duration_ms, 3),
        "result": result_commitment,
        "previous": previous,
    })
    if error is not None:
        record["error"] = error
    return record


@dataclass(frozen=True)
class Decision:
    """A sealed decision: the verdict, its reasons and its verified receipt."""

    id: str
    tool: str
    verdict: str
    reasons: tuple[Reason, ...]
    record: dict[str, Any]
    entry: bytes
    receipt: Any
    index: int
    leaf_hash: str
    alignment: AlignmentResult
    # The approval request a hold opened or waits on, when approvals apply.
    request: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"
