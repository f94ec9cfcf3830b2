"""Rows of the log database changed, deleted, reordered, inserted or cut off.

Each tampering is done with SQL in the ``leaves`` table (or, for the
truncation, in every table) of a copy of a real gate's log, on SQLite and
on PostgreSQL. Each of the three detectors must find it and name the first
index that differs from the honest log.
"""

from tests.tamper.detectors import audit_of, monitor_of, receipts_of
from tests.tamper.tampering import (
    CHANGED,
    CHANGED_BYTES_ONLY,
    DELETED,
    INSERTED,
    REORDERED,
    TRUNCATED,
)
from verifier import Outcome


def first_error_index(result):
    return min(f.index for f in result.errors if f.index is not None)


def other_bytes(index):
    return (index, f"the log serves other bytes at index {index} than its receipt")


# -- a changed row: entry and leaf hash -------------------------------------------


def test_changed_row_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, CHANGED), gate_run)

    assert result.first_bad_index == 5
    assert result.changed == [other_bytes(5)]
    # Leaf 4's proof runs through leaf 5's hash, so it fails as well.
    assert [index for index, _ in result.unproved] == [4]


def test_changed_row_found_by_monitor(serve, gate_run, honest_state, tmp_path, backend):
    report = monitor_of(serve(backend, CHANGED), gate_run, honest_state, tmp_path)

    assert report.outcome == Outcome.INCONSISTENT
    assert report.first_bad_index == 5
    assert (report.old_size, report.new_size) == (21, 23)
    assert report.message.endswith("they change leaf 5 seen before")


def test_changed_row_found_by_audit(serve, gate_run, honest_state, tmp_path, backend):
    result = audit_of(serve(backend, CHANGED), gate_run, honest_state, tmp_path)

    assert result.first_bad()["log.fork"] == 5
    assert result.first_bad()["session.previous"] == 5
    assert "log.root" in result.first_bad()
    assert first_error_index(result) == 5


# -- a changed entry whose stored leaf hash was left as it was ----------------------
# The hash tiles are unchanged; only hashing the entries finds it.


def test_changed_entry_bytes_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, CHANGED_BYTES_ONLY), gate_run)

    assert result.first_bad_index == 7
    assert result.changed == [other_bytes(7)]
    assert result.unproved == []


def test_changed_entry_bytes_found_by_monitor(
    serve, gate_run, honest_state, tmp_path, backend
):
    served = serve(backend, CHANGED_BYTES_ONLY)
    report = monitor_of(served, gate_run, honest_state, tmp_path, recheck="all")

    assert report.outcome == Outcome.ENTRY
    assert report.exit_code == 9
    assert report.first_bad_index == 7
    assert (report.old_size, report.new_size) == (21, 23)
    assert report.message.startswith("entry mismatch: entry 7 hashes to ")
    assert report.message.endswith("the entry changed after it was seen")


def test_changed_entry_bytes_missed_without_recheck(
    serve, gate_run, honest_state, tmp_path, backend
):
    # Only the two new entries are hashed; entry 7 waits for its bundle's turn.
    served = serve(backend, CHANGED_BYTES_ONLY)
    report = monitor_of(served, gate_run, honest_state, tmp_path, recheck=0)
    assert report.ok, report.message


def test_changed_entry_bytes_found_by_audit(
    serve, gate_run, honest_state, tmp_path, backend
):
    served = serve(backend, CHANGED_BYTES_ONLY)
    result = audit_of(served, gate_run, honest_state, tmp_path)

    assert result.first_bad()["log.entry"] == 7
    assert result.first_bad()["log.fork"] == 7
    assert first_error_index(result) == 7
    assert result.errors[0].message.startswith("entry 7 hashes to ")


# -- a deleted row ------------------------------------------------------------------


def test_deleted_row_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, DELETED), gate_run)

    assert result.first_bad_index == 9
    assert result.changed == [other_bytes(index) for index in range(9, 20)]


