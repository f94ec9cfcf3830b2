"""Durable storage of the log: SQLAlchemy Core tables and the ``Store``.

The default database is an SQLite file in WAL mode with ``synchronous=FULL``,
so a committed batch survives a power cut. The schema uses only portable
types (BigInteger, LargeBinary, Text) so that the same tables work on
PostgreSQL. Four tables hold the log:

- ``log_head``: one row with the origin, tree size and root hash. Every write
  transaction locks and checks it first, so a second writer is detected
  instead of silently forking the tree.
- ``leaves``: leaf index, leaf hash, entry bytes and an optional
  idempotency key (unique).
- ``nodes``: the hash of every complete subtree above the leaves, keyed by
  ``(level, node_index)``: the subtree of ``2**level`` leaves starting at
  leaf ``node_index * 2**level``. Level 0 is the ``leaves`` table.
- ``checkpoints``: tree size to signed checkpoint note.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
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
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .errors import StorageError

__all__ = ["Head", "LeafRow", "Store", "metadata"]

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

# Statements on the write path are built once: building a Core statement
# costs more than running it against SQLite.
_LOCK_HEAD = (
    select(log_head.c.size, log_head.c.root)
    .where(log_head.c.origin == bindparam("head_origin"))
    .with_for_update()
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
    """Return the SQLAlchemy URL for a file path or a database URL."""
    text = os.fspath(path_or_url)
    if "://" not in text:
        return URL.create("sqlite", database=os.path.abspath(text))
    try:
        return make_url(text)
    except ArgumentError as err:
        raise StorageError(f"database URL {text!r} is invalid: {err}") from err


def _configure_sqlite(engine: Engine) -> None:
    """Make every SQLite connection durable and let the Store issue BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        # The sqlite3 module's own transaction handling skips BEGIN before
        # SELECT; turning it off lets _on_begin choose the lock mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A write transaction takes the write lock at BEGIN, so its read of
        # the head row cannot be overtaken by another process.
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")


