"""Durable storage of the log: SQLAlchemy Core tables and the ``Store``.

The default database is an SQLite file in WAL mode with ``synchronous=FULL``,
so a committed batch survives a power cut. PostgreSQL (through psycopg 3)
has the same tables, because the schema uses only portable types
(BigInteger, LargeBinary, Text). Alembic migrations in ``ledger.migrations`` create and
upgrade it. Five tables hold the log:

- ``log_head``: one row with the origin, tree size and root hash. Every write
  transaction locks it first (``SELECT ... FOR UPDATE`` on PostgreSQL,
  ``BEGIN IMMEDIATE`` on SQLite), so writers in many processes take turns
  extending one tree.
- ``leaves``: leaf index (primary key, so two writers can never store the
  same index), leaf hash, entry bytes and an optional idempotency key
  (unique).
- ``nodes``: the hash of every complete subtree above the leaves, keyed by
  ``(level, node_index)``: the subtree of ``2**level`` leaves starting at
  leaf ``node_index * 2**level``. Level 0 is the ``leaves`` table.
- ``checkpoints``: tree size to signed checkpoint note.
- ``log_keys``: each key that signs the log's checkpoints, with the leaf
  indexes of the key records that introduced and retired it.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from . import migrations
from .errors import StorageError
from .keys import LogKey

__all__ = [
    "Head",
    "LeafRow",
    "Reads",
    "Store",
    "WriteTransaction",
    "describe_database_error",
    "display_name",
    "metadata",
]

logger = logging.getLogger(__name__)

# On SQLite an INTEGER PRIMARY KEY is the rowid itself, which saves an index;
# BIGINT would not be. Other databases get a real 64-bit column.
_RowId = BigInteger().with_variant(Integer(), "sqlite")
# Execution option that makes the next SQLite transaction take the write lock.
_WRITE_OPTION = "agentgate_write"

metadata = MetaData()

log_head = Table(
    "log_head",
    metadata,
    Column("origin", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
)

leaves = Table(
    "leaves",
    metadata,
    Column("leaf_index", _RowId, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("idempotency_key", Text, nullable=True, unique=True),
    # Inclusion proofs can be asked for by leaf hash.
    Index("leaves_leaf_hash", "leaf_hash"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("node_index", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", _RowId, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
)

log_keys = Table(
    "log_keys",
    metadata,
    Column("verifier_key", Text, primary_key=True),
    Column("added_index", BigInteger, nullable=False),
    Column("retired_index", BigInteger, nullable=True),
)

# Statements on the write path are built once: building a Core statement
# costs more than running it against SQLite.
_LOCK_HEAD = (
    select(log_head.c.origin, log_head.c.size, log_head.c.root)
    .where(log_head.c.origin == bindparam("head_origin"))
    .with_for_update()
)
_READ_HEAD = select(log_head.c.origin, log_head.c.size, log_head.c.root).where(
    log_head.c.origin == bindparam("head_origin")
)
_UPDATE_HEAD = (
    update(log_head)
    .where(log_head.c.origin == bindparam("head_origin"))
    .values(size=bindparam("new_size"), root=bindparam("new_root"))
)
_INSERT_LEAF = insert(leaves)
_INSERT_NODE = insert(nodes)
# ON CONFLICT DO NOTHING where the dialect has it, a lookup first elsewhere.
_INSERT_CHECKPOINT_IF_NEW = {
    "sqlite": sqlite_insert(checkpoints).on_conflict_do_nothing(),
    "postgresql": postgresql_insert(checkpoints).on_conflict_do_nothing(),
}
_STORED_CHECKPOINT_SIZES = select(checkpoints.c.size).where(
    checkpoints.c.size.in_(bindparam("sizes", expanding=True))
)
_SELECT_LEAF_HASHES = select(leaves.c.leaf_index, leaves.c.leaf_hash).where(
    leaves.c.leaf_index.in_(bindparam("indexes", expanding=True))
)
# Node hashes are read by a UNION ALL of primary key lookups. A row-value IN
# list, (level, node_index) IN (VALUES ...), made SQLite 3.40 scan the whole
# nodes table: about 10 ms per proof at 10^5 entries, growing with the log.
# Statements are built for powers of two up to _MAX_NODE_LOOKUPS keys, so
# that SQLAlchemy compiles each shape once.
_MAX_NODE_LOOKUPS = 64


def _lookup_count(keys: int) -> int:
    """Return the statement size for ``keys`` keys: the next power of two."""
    return 1 << (keys - 1).bit_length()


@functools.cache
def _node_lookups(count: int):
    lookups = [
        select(nodes.c.level, nodes.c.node_index, nodes.c.hash).where(
            nodes.c.level == bindparam(f"level_{position}"),
            nodes.c.node_index == bindparam(f"node_index_{position}"),
        )
        for position in range(count)
    ]
    return lookups[0] if count == 1 else union_all(*lookups)


_SELECT_IDEMPOTENCY_KEYS = select(
    leaves.c.idempotency_key, leaves.c.leaf_index, leaves.c.entry
).where(leaves.c.idempotency_key.in_(bindparam("keys", expanding=True)))


@dataclass(frozen=True)
class Head:
    """The log head row: origin, tree size and root hash."""

    origin: str
    size: int
    root: bytes


@dataclass(frozen=True)
class LeafRow:
    """One leaf to insert."""

    index: int
    leaf_hash: bytes
    entry: bytes
    idempotency_key: str | None = None


def _database_url(path_or_url: str | os.PathLike[str]) -> URL:
    """Return the SQLAlchemy URL for a file path or a database URL.

    A ``postgresql://`` URL without a driver gets psycopg 3, the driver of
    the ``postgres`` extra.
    """
    text_form = os.fspath(path_or_url)
    if "://" not in text_form:
        return URL.create("sqlite", database=os.path.abspath(text_form))
    try:
        url = make_url(text_form)
    except ArgumentError as err:
        raise StorageError(f"database URL {text_form!r} is invalid: {err}") from err
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def display_name(url: URL) -> str:
    """Return how messages name a database: an SQLite file's path, else the URL.

    The URL is shown without its password.
    """
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


# Hints for driver messages that users meet when --db names the wrong file.
_ERROR_HINTS = {
    "unable to open database file": "check that its directory exists and that "
    "this user may create files there",
    "file is not a database": "check that the path names a log database",
}


def describe_database_error(err: Exception) -> str:
    """Return a database error as one line: the driver's message and a hint.

    SQLAlchemy's own text adds the statement and a link to its error pages;
    the driver's message (``err.orig``) states the problem alone.
    """
    original = getattr(err, "orig", None)
    text_form = str(original if original is not None else err)
    text_form = text_form.split("(Background on this error at:")[0]
    lines = [line.strip() for line in text_form.splitlines() if line.strip()]
    message = "; ".join(lines) or type(err).__name__
    hint = _ERROR_HINTS.get(message)
    return f"{message}; {hint}" if hint else message


# How long a connection waits for another's lock before it fails.
_BUSY_TIMEOUT_SECONDS = 10


def _set_wal_mode(cursor) -> None:
    """Switch the file to WAL, retrying while another connection holds it.

    Connections that open a new file at once race for the lock that the
    switch needs, and SQLite answers "database is locked" at once, without
    its busy handler, to the losers; they retry for up to the busy timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _configure_sqlite(engine: Engine) -> None:
    """Make every SQLite connection durable and let the Store issue BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        # The sqlite3 module's own transaction handling skips BEGIN before
        # SELECT; turning it off lets _on_begin choose the lock mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_SECONDS * 1000}")
            _set_wal_mode(cursor)
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A write transaction takes the write lock at BEGIN, so its read of
        # the head row cannot be overtaken by another process.
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")


class Reads:
    """Read queries on one connection inside an open transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def read_head(self, origin: str | None = None) -> Head | None:
        """Return the head row (of ``origin`` when given), or None if absent."""
        if origin is not None:
            row = self.connection.execute(_READ_HEAD, {"head_origin": origin}).first()
            return None if row is None else _head(row)
        rows = self.connection.execute(select(log_head)).all()
        if len(rows) > 1:
            origins = ", ".join(row.origin for row in rows)
            raise StorageError(
                f"database contains {len(rows)} logs ({origins}); expected one"
            )
        return _head(rows[0]) if rows else None

    def read_hashes(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Return the stored hashes of the given ``(level, node_index)`` subtrees.

        Level 0 is read from the leaves table. Keys that are not stored are
        missing from the result. One query reads the leaves, and one query
        per 64 node keys reads the nodes.
        """
        leaf_indexes = []
        node_keys = []
        for level, index in keys:
            if level == 0:
                leaf_indexes.append(index)
            else:
                node_keys.append((level, index))

        found: dict[tuple[int, int], bytes] = {}
        if leaf_indexes:
            rows = self.connection.execute(
                _SELECT_LEAF_HASHES, {"indexes": leaf_indexes}
            )
            for index, digest in rows:
                found[(0, index)] = bytes(digest)
        for start in range(0, len(node_keys), _MAX_NODE_LOOKUPS):
            chunk = node_keys[start : start + _MAX_NODE_LOOKUPS]
            count = _lookup_count(len(chunk))
            # Repeating the last key fills the statement; rows are keyed.
            chunk += [chunk[-1]] * (count - len(chunk))
            parameters = {}
            for position, (level, index) in enumerate(chunk):
                parameters[f"level_{position}"] = level
                parameters[f"node_index_{position}"] = index
            rows = self.connection.execute(_node_lookups(count), parameters)
            for level, index, digest in rows:
                found[(level, index)] = bytes(digest)
        return found

    def read_leaf_column(self, column: str, start: int, stop: int) -> list[bytes]:
        """Return ``leaf_hash`` or ``entry`` of leaves ``[start, stop)`` in order."""
        rows = self.connection.execute(
            select(leaves.c[column])
            .where(leaves.c.leaf_index >= start, leaves.c.leaf_index < stop)
            .order_by(leaves.c.leaf_index)
        ).all()
        if len(rows) != stop - start:
            what = "entries" if column == "entry" else "leaves"
            raise StorageError(
                f"{what} [{start}, {stop}) should be stored but {len(rows)} of "
                f"{stop - start} were found"
            )
        return [bytes(row[0]) for row in rows]

    def find_idempotency_keys(
        self, keys: Iterable[str]
    ) -> dict[str, tuple[int, bytes]]:
        """Return ``key -> (leaf index, entry)`` for the keys already stored."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = self.connection.execute(_SELECT_IDEMPOTENCY_KEYS, {"keys": wanted})
        return {key: (index, bytes(entry)) for key, index, entry in rows}

    def read_checkpoint(self, size: int) -> str | None:
        """Return the stored checkpoint note for ``size``, or None."""
        return self.connection.execute(
            select(checkpoints.c.note).where(checkpoints.c.size == size)
        ).scalar_one_or_none()

    def read_latest_checkpoint(self) -> tuple[int, str] | None:
        """Return ``(size, note)`` of the largest stored checkpoint, or None."""
        latest = select(func.max(checkpoints.c.size)).scalar_subquery()
        row = self.connection.execute(
            select(checkpoints.c.size, checkpoints.c.note).where(
                checkpoints.c.size == latest
            )
        ).first()
        return None if row is None else (row.size, row.note)

    def read_log_keys(self) -> list[LogKey]:
        """Return every key of the log in the order it was introduced."""
        rows = self.connection.execute(
            select(log_keys).order_by(log_keys.c.added_index)
        )
        return [
            LogKey(row.verifier_key, row.added_index, row.retired_index)
            for row in rows
        ]


class WriteTransaction(Reads):
    """Reads and writes inside the one write transaction of ``Store.write``."""

    def lock_head(self, origin: str) -> Head | None:
        """Lock the head row of ``origin`` until the commit and return it."""
        row = self.connection.execute(_LOCK_HEAD, {"head_origin": origin}).first()
        return None if row is None else _head(row)

    def append(
        self,
        head: Head,
        new_head: Head,
        leaf_rows: Sequence[LeafRow],
        node_rows: Sequence[tuple[int, int, bytes]],
    ) -> None:
        """Insert leaves and nodes and move the head row from ``head`` to ``new_head``.

        The caller holds the head lock and has checked that the stored head
        is ``head``. The leaf index primary key and the idempotency key
        unique index reject a second write of either, which ``Store.write``
        reports as ``StorageError``.
        """
        connection = self.connection
        if leaf_rows:
            connection.execute(
                _INSERT_LEAF,
                [
                    {
                        "leaf_index": leaf.index,
                        "leaf_hash": leaf.leaf_hash,
                        "entry": leaf.entry,
                        "idempotency_key": leaf.idempotency_key,
                    }
                    for leaf in leaf_rows
                ],
            )
        if node_rows:
            connection.execute(
                _INSERT_NODE,
                [
                    {"level": level, "node_index": index, "hash": digest}
                    for level, index, digest in node_rows
                ],
            )
        connection.execute(
            _UPDATE_HEAD,
            {
                "head_origin": head.origin,
                "new_size": new_head.size,
                "new_root": new_head.root,
            },
        )

    def insert_checkpoints(self, checkpoint_rows: Sequence[tuple[int, str]]) -> None:
        """Insert checkpoints, keeping the stored note where a size has one.

        Every checkpoint of a size carries the same root, because writers
        extend one tree under the head lock, so either note of a size is as
        good as the other.
        """
        if not checkpoint_rows:
            return
        rows = [{"size": size, "note": note} for size, note in checkpoint_rows]
        dialect = self.connection.dialect.name
        if dialect in _INSERT_CHECKPOINT_IF_NEW:
            self.connection.execute(_INSERT_CHECKPOINT_IF_NEW[dialect], rows)
            return
        sizes = [row["size"] for row in rows]
        stored = set(
            self.connection.execute(
                _STORED_CHECKPOINT_SIZES, {"sizes": sizes}
            ).scalars()
        )
        new_rows = [row for row in rows if row["size"] not in stored]
        if new_rows:
            self.connection.execute(insert(checkpoints), new_rows)

    def add_log_key(self, verifier_key: str, added_index: int) -> None:
        """Record a new key of the log, introduced by leaf ``added_index``."""
        self.connection.execute(
            insert(log_keys).values(
                verifier_key=verifier_key, added_index=added_index
            )
        )

    def retire_log_key(self, verifier_key: str, retired_index: int) -> None:
        """Mark a key of the log as retired by leaf ``retired_index``."""
        self.connection.execute(
            update(log_keys)
            .where(log_keys.c.verifier_key == verifier_key)
            .values(retired_index=retired_index)
        )

    def serialize_creation(self) -> None:
        """Make concurrent creators of schema or head row wait for each other.

        SQLite's ``BEGIN IMMEDIATE`` already does. On PostgreSQL there is no
        row to lock yet, so a transaction-scoped advisory lock serializes them.
        """
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"),
                {"key": migrations.ADVISORY_LOCK_KEY},
            )