def test_deleted_row_found_by_monitor(serve, gate_run, honest_state, tmp_path, backend):
    report = monitor_of(serve(backend, DELETED), gate_run, honest_state, tmp_path)

    assert report.outcome == Outcome.INCONSISTENT
    assert report.first_bad_index == 9
    assert report.message.endswith("they change leaf 9 seen before")


def test_deleted_row_found_by_audit(serve, gate_run, honest_state, tmp_path, backend):
    result = audit_of(serve(backend, DELETED), gate_run, honest_state, tmp_path)

    assert result.first_bad()["log.fork"] == 9
    # Without the monitor's leaves, the missing approval shows at the decision
    # that cites it.
    assert result.first_bad()["decision.approval"] == 10
    assert first_error_index(result) == 9


# -- two rows swapped ---------------------------------------------------------------


def test_reordered_rows_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, REORDERED), gate_run)

    assert result.first_bad_index == 14
    assert result.changed == [other_bytes(14), other_bytes(15)]


def test_reordered_rows_found_by_monitor(
    serve, gate_run, honest_state, tmp_path, backend
):
    report = monitor_of(serve(backend, REORDERED), gate_run, honest_state, tmp_path)

    assert report.outcome == Outcome.INCONSISTENT
    assert report.first_bad_index == 14


def test_reordered_rows_found_by_audit(
    serve, gate_run, honest_state, tmp_path, backend
):
    result = audit_of(serve(backend, REORDERED), gate_run, honest_state, tmp_path)

    assert result.first_bad()["log.fork"] == 14
    assert result.first_bad()["outcome.decision"] == 14
    assert first_error_index(result) == 14


# -- a forged row inserted ----------------------------------------------------------


def test_inserted_row_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, INSERTED), gate_run)

    assert result.first_bad_index == 12
    assert result.changed == [other_bytes(index) for index in range(12, 21)]


def test_inserted_row_found_by_monitor(
    serve, gate_run, honest_state, tmp_path, backend
):
    report = monitor_of(serve(backend, INSERTED), gate_run, honest_state, tmp_path)

    assert report.outcome == Outcome.INCONSISTENT
    assert report.first_bad_index == 12


def test_inserted_row_found_by_audit(serve, gate_run, honest_state, tmp_path, backend):
    result = audit_of(serve(backend, INSERTED), gate_run, honest_state, tmp_path)

    assert result.first_bad()["log.fork"] == 12
    # The forged copy reuses the id of the payment at leaf 5.
    assert result.first_bad()["record.format"] == 12
    assert first_error_index(result) == 12


# -- the log cut back to an earlier signed size -------------------------------------


def test_truncated_log_found_by_receipts(serve, gate_run, backend):
    result = receipts_of(serve(backend, TRUNCATED), gate_run)

    assert result.served_size == 15
    assert result.first_bad_index == 15
    assert result.changed[0] == (15, "entry 15 is not in the served log of size 15")
    assert result.inconsistent[0] == (
        16,
        15,
        "a receipt was proved against tree size 16, but the log now serves size 15",
    )


def test_truncated_log_found_by_monitor(
    serve, gate_run, honest_state, tmp_path, backend
):
    report = monitor_of(serve(backend, TRUNCATED), gate_run, honest_state, tmp_path)

    assert report.outcome == Outcome.ROLLBACK
    assert report.exit_code == 5
    assert (report.old_size, report.new_size) == (21, 15)
    assert report.first_bad_index == 15
    assert report.message == (
        "rollback: the checkpoint has tree size 15, smaller than size 21 seen before; "
        "leaves from index 15 on are missing"
    )


def test_truncated_log_found_by_audit(
    serve, gate_run, honest_state, tmp_path, backend
):
    result = audit_of(serve(backend, TRUNCATED), gate_run, honest_state, tmp_path)

    assert result.first_bad() == {"log.rollback": 15}
    assert "a monitor verified size 21 before" in result.errors[0].message
