"""The gate's own view of the log: forks and rollbacks stop the tool."""

import pytest

from enforcement import SealError
from ledger import open_ledger
from ledger.client import LocalLedgerClient
from tests.enforcement.conftest import LOG_SIGNER


def _fork(harness, tmp_path, entries: int) -> None:
    """Point the gate's client at another log signed by the same key."""
    forked = open_ledger(tmp_path / "fork.db", LOG_SIGNER, now=harness.clock())
    for n in range(entries):
        forked.append(b'{"n":%d,"type":"filler"}' % n)
    harness.client.inner = LocalLedgerClient(forked)
    return forked


def test_growing_log_is_accepted(make_harness):
    harness = make_harness()
    session = harness.gate.session("Read my balance")

    for _ in range(5):
        session.call("get_balance", {}, lambda: 10)

    assert harness.gate._view.size == harness.ledger.size


def test_forked_log_with_same_key_stops_tool(make_harness, tmp_path):
    harness = make_harness(tampering=True)
    session = harness.gate.session("Read my balance")
    session.call("get_balance", {}, lambda: 10)
    forked = _fork(harness, tmp_path, entries=harness.ledger.size + 3)
    ran = []

    with pytest.raises(SealError, match="not consistent with the gate's checkpoint"):
        session.call("get_balance", {}, lambda: ran.append(1))

    assert ran == []
    forked.close()


def test_rolled_back_log_stops_tool(make_harness, tmp_path):
    harness = make_harness(tampering=True)
    session = harness.gate.session("Read my balance")
    for _ in range(4):
        session.call("get_balance", {}, lambda: 10)
    forked = _fork(harness, tmp_path, entries=0)
    ran = []

    with pytest.raises(SealError, match="no consistency proof|not consistent|forked"):
        session.call("get_balance", {}, lambda: ran.append(1))

    assert ran == []
    forked.close()


def test_same_size_with_other_root_is_a_fork(make_harness):
    harness = make_harness()
    view = harness.gate._view
    session = harness.gate.session("Read my balance")
    session.call("get_balance", {}, lambda: 10)
    latest = view._roots[view.size]

    class Forged:
        size = view.size
        root = bytes(b ^ 1 for b in latest)

    with pytest.raises(SealError, match="two checkpoints of size .* forked"):
        view.accept(Forged)
