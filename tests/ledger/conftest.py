"""Shared fixtures for the ledger tests: a fixed test key, logs on both backends.

Tests that take ``db_url`` (or ``open_log``) run twice: on an SQLite file in
a tmp dir and on PostgreSQL. Each PostgreSQL test gets a schema of its own,
selected through the connection's ``search_path`` and dropped afterwards.
The server is ``postgresql+psycopg://postgres@127.0.0.1:5432/test`` unless
``AGENTGATE_TEST_PG_URL`` names another. When it is not reachable, the
PostgreSQL cases skip with a message that tells how to run them.
"""

import hashlib
import os
import secrets
from datetime import datetime, timezone

import pytest
import rfc8785
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ledger import Ledger, Signer

ORIGIN = "agentgate.test/log"
# Deterministic test keys: the seed is SHA-256 of a fixed label.
TEST_SEED = hashlib.sha256(b"agentgate ledger tests: " + ORIGIN.encode()).digest()
OTHER_SEED = hashlib.sha256(b"agentgate ledger tests: second key").digest()
THIRD_SEED = hashlib.sha256(b"agentgate ledger tests: third key").digest()
FIXED_NOW = datetime(2026, 12, 4, 10, 0, 0, 123456, tzinfo=timezone.utc)

PG_URL_VARIABLE = "AGENTGATE_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def record(number, **fields):
    """Return the canonical bytes of a small test record."""
    body = {"type": "decision", "version": 1, "n": number}
    body.update(fields)
    return rfc8785.dumps(body)


def engine_for(url):
    """Return an engine without a pool for a log database path or URL."""
    text_url = str(url)
    if "://" not in text_url:
        text_url = f"sqlite:///{os.path.abspath(text_url)}"
    return create_engine(text_url, poolclass=NullPool)


def run_sql(url, statement, **parameters):
    """Run one SQL statement on the database at ``url`` and return its rows."""
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement), parameters)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


class PostgresServer:
    """The PostgreSQL server of the tests; hands out throwaway schemas."""

    def __init__(self, url):
        self.url = make_url(url)
        self.engine = create_engine(self.url, poolclass=NullPool)

    def create_schema(self):
        """Create an empty schema; return its name and a URL that selects it."""
        name = "agentgate_test_" + secrets.token_hex(6)
        with self.engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        url = self.url.update_query_dict({"options": f"-csearch_path={name}"})
        return name, url.render_as_string(hide_password=False)

    def drop_schema(self, name):
        """Drop a schema and everything in it, failing rather than waiting forever."""
        with self.engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture(scope="session")
def postgres_server():
    """The reachable PostgreSQL server, or a skip with how to provide one."""
    url = os.environ.get(PG_URL_VARIABLE, DEFAULT_PG_URL)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip(
            "psycopg is not installed; install agentgate-runtime[postgres] to run "
            "the PostgreSQL tests"
        )
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    server = PostgresServer(url)
    try:
        with server.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        server.engine.dispose()
        pytest.skip(
            f"PostgreSQL not reachable at {where}; start it or set "
            f"{PG_URL_VARIABLE} ({type(err.orig or err).__name__})"
        )
    yield server
    server.engine.dispose()


@pytest.fixture
def pg_url(postgres_server):
    """The URL of a fresh, empty PostgreSQL schema, dropped after the test."""
    name, url = postgres_server.create_schema()
    yield url
    postgres_server.drop_schema(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A log database that does not exist yet: an SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "log.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def signer():
    return Signer.from_seed(ORIGIN, TEST_SEED)


@pytest.fixture
def other_signer():
    return Signer.from_seed(ORIGIN, OTHER_SEED)


@pytest.fixture
def third_signer():
    return Signer.from_seed(ORIGIN, THIRD_SEED)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "log.db"


@pytest.fixture
def open_log(db_url, signer):
    """Return a function that opens the test log; every log is closed afterwards."""
    opened = []

    def _open(signers=None, **options):
        options.setdefault("now", FIXED_NOW)
        chosen = signer if signers is None else signers
        ledger = Ledger.open(db_url, chosen, **options)
        opened.append(ledger)
        return ledger

    yield _open
    for ledger in opened:
        ledger.close()


class StatementLog:
    """SQL statements sent to any database while it is recording."""

    def __init__(self):
        self.statements = []
        self.recording = False

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if self.recording:
            self.statements.append((statement, parameters))

    def start(self):
        self.statements.clear()
        self.recording = True

    def stop(self):
        self.recording = False
        return list(self.statements)

    def selects(self):
        return [
            s for s, _ in self.statements if s.lstrip().upper().startswith("SELECT")
        ]


@pytest.fixture
def statements():
    """Record every SQL statement executed through SQLAlchemy."""
    log = StatementLog()
    event.listen(Engine, "before_cursor_execute", log)
    yield log
    event.remove(Engine, "before_cursor_execute", log)
