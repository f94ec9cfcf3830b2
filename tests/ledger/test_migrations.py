"""Schema migrations: the migrated schema is the declared one, on both backends.

Also: a new database is created at the current revision, an older schema is
rejected on open and upgraded by ``agentgate log migrate``, and a newer or
unknown schema is rejected.
"""

import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import inspect

from enforcement.cli import main
from ledger import Ledger, StorageError
from ledger.keys import LogKey
from ledger.migrations import (
    HEAD_REVISION,
    REVISIONS,
    VERSION_TABLE,
    alembic_config,
    read_schema_state,
    upgrade_database,
)
from ledger.storage import Store, metadata

from .conftest import FIXED_NOW, ORIGIN, engine_for, record, run_sql
from .notes import check_receipt


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request, tmp_path):
    """Two empty databases of one backend: paths or PostgreSQL schema URLs."""
    if request.param == "sqlite":
        return str(tmp_path / "a.db"), str(tmp_path / "b.db")
    server = request.getfixturevalue("postgres_server")
    names_and_urls = [server.create_schema(), server.create_schema()]
    request.addfinalizer(
        lambda: [server.drop_schema(name) for name, _ in names_and_urls]
    )
    return tuple(url for _, url in names_and_urls)


def _reflect(url):
    """Return the tables, columns, keys and indexes of a database, without names."""
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            shape = {}
            for table in sorted(inspector.get_table_names()):
                if table == VERSION_TABLE:
                    continue
                columns = [
                    (
                        column["name"],
                        column["type"].compile(dialect=engine.dialect),
                        column["nullable"],
                    )
                    for column in inspector.get_columns(table)
                ]
                primary_key = inspector.get_pk_constraint(table)["constrained_columns"]
                unique = sorted(
                    tuple(constraint["column_names"])
                    for constraint in inspector.get_unique_constraints(table)
                )
                indexes = sorted(
                    (tuple(index["column_names"]), index["unique"])
                    for index in inspector.get_indexes(table)
                )
                shape[table] = (columns, primary_key, unique, indexes)
            if engine.dialect.name == "sqlite":
                rows = connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE sql LIKE '%WITHOUT ROWID%'"
                )
                shape["without rowid"] = sorted(row[0] for row in rows)
            return shape
    finally:
        engine.dispose()


def _migrate(url, *args):
    return CliRunner().invoke(main, ["log", "migrate", "--db", str(url), *args])


def _set_revision(url, revision):
    run_sql(url, f"UPDATE {VERSION_TABLE} SET version_num = :v", v=revision)


def _downgrade_to_unversioned_first_revision(url):
    """Turn a current database into one written before migrations existed."""
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), REVISIONS[0])
            connection.exec_driver_sql(f"DROP TABLE {VERSION_TABLE}")
    finally:
        engine.dispose()


# -- the schema ---------------------------------------------------------------


def test_revisions_match_script_directory():
    scripts = ScriptDirectory.from_config(alembic_config(None))
    history = [script.revision for script in scripts.walk_revisions()]
    assert list(reversed(history)) == list(REVISIONS)
    assert scripts.get_current_head() == HEAD_REVISION


def test_new_database_created_at_head(db_url):
    store = Store.open(db_url)
    try:
        with store.read() as reads:
            state = read_schema_state(reads.connection)
    finally:
        store.close()
    assert state.revision == HEAD_REVISION
    assert {table.name for table in metadata.sorted_tables} < state.tables


