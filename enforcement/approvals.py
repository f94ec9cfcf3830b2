"""Human approval of held calls: signed approvals, their checks and the tally.

When a policy names approvers, a held call opens an approval request: the
gate seals an ``approval-request`` record and keeps a pending row in its
private store (the vault's SQLite file). Approvers sign an approval or a
denial with their Ed25519 keys, through ``agentgate approvals approve|deny``
or the HTTP routes. The signed object binds the request, the decision, the
tool, the salted hash of the arguments, the agent, the session, a nonce and
an expiry. The same call in the same session then runs once a quorum of
distinct approver keys has approved, and a denial by any approver denies it.
The gate seals each approval it counts and cites it in the decision
(``enforcement.approval_desk``). The formats are in ``specs/records.md``.

The store is not trusted: the gate checks every stored approval again (its
signature, its key against the policy, its binding, its expiry) before it
counts it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from enforcement import jcs
from enforcement.approvals_store import ApprovalRequest, ApprovalStore, StoredApproval
from enforcement.canonical import decode_base64
from enforcement.errors import ApprovalError, GateError
from enforcement.identity import Identity, PublicIdentity, parse_verifier_key
from enforcement.timeutil import format_time, parse_time

logger = logging.getLogger(__name__)

APPROVAL_TYPE = "agentgate.approval"
SIGNATURE_CONTEXT = b"agentgate-approval-v1\n"
VERDICTS = ("approve", "deny")
# The request fields a signed approval repeats, so that it is valid for
# exactly one call.
BINDING_FIELDS = ("request", "decision", "tool", "arguments", "agent", "session")
_BODY_FIELDS = frozenset(
    {"type", "version", "nonce", "expiry", "verdict", "approver", *BINDING_FIELDS}
)

@dataclass(frozen=True)
class SignedApproval:
    """An approver's signed approval or denial of one request."""

    body: Mapping[str, Any]
    signature: bytes

    @property
    def nonce(self) -> str:
        return self.body["nonce"]

    @property
    def verdict(self) -> str:
        return self.body["verdict"]

    @property
    def approver(self) -> PublicIdentity:
        return parse_verifier_key(self.body["approver"])

    @property
    def expiry(self) -> datetime:
        return parse_time(self.body["expiry"], "approval expiry")

    def to_json(self) -> dict[str, Any]:
        return {
            "approval": dict(self.body),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, raw: Any) -> SignedApproval:
        """Parse a signed approval strictly; raise ``ApprovalError``.

        The signature is checked here too, so a parsed approval is always
        one its approver key signed.
        """
        if not isinstance(raw, Mapping) or set(raw) != {"approval", "signature"}:
            got = sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__
            raise ApprovalError(
                f"expected an object with members 'approval' and 'signature', "
                f"got {got}"
            )
        body = raw["approval"]
        _check_body(body)
        try:
            signature = decode_base64(raw["signature"])
        except (binascii.Error, ValueError, TypeError) as err:
            raise ApprovalError(f"approval signature is not base64: {err}") from err
        approval = cls(dict(body), signature)
        if not approval.approver.verify(signature, signed_bytes(body)):
            raise ApprovalError(
                f"approval {body['nonce']}: the signature does not verify with "
                f"key {approval.approver.key_id}"
            )
        return approval

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedApproval:
        try:
            return cls.from_json(jcs.parse_strict(data))
        except GateError as err:
            if isinstance(err, ApprovalError):
                raise
            raise ApprovalError(f"stored approval is not valid JSON: {err}") from err


def signed_bytes(body: Mapping[str, Any]) -> bytes:
    """Return the bytes an approver signs: the context prefix, then JCS(body)."""
    return SIGNATURE_CONTEXT + jcs.canonical(dict(body))


def _check_body(body: Any) -> None:
    if not isinstance(body, Mapping) or set(body) != _BODY_FIELDS:
        got = sorted(body) if isinstance(body, Mapping) else type(body).__name__
        raise ApprovalError(
            f"approval body: expected members {sorted(_BODY_FIELDS)}, got {got}"
        )
    if body["type"] != APPROVAL_TYPE or body["version"] != 1:
        raise ApprovalError(
            f"approval body: expected type {APPROVAL_TYPE!r} version 1, got "
            f"{body['type']!r} version {body['version']!r}"
        )
    if body["verdict"] not in VERDICTS:
        raise ApprovalError(
            f"approval verdict must be 'approve' or 'deny', got {body['verdict']!r}"
        )
    nonce = body["nonce"]
    if not (isinstance(nonce, str) and len(nonce) == 32
            and all(c in "0123456789abcdef" for c in nonce)):
        raise ApprovalError(f"approval nonce must be 32 lowercase hex digits, "
                            f"got {nonce!r}")
    for name in BINDING_FIELDS:
        if not isinstance(body[name], str):
            raise ApprovalError(f"approval {name} must be a string, got "
                                f"{body[name]!r}")
    try:
        parse_time(body["expiry"], "approval expiry")
        parse_verifier_key(body["approver"])
    except (GateError, TypeError) as err:
        raise ApprovalError(f"approval body: {err}") from err


