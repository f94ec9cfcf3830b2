"""Re-verify every sealed record of a log, in leaf order, as ``specs/records.md``
defines them.

``RecordAuditor.add`` takes the entries one by one and keeps what later
records refer to: policies by hash, certificates by hash, revocations,
decisions, approval requests and approvals by index, and each session's
last leaf hash and state digest. Each problem becomes a ``Finding`` with the
index of the record it was found at. The decision checks are in
``verifier.audit_decisions``; the finding kinds are listed in
``specs/audit.md``.

A check that meets a field of the wrong shape records a ``record.format``
finding for that record and goes on with the next one, so one bad record
never hides the rest of the log.
"""

import hashlib
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from verifier._encoding import shorten
from verifier._record_fields import require_hex64, require_members
from verifier._time import parse_time
from verifier.audit_approvals import check_approval, check_request
from verifier.audit_decisions import check_decision
from verifier.delegation import (
    Certificate,
    Revocation,
    parse_certificate,
    parse_revocation,
)
from verifier.errors import ChainInvalid, MalformedInput
from verifier.jcs import canonicalize, parse_strict
from verifier.note import parse_verifier_key

ERROR = "error"
WARNING = "warning"

_ID_LETTER = {
    "key": "k",
    "policy": "p",
    "delegation": "g",
    "decision": "d",
    "outcome": "o",
    "approval-request": "q",
    "approval": "a",
    "revocation": "r",
}
_ID = re.compile(r"([a-z])-[0-9a-f]{32}")


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, the leaf index it was found at, and a sentence."""

    kind: str
    index: int | None
    message: str
    severity: str = ERROR

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "index": self.index,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(slots=True)
class DecisionInfo:
    """What later records need to know about a decision."""

    id: str
    session: str
    verdict: str
    tool: str
    agent: str
    policy: str


@dataclass(slots=True)
class ApprovalInfo:
    """A sealed approval and whether every check on it passed."""

    id: str
    request: str
    verdict: str
    approver: bytes
    expiry: datetime
    valid: bool


@dataclass(slots=True)
class SessionState:
    """The last record of a session: its index, leaf hash and state digest."""

    index: int
    leaf: str
    after: str | None = None


@dataclass(slots=True)
class KeyState:
    introduced: int | None = None
    retired: int | None = None


@dataclass
class RecordAuditor:
    """Checks records in leaf order and collects findings."""

    origin: str
    anchors: tuple[str, ...] | None = None
    findings: list[Finding] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)
    roots: set[str] = field(default_factory=set)

    policies: dict[str, tuple[int, dict]] = field(default_factory=dict)
    certificates: dict[str, tuple[int, Certificate]] = field(default_factory=dict)
    revocations: dict[str, list[Revocation]] = field(default_factory=dict)
    decisions: dict[int, DecisionInfo] = field(default_factory=dict)
    requests: dict[str, tuple[int, dict]] = field(default_factory=dict)
    approvals: dict[int, ApprovalInfo] = field(default_factory=dict)
    sessions: dict[str, SessionState] = field(default_factory=dict)
    keys: dict[str, KeyState] = field(default_factory=dict)
    leaves: dict[bytes, int] = field(default_factory=dict)
    ids: set[bytes] = field(default_factory=set)
    nonces: set[str] = field(default_factory=set)
    used_requests: dict[str, int] = field(default_factory=dict)
    outcomes: set[int] = field(default_factory=set)
    chain_cache: dict = field(default_factory=dict)
    scope_cache: dict = field(default_factory=dict)

    def report(
        self, kind: str, index: int | None, message: str, severity: str = ERROR
    ) -> None:
        self.findings.append(Finding(kind, index, message, severity))

    def add(self, index: int, entry: bytes, leaf: bytes) -> None:
        """Check the record at ``index`` (its bytes and leaf hash)."""
        leaf_hex = leaf.hex()
        self.leaves.setdefault(leaf, index)
        try:
            record = parse_strict(entry)
            if not isinstance(record, dict):
                raise MalformedInput("expected a JSON object")
            if canonicalize(record) != entry:
                raise MalformedInput("the entry is not in RFC 8785 canonical form")
            kind = self._common(record)
        except MalformedInput as err:
            self.report("record.format", index, f"record {index}: {err}")
            return

        self.counts[kind] += 1
        check = _CHECKS.get(kind)
        if check is None:
            self.report(
                "record.type", index, f"record {index} has unknown type {shorten(kind)}"
            )
            return
        try:
            check(self, index, record, leaf_hex)
        except (MalformedInput, KeyError, TypeError, ValueError, AttributeError) as err:
            detail = f"missing member {err}" if isinstance(err, KeyError) else str(err)
            self.report(
                "record.format",
                index,
                f"{kind} record {index} ({record.get('id')}): {detail}",
            )

    def _common(self, record: dict) -> str:
        kind = record.get("type")
        if not isinstance(kind, str):
            raise MalformedInput(f"expected a string type, got {shorten(kind)}")
        if record.get("version") != 1 or isinstance(record.get("version"), bool):
            raise MalformedInput(
                f"expected version 1, got {shorten(record.get('version'))}"
            )
        record_id = record.get("id")
        match = _ID.fullmatch(record_id) if isinstance(record_id, str) else None
        if match is None or _ID_LETTER.get(kind, match.group(1)) != match.group(1):
            raise MalformedInput(
                f"expected an id of the type's letter, '-' and 32 hex digits, got "
                f"{shorten(record_id)} for type {shorten(kind)}"
            )
        # The letter and the 16 bytes of the id, to keep memory per record low.
        key = record_id[0].encode() + bytes.fromhex(record_id[2:])
        if key in self.ids:
            raise MalformedInput(f"id {record_id} was used by an earlier record")
        self.ids.add(key)
        parse_time(record.get("time"), "time")
        return kind

    def remember_decision(self, index: int, record: dict) -> None:
        """Keep what outcomes and approval requests check about a decision."""
        # Interned, because sessions, tools, agents and policies repeat.
        self.decisions[index] = DecisionInfo(
            record["id"],
            sys.intern(record["session"]),
            sys.intern(record["verdict"]),
            sys.intern(record["tool"]),
            sys.intern(record["agent"]),
            sys.intern(record["policy"]),
        )

    def remember_approval(
        self,
        index: int,
        *,
        record_id: str,
        request: str,
        verdict: str,
        approver: bytes,
        expiry: datetime,
        valid: bool,
    ) -> None:
        """Keep what decisions check about an approval sealed at ``index``."""
        self.approvals[index] = ApprovalInfo(
            record_id, request, verdict, approver, expiry, valid
        )

    # -- sessions -----------------------------------------------------------------

    def session_step(
        self,
        index: int,
        session: str,
        previous: str | None,
        leaf: str,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        """Check a decision's or outcome's links to its session's previous record."""
        state = self.sessions.get(session)
        expected = state.leaf if state else None
        if (previous or None) != expected:
            if state is None:
                self.report(
                    "session.previous",
                    index,
                    f"record {index} is the first of session {session} in the log, "
                    f"but names previous leaf hash {previous}",
                )
            elif previous is not None and bytes.fromhex(previous) not in self.leaves:
                self.report(
                    "session.previous",
                    state.index,
                    f"record {index} of session {session} names previous leaf hash "
                    f"{previous}, which no record has, while record {state.index} "
                    f"before it has {state.leaf}; record {state.index} was changed "
                    "or a record is missing",
                )
            else:
                self.report(
                    "session.previous",
                    index,
                    f"record {index} of session {session} names previous leaf hash "
                    f"{previous}, but the session's previous record is record "
                    f"{state.index} with leaf hash {state.leaf}",
                )
        last_after = state.after if state else None
        if before is not None and last_after is not None and before != last_after:
            self.report(
                "session.digest",
                index,
                f"decision {index} of session {session} starts from state digest "
                f"{before}, but the session's previous decision ended at {last_after}",
            )
        self.sessions[session] = SessionState(
            index, leaf, after if after is not None else last_after
        )

    # -- records that are not decisions -------------------------------------------

    def check_key(self, index: int, record: dict, leaf: str) -> None:
        require_members(record, {"role", "key"}, {"status"})
        if record["role"] != "log":
            raise MalformedInput(f"role must be 'log', got {shorten(record['role'])}")
        key = parse_verifier_key(record["key"])
        if key.name != self.origin:
            self.report(
                "key.origin",
                index,
                f"key record {index} names key {key.name!r}, not the log's "
                f"origin {self.origin!r}",
            )
        state = self.keys.setdefault(key.text, KeyState())
        status = record.get("status")
        if status is None:
            if state.introduced is not None or state.retired is not None:
                self.report(
                    "key.reintroduced",
                    index,
                    f"key record {index} introduces {key.name}+"
                    f"{key.key_id.hex()} again; a key is introduced once",
                )
            else:
                state.introduced = index
        elif status == "retired":
            if state.introduced is None or state.retired is not None:
                self.report(
                    "key.retired",
                    index,
                    f"key record {index} retires a key that is not active",
                )
            state.retired = index
            active = [
                k
                for k, s in self.keys.items()
                if s.introduced is not None and s.retired is None
            ]
            if not active:
                self.report(
                    "key.retired",
                    index,
                    f"key record {index} retires the last active key",
                )
        else:
            raise MalformedInput(f"status must be 'retired', got {shorten(status)}")

    def active_keys(self, size: int) -> set[str]:
        """Return the keys that may sign the checkpoint of tree size ``size``."""
        return {
            key
            for key, state in self.keys.items()
            if state.introduced is not None
            and state.introduced < size
            and (state.retired is None or state.retired >= size)
        }

    def check_policy(self, index: int, record: dict, leaf: str) -> None:
        require_members(record, {"hash", "document"})
        document = record["document"]
        if not isinstance(document, dict):
            raise MalformedInput("document must be an object")
        computed = hashlib.sha256(canonicalize(document)).hexdigest()
        if computed != record["hash"]:
            self.report(
                "policy.hash",
                index,
                f"policy record {index} names hash {record['hash']}, but its "
                f"document hashes to {computed}",
            )
            return
        self.policies.setdefault(computed, (index, document))

    def check_delegation(self, index: int, record: dict, leaf: str) -> None:
        require_members(record, {"hash", "certificate"})
        try:
            certificate = parse_certificate(record["certificate"])
        except ChainInvalid as err:
            self.report("delegation.format", index, f"delegation record {index}: {err}")
            return
        if certificate.hash != record["hash"]:
            self.report(
                "delegation.hash",
                index,
                f"delegation record {index} names hash {record['hash']}, but "
                f"its certificate hashes to {certificate.hash}",
            )
            return
        if not certificate.signature_valid():
            self.report(
                "delegation.signature",
                index,
                f"delegation record {index}: certificate {certificate.hash} is "
                "not signed by its issuer; no valid chain can use it",
                WARNING,
            )
        self.certificates.setdefault(certificate.hash, (index, certificate))

    def check_revocation(self, index: int, record: dict, leaf: str) -> None:
        try:
            revocation = parse_revocation(record, index)
        except ChainInvalid as err:
            self.report(
                "revocation.signature",
                index,
                f"revocation record {index}: {err}; it revokes nothing",
            )
            return
        self.revocations.setdefault(revocation.certificate, []).append(revocation)

    def check_outcome(self, index: int, record: dict, leaf: str) -> None:
        require_members(
            record,
            {
                "session",
                "decision",
                "decision_index",
                "status",
                "duration_ms",
                "result",
                "previous",
            },
            {"error"},
        )
        require_hex64(record["result"], "result")
        if record["status"] not in ("ok", "error") or (
            (record["status"] == "error") != ("error" in record)
        ):
            raise MalformedInput("status must be 'ok', or 'error' with an error member")
        decision_index = record["decision_index"]
        decision = self.decisions.get(decision_index)
        if decision is None or decision.id != record["decision"]:
            self.report(
                "outcome.decision",
                index,
                f"outcome {index} names decision {record['decision']} at index "
                f"{decision_index}, but no earlier decision has that id there",
            )
        elif decision.session != record["session"]:
            self.report(
                "outcome.decision",
                index,
                f"outcome {index} of session {record['session']} follows "
                f"decision {decision_index} of session {decision.session}",
            )
        elif decision.verdict != "allow":
            self.report(
                "outcome.decision",
                index,
                f"outcome {index}: the tool ran after decision {decision_index}, "
                f"whose verdict is {decision.verdict}, not allow",
            )
        elif decision_index in self.outcomes:
            self.report(
                "outcome.duplicate",
                index,
                f"outcome {index} is a second outcome of decision {decision_index}",
            )
        self.outcomes.add(decision_index)
        self.session_step(index, record["session"], record["previous"] or None, leaf)


_CHECKS = {
    "key": RecordAuditor.check_key,
    "policy": RecordAuditor.check_policy,
    "delegation": RecordAuditor.check_delegation,
    "revocation": RecordAuditor.check_revocation,
    "decision": check_decision,
    "outcome": RecordAuditor.check_outcome,
    "approval-request": check_request,
    "approval": check_approval,
}
