"""Checkpoints signed with the log key over a rewritten tree, and the honest log,
on SQLite and on PostgreSQL.

A fork here is made in the database: a leaf is rewritten, the stored tree
rebuilt over it and the checkpoints that cover it removed, so the ledger
signs the rewritten tree with the log's own key when it opens the
database. Every signature verifies; only history shows the fork.
"""

import pytest

from ledger import Ledger
from ledger.errors import StorageError
from tests.tamper.detectors import audit_of, monitor_of, receipts_of
from tests.tamper.tampering import FORKED_LARGER, FORKED_SAME_SIZE, INSERTED, copy_log
from verifier import Outcome


# -- the honest log, grown by two records --------------------------------------------


def test_honest_log_passes_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, None), gate_run)
    assert result.ok
    assert result.served_size == 23


def test_honest_log_passes_monitor(serve, gate_run, honest_state, tmp_path, backend):
    served = serve(backend, None)
    report = monitor_of(served, gate_run, honest_state, tmp_path, recheck="all")
    assert report.outcome == Outcome.OK
    assert report.message == "tree size 23 extends size 21"


def test_honest_log_passes_audit(serve, gate_run, honest_state, tmp_path, backend):
    result = audit_of(serve(backend, None), gate_run, honest_state, tmp_path)
    assert result.findings == []
    assert result.entries == 23


# -- same size, another root ---------------------------------------------------------


def test_same_size_fork_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, FORKED_SAME_SIZE), gate_run)
    pairs = [(first, second) for first, second, _ in result.inconsistent]

    assert result.first_bad_index == 11
    # The first tree that holds leaf 11 is the first that does not extend.
    assert pairs[0] == (12, 21)
    assert (21, 21) in pairs
    # The forked log proves its own entries.
    assert result.unproved == []


def test_same_size_fork_found_by_monitor(
    serve, gate_run, honest_state, tmp_path, backend
):
    served = serve(backend, FORKED_SAME_SIZE)
    report = monitor_of(served, gate_run, honest_state, tmp_path)

    assert report.outcome == Outcome.FORK
    assert report.exit_code == 6
    assert (report.old_size, report.new_size) == (21, 21)
    assert report.first_bad_index == 11
    assert "leaf 11 differs from the leaf seen before" in report.message


def test_same_size_fork_found_by_audit(
    serve, gate_run, honest_state, tmp_path, backend
):
    served = serve(backend, FORKED_SAME_SIZE)
    result = audit_of(served, gate_run, honest_state, tmp_path)

    assert result.first_bad()["log.fork"] == 11
    assert result.first_bad()["decision.approval"] == 11
    assert "log.root" not in result.first_bad()


# -- a larger size that does not extend the honest tree ------------------------------


def test_larger_fork_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, FORKED_LARGER), gate_run)
    pairs = [(first, second) for first, second, _ in result.inconsistent]

    assert result.first_bad_index == 16
    assert pairs[0] == (17, 23)
    assert pairs[-1] == (21, 23)
    assert result.unproved == []


def test_larger_fork_found_by_monitor(serve, gate_run, honest_state, tmp_path, backend):
    served = serve(backend, FORKED_LARGER)
    report = monitor_of(served, gate_run, honest_state, tmp_path)

    assert report.outcome == Outcome.FORK
    assert (report.old_size, report.new_size) == (21, 23)
    assert report.first_bad_index == 16
    assert report.message.startswith(
        "fork: the signed checkpoint of size 23 does not extend size 21 seen before"
    )


def test_larger_fork_found_by_audit(serve, gate_run, honest_state, tmp_path, backend):
    result = audit_of(serve(backend, FORKED_LARGER), gate_run, honest_state, tmp_path)

    assert result.first_bad()["log.fork"] == 16
    assert result.first_bad()["revocation.signature"] == 16
    assert "log.root" not in result.first_bad()


# -- the ledger itself ----------------------------------------------------------------


def test_ledger_refuses_changed_last_leaf(tmp_path, gate_run):
    # Inserting a row moves every later row, the last leaf included, and the
    # ledger checks the last leaf against the head when it opens the log.
    database = str(tmp_path / "ledger.db")
    copy_log(gate_run, database)
    INSERTED.apply(database, gate_run)

    with pytest.raises(StorageError, match="the database is damaged"):
        Ledger.open(database, gate_run.signer)