def sign_approval(
    identity: Identity,
    request: ApprovalRequest,
    verdict: str,
    now: datetime,
    expiry: datetime | None = None,
) -> SignedApproval:
    """Sign an approval or denial of ``request``, valid until ``expiry``.

    ``expiry`` defaults to the request's own expiry and may not exceed it.
    """
    if verdict not in VERDICTS:
        raise ApprovalError(f"verdict must be 'approve' or 'deny', got {verdict!r}")
    expiry = expiry or request.expiry
    if expiry > request.expiry or expiry <= now:
        raise ApprovalError(
            f"approval expiry {format_time(expiry)} must lie after now "
            f"({format_time(now)}) and not after the request's expiry "
            f"{format_time(request.expiry)}"
        )
    body = {
        "type": APPROVAL_TYPE,
        "version": 1,
        **request.binding(),
        "nonce": secrets.token_hex(16),
        "expiry": format_time(expiry),
        "verdict": verdict,
        "approver": identity.verifier_key,
    }
    return SignedApproval(body, identity.sign(signed_bytes(body)))


def check_approval(approval: SignedApproval, request: ApprovalRequest,
                   approvers: tuple[str, ...] | list[str], now: datetime) -> None:
    """Raise ``ApprovalError`` unless ``approval`` counts for ``request`` now:
    its signature, its key among ``approvers``, its binding to the request,
    and both expiries."""
    if not approval.approver.verify(approval.signature, signed_bytes(approval.body)):
        raise ApprovalError(
            f"approval {approval.nonce}: the signature does not verify with key "
            f"{approval.approver.key_id}"
        )
    key = approval.body["approver"]
    if key not in approvers:
        raise ApprovalError(
            f"approval by {approval.approver.key_id}: the key is not one of the "
            "policy's approvers"
        )
    for name, expected in request.binding().items():
        if not hmac.compare_digest(str(approval.body[name]), expected):
            raise ApprovalError(
                f"approval by {approval.approver.key_id} is for {name} "
                f"{approval.body[name]!r}, but the request has {expected!r}; a "
                "changed call needs a new approval"
            )
    if approval.expiry <= now:
        raise ApprovalError(
            f"approval by {approval.approver.key_id} expired at "
            f"{approval.body['expiry']}"
        )
    if request.expiry <= now:
        raise ApprovalError(
            f"request {request.id} expired at {format_time(request.expiry)}"
        )


@dataclass(frozen=True)
class Tally:
    """The approvals of one request that count now, and those that do not."""

    approved_by: tuple[str, ...]
    denied_by: tuple[str, ...]
    counted: tuple[tuple[StoredApproval, SignedApproval], ...]
    rejected: tuple[str, ...]
    quorum: int

    @property
    def reached(self) -> bool:
        return not self.denied_by and len(self.approved_by) >= self.quorum

    @property
    def denied(self) -> bool:
        return bool(self.denied_by)


def tally(request: ApprovalRequest, stored: list[StoredApproval],
          approvers: tuple[str, ...] | list[str], quorum: int,
          now: datetime) -> Tally:
    """Count the valid approvals of ``request``: distinct keys, any denial wins."""
    approved: dict[str, None] = {}
    denied: dict[str, None] = {}
    counted = []
    rejected = []
    for row in stored:
        try:
            approval = SignedApproval.from_bytes(row.signed)
            if approval.nonce != row.nonce:
                raise ApprovalError(
                    f"approval stored under nonce {row.nonce} carries nonce "
                    f"{approval.nonce}"
                )
            check_approval(approval, request, approvers, now)
        except ApprovalError as err:
            rejected.append(str(err))
            continue
        key_id = approval.approver.key_id
        if approval.verdict == "deny":
            denied[key_id] = None
        elif key_id in approved:
            rejected.append(
                f"approval by {key_id} counted once; the quorum counts distinct keys"
            )
            continue
        else:
            approved[key_id] = None
        counted.append((row, approval))
    return Tally(tuple(sorted(approved)), tuple(sorted(denied)), tuple(counted),
                 tuple(rejected), quorum)


def expiry_after(now: datetime, seconds: float) -> datetime:
    """Return ``now + seconds`` truncated to microseconds, as records carry it."""
    return parse_time(format_time(now + timedelta(seconds=seconds)), "expiry")


def submit_approval(store: ApprovalStore, approval: SignedApproval,
                    now: datetime) -> ApprovalRequest:
    """Check an approval against its stored request, then store it.

    Raises ``ApprovalError`` for an approval that would not count: a key the
    request does not list, another call's binding, an expired approval or
    request, a request no longer pending, or a nonce already stored.
    """
    request = store.request(approval.body["request"])
    if request.status != "pending":
        raise ApprovalError(
            f"request {request.id} is {request.status}, not pending; it takes no "
            "more approvals"
        )
    check_approval(approval, request, request.approvers, now)
    store.insert_approval(
        nonce=approval.nonce, request_id=request.id,
        approver=approval.approver.key_id, verdict=approval.verdict,
        signed=jcs.canonical(approval.to_json()), now=now,
    )
    logger.info("request %s: %s by %s stored", request.id, approval.verdict,
                approval.approver.key_id)
    return request
