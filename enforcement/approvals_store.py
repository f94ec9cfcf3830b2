"""The gate's private store of approval requests and received approvals.

It lives in the vault's SQLite file, outside the log. A request row keeps
the raw arguments of the held call, so that approvers can read what they
approve, and their unsalted hash, so that a retry of the same call can be
matched. The log must show neither. ``enforcement.approvals`` checks every stored
approval again before counting it; nothing here is trusted on its own.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from enforcement import jcs
from enforcement.errors import ApprovalError, ConfigError
from enforcement.timeutil import format_time, parse_time
from enforcement.vault import open_engine

# Request states: pending until an allow uses it, a denial or a timeout
# closes it, or its expiry passes.
STATUSES = ("pending", "used", "denied", "timed_out", "expired")

_metadata = MetaData()
_requests = Table(
    "approval_requests",
    _metadata,
    Column("id", String(40), primary_key=True),
    Column("decision", String(40), nullable=False),
    Column("decision_index", Integer, nullable=False),
    Column("tool", String(256), nullable=False),
    Column("arguments", String(64), nullable=False),
    # SHA-256 of JCS(arguments) without salt: private, used to match a retry.
    Column("call_hash", String(64), nullable=False),
    Column("raw_arguments", LargeBinary, nullable=False),
    Column("agent", String(300), nullable=False),
    Column("session", String(200), nullable=False, index=True),
    Column("rules", String, nullable=False),
    Column("quorum", Integer, nullable=False),
    Column("approvers", String, nullable=False),
    Column("created", String(32), nullable=False),
    Column("expiry", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),
)
_signatures = Table(
    "approval_signatures",
    _metadata,
    Column("nonce", String(32), primary_key=True),
    Column("request", String(40), nullable=False, index=True),
    Column("approver", String(300), nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("signed", LargeBinary, nullable=False),
    Column("received", String(32), nullable=False),
    Column("record_id", String(40)),
    Column("record_index", Integer),
)


def call_hash(arguments: Mapping[str, Any]) -> str:
    """Return SHA-256 of the arguments' JCS form: private, never sealed."""
    return hashlib.sha256(jcs.canonical(dict(arguments))).hexdigest()


@dataclass(frozen=True)
class ApprovalRequest:
    """A held call waiting for approvers, as the store keeps it."""

    id: str
    decision: str
    decision_index: int
    tool: str
    arguments: str
    call_hash: str
    agent: str
    session: str
    rules: tuple[str, ...]
    quorum: int
    approvers: tuple[str, ...]
    created: datetime
    expiry: datetime
    status: str

    def binding(self) -> dict[str, str]:
        """Return the fields an approval of this request must repeat."""
        return {
            "request": self.id, "decision": self.decision, "tool": self.tool,
            "arguments": self.arguments, "agent": self.agent,
            "session": self.session,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.binding(),
            "decision_index": self.decision_index,
            "rules": list(self.rules),
            "quorum": self.quorum,
            "approvers": list(self.approvers),
            "created": format_time(self.created),
            "expiry": format_time(self.expiry),
            "status": self.status,
        }


@dataclass(frozen=True)
class StoredApproval:
    """A stored signed approval, with the record that sealed it (if any)."""

    nonce: str
    request: str
    signed: bytes
    record_id: str | None
    record_index: int | None


