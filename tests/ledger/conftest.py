"""Shared fixtures for the ledger tests: a fixed test key, logs in tmp dirs."""

import hashlib
from datetime import datetime, timezone

import pytest
import rfc8785
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ledger import Ledger, Signer

ORIGIN = "agentgate.test/log"
# Deterministic test keys: the seed is SHA-256 of a fixed label.
TEST_SEED = hashlib.sha256(b"agentgate ledger tests: " + ORIGIN.encode()).digest()
OTHER_SEED = hashlib.sha256(b"agentgate ledger tests: second key").digest()
FIXED_NOW = datetime(2026, 12, 4, 10, 0, 0, 123456, tzinfo=timezone.utc)


def record(number, **fields):
    """Return the canonical bytes of a small test record."""
    body = {"type": "decision", "version": 1, "n": number}
    body.update(fields)
    return rfc8785.dumps(body)


@pytest.fixture
def signer():
    return Signer.from_seed(ORIGIN, TEST_SEED)


@pytest.fixture
def other_signer():
    return Signer.from_seed(ORIGIN, OTHER_SEED)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "log.db"


@pytest.fixture
def open_log(db_path, signer):
    """Return a function that opens the test log; every log is closed afterwards."""
    opened = []

    def _open(signers=None, **options):
        options.setdefault("now", FIXED_NOW)
        chosen = signer if signers is None else signers
        ledger = Ledger.open(db_path, chosen, **options)
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
