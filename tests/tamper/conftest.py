"""Fixtures of the tamper tests: one gate run, and served copies of its log.

The gate writes its log once per test session. Each served log is a copy
of it in a fresh SQLite file or PostgreSQL schema, served by the ledger's
HTTP server (uvicorn on 127.0.0.1) and tampered with SQL, under the
running server or before it opens the database (see ``Tampering``); the
server then appends the records the tampering says. The
detectors only read, so each (backend, tampering) is served once per
module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from enforcement import jcs
from enforcement.policy import load_policy
from enforcement.records import policy_record
from ledger.http_client import HttpLedgerClient
from ledger.server import LogService, ServerSettings
from tests.ledger.conftest import postgres_server  # noqa: F401 - a fixture
from tests.ledger.server.conftest import TOKEN, RunningServer
from tests.tamper.detectors import monitor_check
from tests.tamper.gate_run import T0, GateRun, run_gate
from tests.tamper.tampering import Tampering, copy_log


@dataclass
class ServedLog:
    """A copy of the gate's log behind a running ledger server."""

    base_url: str
    server: RunningServer


@pytest.fixture(scope="session")
def gate_run(tmp_path_factory) -> GateRun:
    return run_gate(tmp_path_factory.mktemp("gate"))


def _append_policy_records(base_url: str, count: int) -> None:
    policy = load_policy()
    client = HttpLedgerClient(base_url, TOKEN)
    try:
        for number in range(count):
            time = T0 + timedelta(hours=1, seconds=number)
            record = policy_record(policy.document(), policy.hash, time)
            client.append(jcs.canonical(record))
    finally:
        client.close()


@pytest.fixture(scope="module")
def serve(request, gate_run, tmp_path_factory):
    """Return ``serve(backend, tampering)``: the tampered log, served.

    ``tampering`` None serves the honest log. Every server is stopped after
    the module.
    """
    served: dict[tuple[str, str], ServedLog] = {}
    schemas: list[str] = []

    def _new_database(backend: str, directory: Path) -> str:
        if backend == "sqlite":
            return str(directory / "ledger.db")
        name, url = request.getfixturevalue("postgres_server").create_schema()
        schemas.append(name)
        return url

    def _serve(backend: str, tampering: Tampering | None) -> ServedLog:
        name = tampering.name if tampering is not None else "honest"
        if (backend, name) in served:
            return served[(backend, name)]
        directory = tmp_path_factory.mktemp(f"{backend}-{name}")
        url = _new_database(backend, directory)
        copy_log(gate_run, url)
        if tampering is not None and tampering.offline:
            tampering.apply(url, gate_run)
        settings = ServerSettings(
            database=url, signers=[gate_run.signer], write_token=TOKEN
        )
        server = RunningServer(LogService(settings)).start()
        log = ServedLog(server.base_url, server)
        served[(backend, name)] = log
        if tampering is not None and not tampering.offline:
            tampering.apply(url, gate_run)
        appended = tampering.appended if tampering is not None else 2
        _append_policy_records(log.base_url, appended)
        return log

    yield _serve
    for log in served.values():
        log.server.stop()
    for name in schemas:
        request.getfixturevalue("postgres_server").drop_schema(name)


@pytest.fixture(scope="module")
def honest_state(gate_run, tmp_path_factory) -> Path:
    """A monitor state taken from the honest log, before anyone tampered."""
    directory = tmp_path_factory.mktemp("honest-monitor")
    copy = directory / "ledger.db"
    copy_log(gate_run, str(copy))
    settings = ServerSettings(
        database=str(copy), signers=[gate_run.signer], write_token=TOKEN
    )
    server = RunningServer(LogService(settings)).start()
    try:
        state = directory / "state.json"
        report = monitor_check(server.base_url, gate_run.log_key, state)
        assert report.ok, report.message
    finally:
        server.stop()
    return state


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The database the log is tampered in; PostgreSQL skips when unreachable."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    return request.param