class ApprovalStore:
    """The pending requests and received approvals, in the gate's SQLite file."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # One in-memory SQLite connection is shared by every thread.
        self._lock = threading.Lock()
        try:
            _metadata.create_all(engine)
        except SQLAlchemyError as err:
            raise ConfigError(f"cannot create the approval tables: {err}") from err

    @classmethod
    def open(cls, path: str) -> ApprovalStore:
        return cls(open_engine(path, "approval store"))

    def close(self) -> None:
        self._engine.dispose()

    # -- requests ----------------------------------------------------------------

    def add_request(self, request: ApprovalRequest,
                    arguments: Mapping[str, Any]) -> None:
        row = {
            **request.binding(),
            "id": request.id,
            "decision_index": request.decision_index,
            "call_hash": request.call_hash,
            "raw_arguments": jcs.canonical(dict(arguments)),
            "rules": json.dumps(list(request.rules)),
            "quorum": request.quorum,
            "approvers": json.dumps(list(request.approvers)),
            "created": format_time(request.created),
            "expiry": format_time(request.expiry),
            "status": request.status,
        }
        del row["request"]
        with self._lock, self._engine.begin() as connection:
            connection.execute(insert(_requests), [row])

    def request(self, request_id: str) -> ApprovalRequest:
        """Return a request, or raise ``ApprovalError`` when there is none."""
        with self._lock, self._engine.connect() as connection:
            row = connection.execute(
                select(_requests).where(_requests.c.id == request_id)
            ).first()
        if row is None:
            raise ApprovalError(f"no approval request {request_id!r} in this store")
        return _request_from_row(row)

    def requests(self, status: str | None = "pending") -> list[ApprovalRequest]:
        """Return the requests in ``status`` (all when None), oldest first."""
        query = select(_requests).order_by(_requests.c.created, _requests.c.id)
        if status is not None:
            query = query.where(_requests.c.status == status)
        with self._lock, self._engine.connect() as connection:
            return [_request_from_row(r) for r in connection.execute(query)]

    def latest_pending(self, session: str, tool: str,
                       hashed: str) -> ApprovalRequest | None:
        """Return the newest pending request for this exact call, if any."""
        query = (
            select(_requests)
            .where(_requests.c.session == session, _requests.c.tool == tool,
                   _requests.c.call_hash == hashed,
                   _requests.c.status == "pending")
            .order_by(_requests.c.created.desc(), _requests.c.id.desc())
        )
        with self._lock, self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _request_from_row(row)

    def arguments_of(self, request_id: str) -> dict[str, Any]:
        """Return the raw arguments of a request (private to the gate's host)."""
        with self._lock, self._engine.connect() as connection:
            row = connection.execute(
                select(_requests.c.raw_arguments).where(_requests.c.id == request_id)
            ).first()
        if row is None:
            raise ApprovalError(f"no approval request {request_id!r} in this store")
        return jcs.parse_strict(row.raw_arguments)

    def view(self, request_id: str) -> dict[str, Any]:
        """Return a request with the held call's raw arguments, for approvers."""
        request = self.request(request_id)
        return {**request.to_json(), "call": {
            "tool": request.tool, "arguments": self.arguments_of(request.id)}}

    def close_request(self, request_id: str, status: str) -> bool:
        """Move a pending request to ``status``; return False if it was not
        pending, so that of two racing calls only one uses an approval."""
        if status not in STATUSES or status == "pending":
            raise ValueError(f"cannot close a request as {status!r}")
        with self._lock, self._engine.begin() as connection:
            result = connection.execute(
                update(_requests)
                .where(_requests.c.id == request_id, _requests.c.status == "pending")
                .values(status=status)
            )
        return result.rowcount == 1

    # -- approvals ---------------------------------------------------------------

    def insert_approval(self, *, nonce: str, request_id: str, approver: str,
                        verdict: str, signed: bytes, now: datetime) -> None:
        """Store a signed approval; the caller has checked it.

        Raises ``ApprovalError`` when the nonce is already stored.
        """
        row = {
            "nonce": nonce, "request": request_id, "approver": approver,
            "verdict": verdict, "signed": signed, "received": format_time(now),
        }
        try:
            with self._lock, self._engine.begin() as connection:
                connection.execute(insert(_signatures), [row])
        except IntegrityError as err:
            raise ApprovalError(
                f"an approval with nonce {nonce} is already stored; each approval "
                "is used once"
            ) from err

    def approvals(self, request_id: str) -> list[StoredApproval]:
        query = (
            select(_signatures)
            .where(_signatures.c.request == request_id)
            .order_by(_signatures.c.received, _signatures.c.nonce)
        )
        with self._lock, self._engine.connect() as connection:
            return [
                StoredApproval(r.nonce, r.request, r.signed, r.record_id,
                               r.record_index)
                for r in connection.execute(query)
            ]

    def mark_sealed(self, nonce: str, record_id: str, index: int) -> None:
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                update(_signatures).where(_signatures.c.nonce == nonce)
                .values(record_id=record_id, record_index=index)
            )


def _request_from_row(row: Any) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        decision=row.decision,
        decision_index=row.decision_index,
        tool=row.tool,
        arguments=row.arguments,
        call_hash=row.call_hash,
        agent=row.agent,
        session=row.session,
        rules=tuple(json.loads(row.rules)),
        quorum=row.quorum,
        approvers=tuple(json.loads(row.approvers)),
        created=parse_time(row.created, "request created"),
        expiry=parse_time(row.expiry, "request expiry"),
        status=row.status,
    )