def test_migrated_schema_matches_metadata(db_url):
    Store.open(db_url).close()
    engine = engine_for(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_migrated_schema_equals_create_all(two_databases):
    migrated, declared = two_databases
    Store.open(migrated).close()
    engine = engine_for(declared)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
    finally:
        engine.dispose()

    shape = _reflect(migrated)
    assert shape == _reflect(declared)
    assert set(shape) >= {"log_head", "leaves", "nodes", "checkpoints", "log_keys"}
    if "without rowid" in shape:
        assert shape["without rowid"] == ["nodes"]


def test_downgrade_and_upgrade_again(db_url):
    Store.open(db_url).close()
    before = _reflect(db_url)
    engine = engine_for(db_url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(_reflect(db_url)) <= {"without rowid"}
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()
    assert _reflect(db_url) == before


# -- opening older, newer and foreign schemas ---------------------------------


def test_unversioned_log_rejected_then_migrated(db_url, signer):
    with Ledger.open(db_url, signer, now=FIXED_NOW) as ledger:
        ledger.append_batch([(record(i), None) for i in range(5)])
        root = ledger.root()
    _downgrade_to_unversioned_first_revision(db_url)

    with pytest.raises(
        StorageError,
        match=r"has schema revision 0001, older than this AgentGate's 0003; back it "
        r"up and run: agentgate log migrate --db ",
    ):
        Ledger.open(db_url, signer)
    result = CliRunner().invoke(main, ["log", "checkpoint", "--db", db_url])
    assert result.exit_code == 1
    assert "older than this AgentGate's 0003" in result.stderr

    result = _migrate(db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "schema upgraded from revision 0001 to 0003\n"

    with Ledger.open(db_url, signer) as ledger:
        assert ledger.root(6) == root
        assert ledger.log_keys == [LogKey(str(signer.verifier_key), 0)]
        receipt = ledger.append(record(9))
    assert check_receipt(receipt.text, signer.verifier_key, ORIGIN)[:1] == (6,)

    again = _migrate(db_url)
    assert again.exit_code == 0
    assert again.stdout == "schema already at revision 0003\n"


def test_migrate_creates_new_database(db_url):
    result = _migrate(db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "schema upgraded from revision none to 0003\n"
    assert upgrade_database(db_url) == (HEAD_REVISION, HEAD_REVISION)


def test_newer_schema_rejected(db_url, signer):
    Ledger.open(db_url, signer, now=FIXED_NOW).close()
    _set_revision(db_url, "0999")
    message = (
        "has schema revision 0999, newer than this AgentGate knows (up to 0003); "
        "upgrade AgentGate to open it"
    )
    with pytest.raises(StorageError, match=r"newer than this AgentGate knows"):
        Ledger.open(db_url, signer)
    result = _migrate(db_url)
    assert result.exit_code == 1
    assert message in result.stderr
    assert run_sql(db_url, f"SELECT version_num FROM {VERSION_TABLE}")[0][0] == "0999"


def test_unknown_revision_rejected(db_url):
    Store.open(db_url).close()
    _set_revision(db_url, "ae1027a6acf")
    with pytest.raises(
        StorageError,
        match=r"has schema revision 'ae1027a6acf', which is not one of AgentGate's "
        r"\(0001, 0002, 0003\); agentgate_schema_version may belong to another application",
    ):
        Store.open(db_url)


def test_partial_log_tables_rejected(db_url):
    run_sql(db_url, "CREATE TABLE log_head (origin TEXT PRIMARY KEY)")
    with pytest.raises(
        StorageError,
        match=r"has the log tables log_head but no schema version in "
        r"agentgate_schema_version; it was not created by AgentGate or is damaged",
    ):
        Store.open(db_url)


def test_other_tables_are_left_alone(db_url, signer):
    run_sql(db_url, "CREATE TABLE application_data (id INTEGER PRIMARY KEY)")
    with Ledger.open(db_url, signer, now=FIXED_NOW) as ledger:
        assert ledger.size == 1
    assert run_sql(db_url, "SELECT count(*) FROM application_data") == [(0,)]


def test_concurrent_first_opens_create_one_log(db_url, signer):
    """Four threads open a new database at once; one schema, one key record."""
    barrier = threading.Barrier(4)
    sizes = []
    errors = []

    def open_once():
        barrier.wait()
        try:
            with Ledger.open(db_url, signer, now=FIXED_NOW) as ledger:
                sizes.append(ledger.size)
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sizes == [1, 1, 1, 1]
    assert run_sql(db_url, "SELECT count(*) FROM leaves") == [(1,)]
    assert run_sql(db_url, "SELECT count(*) FROM log_keys") == [(1,)]
