"""Schema migrations of the log database, run with Alembic from code.

Revisions live in ``versions/`` with the ids ``0001``, ``0002``, ... in order,
so a larger number is a newer schema. No ``alembic.ini`` is needed: the
Alembic ``Config`` is built here and handed the connection of an open
transaction, and ``env.py`` runs the migrations on it. The current revision
is kept in the table ``agentgate_schema_version`` rather than Alembic's
default ``alembic_version``, so that a log can share a database schema with
an application that has Alembic migrations of its own.

What happens when a log database is opened (``prepare_schema``):

- a database without the log tables is brought to the current revision;
- a database at the current revision is used as it is;
- an older schema is rejected with a message that says to run
  ``agentgate log migrate``. Upgrading is a separate, explicit step because
  many processes, possibly of different AgentGate versions, share one
  database, and an upgrade should run once, by the operator, after a
  backup, not as a side effect of whichever process opens the log first;
- a newer schema is rejected: this code would not know its tables.

A database written before migrations existed has the four tables of
revision ``0001`` and no version table. ``upgrade_database`` records it as
``0001`` and upgrades it from there.

To add a revision, copy the newest file in ``versions/``, give it the next
number as ``revision`` and the previous one as ``down_revision``, append
the number to ``REVISIONS`` and change the tables in ``ledger.storage`` to
match; ``tests/ledger/test_migrations.py`` checks that both agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from ..errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

    from ..storage import Store

__all__ = [
    "ADVISORY_LOCK_KEY",
    "HEAD_REVISION",
    "REVISIONS",
    "VERSION_TABLE",
    "SchemaState",
    "alembic_config",
    "prepare_schema",
    "read_schema_state",
    "upgrade_database",
]

logger = logging.getLogger(__name__)

# Every revision in ``versions/``, oldest first.
REVISIONS = ("0001", "0002", "0003")
HEAD_REVISION = REVISIONS[-1]
VERSION_TABLE = "agentgate_schema_version"
# PostgreSQL advisory lock taken while a schema or a log head row is
# created, so that concurrent first opens take turns. The value is an
# arbitrary constant: the first 8 bytes of SHA-256("agentgate ledger schema")
# read as a signed 64-bit integer.
ADVISORY_LOCK_KEY = 0x38C35F945DC11FC7
# The tables of revision 0001, which a database from before migrations has.
_FIRST_TABLES = frozenset({"log_head", "leaves", "nodes", "checkpoints"})
_ALL_TABLES = _FIRST_TABLES | {"log_keys"}
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its schema revision and which log tables exist.

    ``revision`` is None for a database without a version row; such a
    database is new when it has none of the log tables.
    """

    revision: str | None
    tables: frozenset[str]

    @property
    def is_new(self) -> bool:
        """Whether the database has no version row and none of the log tables."""
        return self.revision is None and not self.tables & _ALL_TABLES

    @property
    def is_unversioned_first_revision(self) -> bool:
        """Whether the database has exactly the tables of 0001 and no version row."""
        return self.revision is None and self.tables & _ALL_TABLES == _FIRST_TABLES

    def effective_revision(self) -> str | None:
        """Return the revision, counting an unversioned 0001 database as 0001."""
        if self.is_unversioned_first_revision:
            return REVISIONS[0]
        return self.revision


def read_schema_state(connection: Connection) -> SchemaState:
    """Read the schema revision and the table names (two or three queries)."""
    tables = frozenset(inspect(connection).get_table_names())
    revision = None
    if VERSION_TABLE in tables:
        versions = (
            connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            .scalars()
            .all()
        )
        if len(versions) > 1:
            raise StorageError(
                f"table {VERSION_TABLE} has {len(versions)} rows ({versions}); "
                "expected one, because AgentGate's migrations are linear"
            )
        revision = versions[0] if versions else None
    return SchemaState(revision, tables)


def _check_known(state: SchemaState, database: str) -> str | None:
    """Return the effective revision; raise unless this code knows it."""
    revision = state.effective_revision()
    if revision is None:
        if state.is_new:
            return None
        present = ", ".join(sorted(state.tables & _ALL_TABLES))
        raise StorageError(
            f"database {database} has the log tables {present} but no schema "
            f"version in {VERSION_TABLE}; it was not created by AgentGate or is "
            "damaged, so inspect it before use"
        )
    if revision in REVISIONS:
        return revision
    if revision.isdigit() and int(revision) > int(HEAD_REVISION):
        raise StorageError(
            f"database {database} has schema revision {revision}, newer than "
            f"this AgentGate knows (up to {HEAD_REVISION}); upgrade AgentGate to "
            "open it"
        )
    raise StorageError(
        f"database {database} has schema revision {revision!r}, which is not "
        f"one of AgentGate's ({', '.join(REVISIONS)}); {VERSION_TABLE} may "
        "belong to another application"
    )


def prepare_schema(store: Store, database: str) -> None:
    """Bring a new database to the current schema; reject any other revision.

    ``database`` is the URL to name in messages, without a password. The
    common case, a database at the current revision, costs one read
    transaction and does not import Alembic.
    """
    with store.read() as reads:
        state = read_schema_state(reads.connection)
    if state.revision == HEAD_REVISION:
        return
    revision = _check_known(state, database)
    if revision is None:
        with store.write() as transaction:
            transaction.serialize_creation()
            # Another process may have created the schema while we waited.
            state = read_schema_state(transaction.connection)
            revision = _check_known(state, database)
            if revision is None:
                _run_alembic(transaction.connection, "upgrade", HEAD_REVISION)
                logger.info("created the log schema %s in %s", HEAD_REVISION, database)
                revision = HEAD_REVISION
    if revision != HEAD_REVISION:
        raise StorageError(
            f"database {database} has schema revision {revision}, older than "
            f"this AgentGate's {HEAD_REVISION}; back it up and run: agentgate log "
            f"migrate --db {database}"
        )


def upgrade_database(path_or_url: str) -> tuple[str | None, str]:
    """Upgrade a log database to the current schema in one transaction.

    Returns the revision before (None for a new database) and after. A
    database from before migrations is recorded as 0001 first. A newer or
    unknown revision raises ``StorageError`` and changes nothing.
    """
    from ..storage import Store

    store = Store.open(path_or_url, prepare_schema=False)
    database = store.name
    try:
        with store.write() as transaction:
            transaction.serialize_creation()
            state = read_schema_state(transaction.connection)
            before = _check_known(state, database)
            if state.is_unversioned_first_revision:
                _run_alembic(transaction.connection, "stamp", REVISIONS[0])
            if before != HEAD_REVISION:
                _run_alembic(transaction.connection, "upgrade", HEAD_REVISION)
    finally:
        store.close()
    if before != HEAD_REVISION:
        logger.info(
            "upgraded the log schema of %s from %s to %s",
            database,
            before or "nothing",
            HEAD_REVISION,
        )
    return before, HEAD_REVISION


def alembic_config(connection: Connection) -> Config:
    """Return an Alembic ``Config`` whose migrations run on ``connection``.

    The connection must be inside a transaction; the migrations run in it
    and are committed or rolled back with it.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def _run_alembic(connection: Connection, command_name: str, revision: str) -> None:
    from alembic import command

    getattr(command, command_name)(alembic_config(connection), revision)