def _head(row) -> Head:
    return Head(origin=row.origin, size=row.size, root=bytes(row.root))


class Store:
    """Reads and writes the log tables; one instance per open log.

    ``read`` and ``write`` run one transaction each. Writes go through one
    connection that stays open, guarded by a lock; reads take pooled
    connections and may run in parallel. The other methods are shortcuts
    that run a single read or write in a transaction of their own.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # How messages name the database: its file, or its URL sans password.
        self.name = display_name(engine.url)
        self._writer: Connection | None = None
        self._writer_lock = threading.Lock()

    @classmethod
    def open(
        cls, path_or_url: str | os.PathLike[str], *, prepare_schema: bool = True
    ) -> Store:
        """Open an SQLite file or database URL.

        With ``prepare_schema`` (the default), a database without the log
        tables is brought to the current schema. A database whose schema is
        older or newer than this code raises ``StorageError``, as
        ``ledger.migrations`` describes.
        """
        url = _database_url(path_or_url)
        shown = display_name(url)
        try:
            engine = create_engine(url)
        except ImportError as err:
            raise StorageError(
                f"cannot open database {shown}: the driver is not installed "
                f"({err}); for PostgreSQL install agentgate-runtime[postgres]"
            ) from err
        except (ArgumentError, SQLAlchemyError) as err:
            raise StorageError(
                f"cannot open database {shown}: {describe_database_error(err)}"
            ) from err
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        store = cls(engine)
        if prepare_schema:
            try:
                migrations.prepare_schema(store, shown)
            except BaseException:
                store.close()
                raise
        logger.debug("opened log database %s", shown)
        return store

    def close(self) -> None:
        """Close the writer connection and every pooled connection."""
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Reads]:
        """Run a read transaction on a pooled connection."""
        try:
            with self.engine.connect() as connection, connection.begin():
                yield Reads(connection)
        except SQLAlchemyError as err:
            raise self._failed(err) from err

    @contextmanager
    def write(self) -> Iterator[WriteTransaction]:
        """Run a write transaction on the writer connection; commit on success.

        Any exception rolls the transaction back. Database errors become
        ``StorageError``, and the writer connection is replaced, so that a
        broken connection does not fail every later write.
        """
        with self._writer_lock:
            try:
                if self._writer is None:
                    self._writer = self.engine.connect().execution_options(
                        **{_WRITE_OPTION: True}
                    )
                with self._writer.begin():
                    yield WriteTransaction(self._writer)
            except IntegrityError as err:
                self._drop_writer()
                raise StorageError(
                    "database rejected a duplicate leaf index, idempotency key or "
                    f"log key ({err.orig}); nothing was written. A writer that "
                    "does not take the head lock writes to this log: stop it"
                ) from err
            except SQLAlchemyError as err:
                self._drop_writer()
                raise self._failed(err) from err

    def _failed(self, err: SQLAlchemyError) -> StorageError:
        reason = describe_database_error(err)
        return StorageError(f"database {self.name} failed: {reason}")

    def _drop_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except SQLAlchemyError:
                logger.debug("closing a failed writer connection failed too")
            self._writer = None

    # -- shortcuts ------------------------------------------------------------

    def contains_log(self) -> bool:
        """Return whether the database has a log head row; never creates tables."""
        with self.read() as reads:
            if not inspect(reads.connection).has_table(log_head.name):
                return False
            return reads.read_head() is not None

    def read_head(self, origin: str | None = None) -> Head | None:
        """Return the head row (of ``origin`` when given), or None if absent."""
        with self.read() as reads:
            return reads.read_head(origin)

    def create_head(self, origin: str, empty_root: bytes) -> Head:
        """Insert the head row of an empty log named ``origin``.

        If another process created the log ``origin`` first, its head row is
        returned; a log of another origin raises ``StorageError``.
        """
        with self.write() as transaction:
            transaction.serialize_creation()
            existing = transaction.read_head()
            if existing is not None:
                if existing.origin != origin:
                    raise StorageError(
                        f"database already contains the log {existing.origin!r}"
                    )
                return existing
            transaction.connection.execute(
                insert(log_head).values(origin=origin, size=0, root=empty_root)
            )
        return Head(origin=origin, size=0, root=empty_root)

    def append(
        self,
        head: Head,
        new_head: Head,
        leaf_rows: Sequence[LeafRow],
        node_rows: Sequence[tuple[int, int, bytes]],
        checkpoint_rows: Sequence[tuple[int, str]] = (),
    ) -> None:
        """Commit leaves, nodes, checkpoints and the new head in one transaction.

        The head row is locked and must still equal ``head``; otherwise
        another writer changed the log and ``StorageError`` is raised with
        nothing written.
        """
        with self.write() as transaction:
            stored = transaction.lock_head(head.origin)
            if stored != head:
                seen = "no head row" if stored is None else f"size {stored.size}"
                raise StorageError(
                    f"log {head.origin!r} changed under this writer: expected size "
                    f"{head.size}, found {seen}; another writer extended it, so "
                    "reload the tree from the stored head"
                )
            transaction.insert_checkpoints(checkpoint_rows)
            transaction.append(head, new_head, leaf_rows, node_rows)

    def write_checkpoints(self, checkpoint_rows: Sequence[tuple[int, str]]) -> None:
        """Store signed checkpoints that no append has carried yet."""
        if not checkpoint_rows:
            return
        with self.write() as transaction:
            transaction.insert_checkpoints(checkpoint_rows)

    def read_hashes(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Return the stored hashes of the given ``(level, node_index)`` subtrees."""
        keys = list(keys)
        if not keys:
            return {}
        with self.read() as reads:
            return reads.read_hashes(keys)

    def read_leaf_hashes(self, start: int, stop: int) -> list[bytes]:
        """Return the leaf hashes of leaves ``[start, stop)`` in order."""
        with self.read() as reads:
            return reads.read_leaf_column("leaf_hash", start, stop)

    def read_entries(self, start: int, stop: int) -> list[bytes]:
        """Return the entry bytes of leaves ``[start, stop)`` in order."""
        with self.read() as reads:
            return reads.read_leaf_column("entry", start, stop)

    def find_idempotency_keys(
        self, keys: Iterable[str]
    ) -> dict[str, tuple[int, bytes]]:
        """Return ``key -> (leaf index, entry)`` for the keys already stored."""
        keys = list(keys)
        if not keys:
            return {}
        with self.read() as reads:
            return reads.find_idempotency_keys(keys)

    def read_checkpoint(self, size: int) -> str | None:
        """Return the stored checkpoint note for ``size``, or None."""
        with self.read() as reads:
            return reads.read_checkpoint(size)

    def read_latest_checkpoint(self) -> tuple[int, str] | None:
        """Return ``(size, note)`` of the largest stored checkpoint, or None."""
        with self.read() as reads:
            return reads.read_latest_checkpoint()

    def read_log_keys(self) -> list[LogKey]:
        """Return every key of the log in the order it was introduced."""
        with self.read() as reads:
            return reads.read_log_keys()
