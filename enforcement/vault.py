"""Private storage of raw arguments and the salts of their commitments.

The log holds only ``SHA-256(salt || JCS(value))`` per argument. This vault
keeps the value and the salt so that an authorized auditor can later have one
commitment opened (``agentgate disclose``) and check it against the log. It
lives outside the log, in its own SQLite file (or in memory for tests); the
gate's approval requests are kept in the same file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from typing import Any

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, create_engine
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from enforcement import jcs
from enforcement.errors import ConfigError

_metadata = MetaData()
_openings = Table(
    "argument_openings",
    _metadata,
    Column("commitment", String(64), primary_key=True),
    Column("record_id", String(40), nullable=False, index=True),
    Column("name", String(256), nullable=False),
    Column("salt", LargeBinary(32), nullable=False),
    Column("value", LargeBinary, nullable=False),
)


def commitment_of(salt: bytes, value_bytes: bytes) -> str:
    return hashlib.sha256(salt + value_bytes).hexdigest()


def check_opening(commitment: str, salt: bytes, value: Any) -> bool:
    """Return True when ``value`` and ``salt`` open ``commitment``."""
    expected = commitment_of(salt, jcs.canonical(value))
    return hmac.compare_digest(expected, commitment)


def open_engine(path: str | None, what: str = "argument vault") -> Engine:
    """Open the SQLite file at ``path`` (in memory for None) in WAL mode."""
    if path is None:
        url, options = "sqlite://", {"poolclass": StaticPool}
    else:
        url, options = f"sqlite:///{path}", {}
    try:
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, **options
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        with engine.connect():
            pass
    except SQLAlchemyError as err:
        raise ConfigError(f"cannot open the {what} at {path}: {err}") from err
    return engine


class ArgumentVault:
    """Stores the openings of argument and result commitments."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._engine = open_engine(path)
        try:
            _metadata.create_all(self._engine)
        except SQLAlchemyError as err:
            raise ConfigError(
                f"cannot open the argument vault at {path}: {err}"
            ) from err
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, shared with the gate's approval store."""
        return self._engine

    def commit_values(self, record_id: str, values: dict[str, Any]) -> dict[str, str]:
        """Store each value with a fresh salt; return name -> commitment."""
        rows = []
        commitments = {}
        for name, value in values.items():
            value_bytes = jcs.canonical(value)
            salt = secrets.token_bytes(32)
            commitment = commitment_of(salt, value_bytes)
            commitments[name] = commitment
            rows.append({
                "commitment": commitment, "record_id": record_id, "name": name,
                "salt": salt, "value": value_bytes,
            })
        if rows:
            with self._lock, self._engine.begin() as connection:
                connection.execute(insert(_openings), rows)
        return commitments

    def open(self, commitment: str) -> tuple[str, bytes, Any]:
        """Return (name, salt, value) for a commitment, or raise ``KeyError``."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(_openings).where(_openings.c.commitment == commitment)
            ).first()
        if row is None:
            raise KeyError(commitment)
        return row.name, row.salt, jcs.parse_strict(row.value)

    def record_of(self, commitment: str) -> str:
        """Return the id of the record whose commitment this is, or raise
        ``KeyError``."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(_openings.c.record_id).where(
                    _openings.c.commitment == commitment)
            ).first()
        if row is None:
            raise KeyError(commitment)
        return row.record_id

    def find(self, record_id: str, name: str) -> str:
        """Return the commitment stored for argument ``name`` of a record.

        Raises ``KeyError`` when the record has no such argument.
        """
        with self._engine.connect() as connection:
            row = connection.execute(
                select(_openings.c.commitment).where(
                    _openings.c.record_id == record_id, _openings.c.name == name
                )
            ).first()
        if row is None:
            raise KeyError(f"{record_id}/{name}")
        return row.commitment

    def close(self) -> None:
        self._engine.dispose()


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