class Store:
    """Reads and writes the log tables; one instance per open log.

    Every method runs in its own transaction. ``append`` is the only write
    path for leaves and nodes and commits them together with the new head.
    Writes go through one connection that stays open, guarded by a lock;
    reads take pooled connections and may run in parallel.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer: Connection | None = None
        self._writer_lock = threading.Lock()

    @classmethod
    def open(cls, path_or_url: str | os.PathLike[str]) -> Store:
        """Open (and create the tables of) an SQLite file or database URL."""
        url = _database_url(path_or_url)
        try:
            engine = create_engine(url)
        except (ArgumentError, SQLAlchemyError, ImportError) as err:
            raise StorageError(f"cannot open database {url!r}: {err}") from err
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        # NOTE: only SQLite is tested; other databases get the same portable
        # schema and row locks, but nothing has run against them yet.
        store = cls(engine)
        try:
            with store._write() as connection:
                metadata.create_all(connection)
        except StorageError:
            store.close()
            raise
        logger.debug("opened log database %s", url.render_as_string(hide_password=True))
        return store

    def close(self) -> None:
        """Close the writer connection and every pooled connection."""
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """Run a read transaction on a pooled connection."""
        try:
            with self.engine.connect() as connection, connection.begin():
                yield connection
        except SQLAlchemyError as err:
            raise StorageError(f"database operation failed: {err}") from err

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """Run a write transaction on the writer connection; commit on success."""
        with self._writer_lock:
            try:
                if self._writer is None:
                    self._writer = self.engine.connect().execution_options(
                        **{_WRITE_OPTION: True}
                    )
                with self._writer.begin():
                    yield self._writer
            except SQLAlchemyError as err:
                raise StorageError(f"database operation failed: {err}") from err

    # -- head ---------------------------------------------------------------

    def read_head(self) -> Head | None:
        """Return the head row, or None for a database without a log."""
        with self._read() as connection:
            rows = connection.execute(select(log_head)).all()
        if len(rows) > 1:
            origins = ", ".join(row.origin for row in rows)
            raise StorageError(
                f"database contains {len(rows)} logs ({origins}); expected one"
            )
        if not rows:
            return None
        row = rows[0]
        return Head(origin=row.origin, size=row.size, root=bytes(row.root))

    def create_head(self, origin: str, empty_root: bytes) -> Head:
        """Insert the head row of an empty log named ``origin``."""
        with self._write() as connection:
            existing = connection.execute(select(log_head.c.origin)).first()
            if existing is not None:
                raise StorageError(
                    f"database already contains the log {existing.origin!r}"
                )
            connection.execute(
                insert(log_head).values(origin=origin, size=0, root=empty_root)
            )
        return Head(origin=origin, size=0, root=empty_root)

    # -- writes -------------------------------------------------------------

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
        with self._write() as connection:
            row = connection.execute(_LOCK_HEAD, {"head_origin": head.origin}).first()
            if row is None or row.size != head.size or bytes(row.root) != head.root:
                seen = "no head row" if row is None else f"size {row.size}"
                raise StorageError(
                    f"log {head.origin!r} changed under this writer: expected size "
                    f"{head.size}, found {seen}; another process writes to the same "
                    "database, so close this log and reopen it"
                )
            self._insert_checkpoints(connection, checkpoint_rows)
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

    def write_checkpoints(self, checkpoint_rows: Sequence[tuple[int, str]]) -> None:
        """Store signed checkpoints that no ``append`` has carried yet."""
        if not checkpoint_rows:
            return
        with self._write() as connection:
            self._insert_checkpoints(connection, checkpoint_rows)

    @staticmethod
    def _insert_checkpoints(
        connection: Connection, checkpoint_rows: Sequence[tuple[int, str]]
    ) -> None:
        """Insert checkpoints, keeping the stored note where a size has one.

        Every checkpoint of a size carries the same root, because the head
        check in ``append`` keeps all writers on one tree, so either note of
        a size is as good as the other.
        """
        if not checkpoint_rows:
            return
        rows = [{"size": size, "note": note} for size, note in checkpoint_rows]
        dialect = connection.dialect.name
        if dialect in _INSERT_CHECKPOINT_IF_NEW:
            connection.execute(_INSERT_CHECKPOINT_IF_NEW[dialect], rows)
            return
        sizes = [row["size"] for row in rows]
        stored = set(
            connection.execute(_STORED_CHECKPOINT_SIZES, {"sizes": sizes}).scalars()
        )
        new_rows = [row for row in rows if row["size"] not in stored]
        if new_rows:
            connection.execute(insert(checkpoints), new_rows)

    # -- reads --------------------------------------------------------------

    def read_hashes(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Return the stored hashes of the given ``(level, node_index)`` subtrees.

        Level 0 is read from the leaves table. Keys that are not stored are
        missing from the result. At most two queries run, whatever the count.
        """
        leaf_indexes = []
        node_keys = []
        for level, index in keys:
            if level == 0:
                leaf_indexes.append(index)
            else:
                node_keys.append((level, index))

        found: dict[tuple[int, int], bytes] = {}
        if not leaf_indexes and not node_keys:
            return found
        with self._read() as connection:
            if leaf_indexes:
                rows = connection.execute(
                    _SELECT_LEAF_HASHES, {"indexes": leaf_indexes}
                )
                for index, digest in rows:
                    found[(0, index)] = bytes(digest)
            if node_keys:
                rows = connection.execute(
                    select(nodes.c.level, nodes.c.node_index, nodes.c.hash).where(
                        tuple_(nodes.c.level, nodes.c.node_index).in_(node_keys)
                    )
                )
                for level, index, digest in rows:
                    found[(level, index)] = bytes(digest)
        return found

    def read_leaf_hashes(self, start: int, stop: int) -> list[bytes]:
        """Return the leaf hashes of leaves ``[start, stop)`` in order."""
        with self._read() as connection:
            rows = connection.execute(
                select(leaves.c.leaf_hash)
                .where(leaves.c.leaf_index >= start, leaves.c.leaf_index < stop)
                .order_by(leaves.c.leaf_index)
            ).all()
        if len(rows) != stop - start:
            raise StorageError(
                f"leaves [{start}, {stop}) should be stored but {len(rows)} of "
                f"{stop - start} were found"
            )
        return [bytes(row.leaf_hash) for row in rows]

    def read_entries(self, start: int, stop: int) -> list[bytes]:
        """Return the entry bytes of leaves ``[start, stop)`` in order."""
        with self._read() as connection:
            rows = connection.execute(
                select(leaves.c.entry)
                .where(leaves.c.leaf_index >= start, leaves.c.leaf_index < stop)
                .order_by(leaves.c.leaf_index)
            ).all()
        if len(rows) != stop - start:
            raise StorageError(
                f"entries [{start}, {stop}) should be stored but {len(rows)} of "
                f"{stop - start} were found"
            )
        return [bytes(row.entry) for row in rows]

    def find_idempotency_keys(
        self, keys: Iterable[str]
    ) -> dict[str, tuple[int, bytes]]:
        """Return ``key -> (leaf index, entry)`` for the keys already stored."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self._read() as connection:
            rows = connection.execute(
                select(
                    leaves.c.idempotency_key, leaves.c.leaf_index, leaves.c.entry
                ).where(leaves.c.idempotency_key.in_(wanted))
            )
            return {key: (index, bytes(entry)) for key, index, entry in rows}

    def read_checkpoint(self, size: int) -> str | None:
        """Return the stored checkpoint note for ``size``, or None."""
        with self._read() as connection:
            return connection.execute(
                select(checkpoints.c.note).where(checkpoints.c.size == size)
            ).scalar_one_or_none()

    def read_latest_checkpoint(self) -> tuple[int, str] | None:
        """Return ``(size, note)`` of the largest stored checkpoint, or None."""
        with self._read() as connection:
            latest = select(func.max(checkpoints.c.size)).scalar_subquery()
            row = connection.execute(
                select(checkpoints.c.size, checkpoints.c.note).where(
                    checkpoints.c.size == latest
                )
            ).first()
        return None if row is None else (row.size, row.note)
