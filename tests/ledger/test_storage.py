"""Store: durable SQLite settings, a portable schema, the head row, write errors."""

import sqlite3

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from ledger import StorageError
from ledger.storage import Head, LeafRow, Store, _database_url, metadata
from ledger.tree import EMPTY_ROOT, StoredTree

from .conftest import run_sql


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "store.db")
    yield store
    store.close()


def test_sqlite_is_wal_and_full_sync(store):
    with store.engine.connect() as connection:
        journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        connection.rollback()
    assert journal == "wal"
    assert synchronous == 2  # FULL


def test_schema_compiles_for_postgresql():
    ddl = []
    for table in metadata.sorted_tables:
        ddl.append(str(CreateTable(table).compile(dialect=postgresql.dialect())))
        for index in table.indexes:
            ddl.append(str(CreateIndex(index).compile(dialect=postgresql.dialect())))
    text = "\n".join(ddl)
    assert "BYTEA" in text
    assert "BIGINT" in text
    assert "WITHOUT ROWID" not in text
    assert "UNIQUE (idempotency_key)" in text


def test_tables(tmp_path, store):
    with sqlite3.connect(tmp_path / "store.db") as connection:
        names = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
    assert names == {
        "log_head",
        "leaves",
        "nodes",
        "checkpoints",
        "log_keys",
        "agentgate_schema_version",
    }


def test_head_created_once(store):
    assert store.read_head() is None
    head = store.create_head("one.test/log", EMPTY_ROOT)
    assert store.read_head() == head == Head("one.test/log", 0, EMPTY_ROOT)
    assert store.read_head("one.test/log") == head
    assert store.read_head("two.test/log") is None
    with pytest.raises(
        StorageError, match="database already contains the log 'one.test/log'"
    ):
        store.create_head("two.test/log", EMPTY_ROOT)


def test_create_head_again_returns_stored_head(store):
    first = store.create_head("one.test/log", EMPTY_ROOT)
    assert store.create_head("one.test/log", EMPTY_ROOT) == first


def test_contains_log_creates_nothing(tmp_path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    store = Store.open(path, prepare_schema=False)
    try:
        assert not store.contains_log()
    finally:
        store.close()
    with sqlite3.connect(path) as connection:
        count = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    assert count == (0,)


def test_postgresql_url_gets_psycopg():
    url = _database_url("postgresql://u@127.0.0.1:5432/test")
    assert url.drivername == "postgresql+psycopg"
    assert _database_url("postgresql+psycopg2://h/d").drivername == (
        "postgresql+psycopg2"
    )


def test_append_checks_head(store):
    head = store.create_head("one.test/log", EMPTY_ROOT)
    stale = Head(head.origin, 5, EMPTY_ROOT)
    with pytest.raises(StorageError, match="expected size 5, found size 0"):
        store.append(
            stale, Head(head.origin, 6, EMPTY_ROOT), [LeafRow(5, bytes(32), b"{}")], []
        )
    assert store.read_leaf_hashes(0, 0) == []


def test_duplicate_leaf_index_rejected(tmp_path, store):
    """A writer that skips the head lock cannot store a leaf index twice."""
    head = store.create_head("one.test/log", EMPTY_ROOT)
    run_sql(
        tmp_path / "store.db",
        "INSERT INTO leaves (leaf_index, leaf_hash, entry) VALUES (0, :h, :e)",
        h=bytes(32),
        e=b"{}",
    )
    with pytest.raises(
        StorageError, match="database rejected a duplicate leaf index"
    ):
        store.append(
            head, Head(head.origin, 1, EMPTY_ROOT), [LeafRow(0, bytes(32), b"{}")], []
        )
    assert store.read_head() == head


def test_read_hashes_missing_keys_absent(store):
    assert store.read_hashes([(0, 3), (2, 1)]) == {}


def test_read_leaf_hashes_short_range_is_damage(store):
    with pytest.raises(
        StorageError, match=r"leaves \[0, 2\) should be stored but 0 of 2 were found"
    ):
        store.read_leaf_hashes(0, 2)


def test_invalid_url_rejected():
    with pytest.raises(StorageError, match="is invalid"):
        Store.open("not a url://x")


def test_missing_directory_rejected(tmp_path):
    path = tmp_path / "missing" / "log.db"
    with pytest.raises(StorageError) as caught:
        Store.open(path)
    assert str(caught.value) == (
        f"database {path} failed: unable to open database file; check that its "
        "directory exists and that this user may create files there"
    )


def test_node_hashes_read_by_primary_key(tmp_path, statements):
    """Node lookups use the primary key; a row-value IN list scanned the table."""
    store = Store.open(tmp_path / "tree.db")
    try:
        tree = StoredTree(store, store.create_head("tree.test/log", EMPTY_ROOT))
        tree.append([f"leaf {i}".encode() for i in range(300)])
        wanted = [(level, 0) for level in range(1, 9)]
        wanted += [(1, index) for index in range(100)] + [(0, 7)]
        statements.start()
        found = store.read_hashes(wanted)
        node_queries = [s for s in statements.selects() if "FROM nodes" in s]
        statements.stop()
        connection = sqlite3.connect(tmp_path / "tree.db")
        plans = [
            row[3]
            for statement, parameters in statements.statements
            if "FROM nodes" in statement
            for row in connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
        connection.close()
    finally:
        store.close()

    assert set(found) == set(wanted)
    # 108 node keys: one statement for 64, one for the 44 left (padded to 64).
    assert len(node_queries) == 2
    assert not any("SCAN nodes" in plan for plan in plans), plans
    assert any("USING PRIMARY KEY" in plan for plan in plans), plans


def test_simultaneous_first_connections_all_switch_to_wal(tmp_path):
    # Connections that open a new file at once race for the lock that the
    # switch to WAL needs; SQLite fails the losers without waiting, so the
    # Store must retry. Many rounds make the race likely.
    import threading

    from ledger.storage import Store

    for round_number in range(40):
        path = tmp_path / f"race-{round_number}.db"
        barrier = threading.Barrier(6)
        errors = []

        def open_store():
            barrier.wait()
            try:
                Store.open(path).close()
            except Exception as err:  # noqa: BLE001 - reported by the assert
                errors.append(err)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == [], f"round {round_number}: {errors[0]!r}"
