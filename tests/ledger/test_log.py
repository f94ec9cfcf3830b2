"""Ledger: appends, batches, idempotency, reopening, bad entries, damage.

Every test that takes ``open_log`` or ``db_url`` runs on SQLite and on
PostgreSQL (see conftest.py).
"""

import json
import os
import threading

import pytest
from sqlalchemy import inspect

from ledger import (
    InvalidEntry,
    InvalidRequest,
    Ledger,
    Signer,
    StorageError,
    key_record,
)

from .conftest import FIXED_NOW, ORIGIN, engine_for, record, run_sql
from .notes import check_receipt, open_checkpoint
from .rfc9162 import ReferenceTree


def _leaf_count(url):
    return run_sql(url, "SELECT count(*) FROM leaves")[0][0]


def _table_names(url):
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


# -- a new log ----------------------------------------------------------------


def test_new_log_starts_with_key_record(open_log, signer):
    ledger = open_log()
    assert ledger.size == 1
    first = json.loads(ledger.entries(0, 1)[0])
    assert first["type"] == "key"
    assert first["version"] == 1
    assert first["role"] == "log"
    assert first["key"] == str(signer.verifier_key)
    assert first["time"] == "2026-12-04T10:00:00.123456Z"
    assert first["id"].startswith("k-")
    assert len(first["id"]) == 34


def test_key_record_is_reproducible(signer):
    assert key_record(signer, FIXED_NOW) == key_record(signer, FIXED_NOW)


def test_key_record_rejects_naive_time(signer):
    with pytest.raises(InvalidRequest, match="has no time zone"):
        key_record(signer, FIXED_NOW.replace(tzinfo=None))


def test_two_signers_two_key_records(open_log, signer, other_signer):
    ledger = open_log([signer, other_signer])
    keys = [json.loads(entry)["key"] for entry in ledger.entries(0, ledger.size)]
    assert keys == [str(signer.verifier_key), str(other_signer.verifier_key)]
    origin, size, _ = open_checkpoint(
        ledger.latest_checkpoint(), other_signer.verifier_key
    )
    assert (origin, size) == (ORIGIN, 2)


def test_first_checkpoint_signed(open_log, signer):
    ledger = open_log()
    origin, size, root = open_checkpoint(
        ledger.latest_checkpoint(), signer.verifier_key
    )
    assert origin == ORIGIN
    assert size == 1
    assert root == ledger.root()


def test_signer_name_must_be_origin(db_url):
    stranger = Signer.from_seed("someone.else/log", bytes(32))
    with pytest.raises(InvalidRequest, match="the log's key name must be its origin"):
        Ledger.open(db_url, stranger, origin=ORIGIN)


def test_signer_listed_twice_rejected(db_url, signer):
    with pytest.raises(
        InvalidRequest, match=r"signer key .*\+92da37aa\+.* is listed twice"
    ):
        Ledger.open(db_url, [signer, signer])


def test_create_needs_signer(db_url):
    with pytest.raises(
        InvalidRequest, match="creating a log needs at least one signer"
    ):
        Ledger.open(db_url, None, origin=ORIGIN)


def test_open_without_create_rejects_missing_log(db_url, signer):
    if "://" in db_url:
        message = "contains no log; create it first"
    else:
        message = f"no log at {db_url}: the file does not exist; create the log first"
    with pytest.raises(InvalidRequest, match=message):
        Ledger.open(db_url, signer, create=False)
    if "://" in db_url:
        assert _table_names(db_url) == set()
    else:
        assert not os.path.exists(db_url)


def test_exists(db_url, open_log):
    assert not Ledger.exists(db_url)
    if "://" in db_url:
        assert _table_names(db_url) == set()
    else:
        assert not os.path.exists(db_url)
    open_log()
    assert Ledger.exists(db_url)


# -- appending ----------------------------------------------------------------


def test_append_returns_receipt(open_log, signer):
    ledger = open_log()
    receipt = ledger.append(record(1))
    assert receipt.index == 1
    assert receipt.entry == record(1)
    assert receipt.checkpoint == ledger.latest_checkpoint()
    assert receipt.proof == ledger.inclusion_proof(1, 2)
    index, entry, size = check_receipt(receipt.text, signer.verifier_key, ORIGIN)
    assert (index, entry, size) == (1, record(1), 2)


def test_batch_signs_one_checkpoint(open_log, signer, statements):
    ledger = open_log()
    statements.start()
    receipts = ledger.append_batch([(record(i), None) for i in range(10)])
    recorded = statements.stop()
    assert [r.index for r in receipts] == list(range(1, 11))
    assert {r.checkpoint for r in receipts} == {ledger.latest_checkpoint()}
    # SQLite takes the head lock with BEGIN IMMEDIATE, PostgreSQL with
    # SELECT ... FOR UPDATE.
    head_locks = [
        s for s, _ in recorded if s == "BEGIN IMMEDIATE" or "FOR UPDATE" in s
    ]
    assert len(head_locks) == 1
    for receipt in receipts:
        index, _, size = check_receipt(receipt.text, signer.verifier_key, ORIGIN)
        assert (index, size) == (receipt.index, 11)


def test_batch_receipts_need_no_reads(open_log, statements):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(100)])
    statements.start()
    ledger.append_batch([(record(1000 + i), None) for i in range(50)])
    tree_reads = [
        s for s in statements.selects() if "FROM nodes" in s or "FROM leaves" in s
    ]
    assert tree_reads == []


def test_empty_batch_stores_nothing(open_log):
    ledger = open_log()
    checkpoint = ledger.latest_checkpoint()
    assert ledger.append_batch([]) == []
    assert ledger.size == 1
    assert ledger.latest_checkpoint() == checkpoint


def test_checkpoint_stored_by_next_write(open_log, db_url):
    ledger = open_log()
    ledger.append(record(1))
    note = ledger.latest_checkpoint()
    assert ledger.checkpoint_at(2) == note
    assert run_sql(db_url, "SELECT note FROM checkpoints WHERE size = 2") == []
    ledger.append(record(2))
    stored = run_sql(db_url, "SELECT note FROM checkpoints WHERE size = 2")
    assert [tuple(row) for row in stored] == [(note,)]


def test_checkpoint_at_unknown_size(open_log):
    ledger = open_log()
    assert ledger.checkpoint_at(7) is None


def test_entries_range(open_log):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(5)])
    assert ledger.entries(1, 4) == [record(0), record(1), record(2)]
    assert ledger.entries(3, 3) == []


@pytest.mark.parametrize("start, stop", [(-1, 2), (3, 2), (0, 7)])
def test_entries_bad_range(open_log, start, stop):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(5)])
    with pytest.raises(
        InvalidRequest, match=rf"entries \[{start}, {stop}\): need 0 <= start"
    ):
        ledger.entries(start, stop)


# -- bad entries --------------------------------------------------------------

BAD_ENTRIES = {
    "whitespace": (
        b'{"a": 1}',
        "not in RFC 8785 canonical form: it differs from the canonical bytes at "
        "offset 5",
    ),
    "member-order": (b'{"b":1,"a":2}', "at offset 2"),
    "trailing-newline": (b'{"a":1}\n', "at offset 7"),
    "float-form": (b'{"a":1.0}', "at offset 6"),
    "escaped-slash": (b'{"a":"\\/"}', "at offset 6"),
    "duplicate-key": (b'{"a":1,"a":1}', "duplicate member name 'a'"),
    "array": (b"[1,2]", "must be a JSON object, got a JSON array"),
    "string": (b'"x"', "must be a JSON object, got a JSON string"),
    "null": (b"null", "must be a JSON object, got a JSON null"),
    "not-utf8": (b'{"a":"\xff"}', "not UTF-8: byte 0xff at offset 6"),
    "not-json": (b'{"a":}', "not JSON: Expecting value at line 1 column 6"),
    "nan": (b'{"a":NaN}', "contains NaN; JSON numbers must be finite"),
    "infinity": (b'{"a":-Infinity}', "contains -Infinity"),
    "huge-number": (b'{"a":1e400}', "outside the IEEE 754 double range"),
    "unsafe-integer": (b'{"a":9007199254740993}', r"beyond 2\^53 - 1 and not the RFC 8785 form"),
    "lone-surrogate": (b'{"a":"\\ud800"}', "lone surrogate"),
    "lone-surrogate-name": (b'{"\\udc00":1}', "lone surrogate"),
    "empty": (b"", "not JSON: Expecting value"),
}


@pytest.mark.parametrize("name", sorted(BAD_ENTRIES))
def test_bad_entry_rejected(open_log, db_url, name):
    entry, message = BAD_ENTRIES[name]
    ledger = open_log()
    root = ledger.root()
    with pytest.raises(InvalidEntry, match=message):
        ledger.append(entry)
    assert ledger.size == 1
    assert ledger.root() == root
    assert _leaf_count(db_url) == 1


def test_entry_must_be_bytes(open_log):
    ledger = open_log()
    with pytest.raises(InvalidEntry, match="entry must be bytes, got str"):
        ledger.append('{"a":1}')


def test_entry_too_large(open_log):
    ledger = open_log()
    entry = b'{"a":"' + b"x" * (1 << 20) + b'"}'
    with pytest.raises(
        InvalidEntry, match=r"entry is 1048584 bytes; the maximum is 1048576"
    ):
        ledger.append(entry)


def test_one_bad_entry_rejects_whole_batch(open_log, db_url):
    ledger = open_log()
    with pytest.raises(InvalidEntry, match="duplicate member name"):
        ledger.append_batch([(record(1), None), (b'{"a":1,"a":2}', None)])
    assert ledger.size == 1
    assert _leaf_count(db_url) == 1


def test_key_record_append_rejected(open_log, db_url, other_signer):
    ledger = open_log()
    with pytest.raises(
        InvalidRequest,
        match=r"entry is a key record; only Ledger.add_key and Ledger.retire_key",
    ):
        ledger.append(key_record(other_signer, FIXED_NOW))
    assert ledger.size == 1
    assert _leaf_count(db_url) == 1


def test_append_each_rejects_items_alone(open_log, signer):
    ledger = open_log()
    ledger.append(record(1), key="k")
    outcomes = ledger.append_each(
        [
            (record(2), None),
            (b'{"a":1,"a":2}', None),
            (record(3), "k"),
            "not a pair",
            (record(1), "k"),
            (record(4), ""),
            (record(5), None),
        ]
    )
    indexes = [getattr(outcome, "index", None) for outcome in outcomes]
    assert indexes == [2, None, None, None, 1, None, 3]
    assert isinstance(outcomes[1], InvalidEntry)
    assert "duplicate member name 'a'" in str(outcomes[1])
    assert isinstance(outcomes[2], InvalidRequest)
    assert "idempotency key 'k' was first used for a different entry" in str(
        outcomes[2]
    )
    assert "batch item 3 must be an (entry, idempotency key) pair, got str" in str(
        outcomes[3]
    )
    assert "idempotency key must be None or a non-empty string" in str(outcomes[5])
    assert ledger.size == 4
    for outcome in (outcomes[0], outcomes[4], outcomes[6]):
        index, _, size = check_receipt(outcome.text, signer.verifier_key, ORIGIN)
        assert (index, size) == (outcome.index, 4)


# -- idempotency --------------------------------------------------------------


def test_idempotency_key_repeat_returns_first_index(open_log, signer):
    ledger = open_log()
    first = ledger.append(record(1), key="call-1")
    ledger.append(record(2))
    again = ledger.append(record(1), key="call-1")
    assert again.index == first.index == 1
    assert ledger.size == 3
    # Re-proved against the current checkpoint.
    assert again.checkpoint == ledger.latest_checkpoint()
    index, entry, size = check_receipt(again.text, signer.verifier_key, ORIGIN)
    assert (index, entry, size) == (1, record(1), 3)


def test_idempotency_key_survives_reopen(open_log):
    ledger = open_log()
    ledger.append(record(1), key="call-1")
    ledger.close()
    reopened = open_log()
    assert reopened.append(record(1), key="call-1").index == 1
    assert reopened.size == 2


def test_idempotency_key_repeat_within_batch(open_log):
    ledger = open_log()
    receipts = ledger.append_batch(
        [(record(1), "k"), (record(2), None), (record(1), "k")]
    )
    assert [r.index for r in receipts] == [1, 2, 1]
    assert ledger.size == 3


def test_idempotency_key_with_other_entry_rejected(open_log):
    ledger = open_log()
    ledger.append(record(1), key="call-1")
    with pytest.raises(
        InvalidRequest,
        match=r"idempotency key 'call-1' was first used for a different entry "
        r"\(leaf 1\)",
    ):
        ledger.append(record(2), key="call-1")
    assert ledger.size == 2


@pytest.mark.parametrize(
    "key, message",
    [("", "non-empty string"), (5, "got 5"), ("x" * 257, "257 characters")],
)
def test_bad_idempotency_key_rejected(open_log, key, message):
    ledger = open_log()
    with pytest.raises(InvalidRequest, match=message):
        ledger.append(record(1), key=key)
    assert ledger.size == 1


# -- reopening ----------------------------------------------------------------


def test_reopen_keeps_size_root_and_checkpoint(open_log, signer):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(40)])
    size, root, note = ledger.size, ledger.root(), ledger.latest_checkpoint()
    ledger.close()

    reopened = open_log()
    assert reopened.size == size
    assert reopened.root() == root
    assert reopened.latest_checkpoint() == note
    reference = ReferenceTree(reopened.entries(0, size))
    for index in range(size):
        assert reopened.inclusion_proof(index, size) == reference.path(index, size)
    for first in range(1, size + 1):
        assert reopened.consistency_proof(first, size) == reference.proof(first, size)
    receipt = reopened.append(record(99))
    assert check_receipt(receipt.text, signer.verifier_key, ORIGIN)[2] == size + 1


def _open_statements(statements, path, signer):
    statements.start()
    ledger = Ledger.open(path, signer)
    recorded = statements.stop()
    return ledger, recorded


def test_reopen_reads_are_bounded(tmp_path, signer, statements):
    """Opening costs the same statements at 50 and at 3000 entries: no leaf pass."""
    counts = {}
    for size in (50, 3000):
        path = tmp_path / f"log-{size}.db"
        with Ledger.open(path, signer, now=FIXED_NOW) as ledger:
            while ledger.size < size:
                count = min(500, size - ledger.size)
                ledger.append_batch(
                    [(record(ledger.size + i), None) for i in range(count)]
                )
        ledger, recorded = _open_statements(statements, path, signer)
        with ledger:
            counts[size] = len(recorded)
            for statement, parameters in recorded:
                if "FROM leaves" in statement and "leaf_index >=" in statement:
                    # The only range read: the leading key records.
                    start, stop = parameters[:2]
                    assert stop - start <= 16
            statements.start()
            ledger.inclusion_proof(7, ledger.size)
            ledger.consistency_proof(11, ledger.size)
            ledger.root(ledger.size - 1)
            assert len(statements.selects()) <= 6
    assert counts[50] == counts[3000]


def test_reopen_resigns_lost_checkpoint(open_log, db_url):
    ledger = open_log()
    ledger.append(record(1))
    note = ledger.latest_checkpoint()
    ledger.close()
    run_sql(db_url, "DELETE FROM checkpoints WHERE size = 2")
    reopened = open_log()
    # Ed25519 is deterministic and the root comes from the stored tree.
    assert reopened.latest_checkpoint() == note


def test_reopen_with_other_origin_rejected(open_log, db_url, signer):
    open_log().close()
    with pytest.raises(
        InvalidRequest,
        match="contains the log 'agentgate.test/log', not 'other.test/log'",
    ):
        Ledger.open(db_url, None, origin="other.test/log")


def test_reopen_with_foreign_key_rejected(open_log, db_url, other_signer):
    open_log().close()
    with pytest.raises(
        InvalidRequest,
        match="is not a key of log 'agentgate.test/log' .*introduce this key with "
        "agentgate log add-key",
    ):
        Ledger.open(db_url, other_signer)


def test_read_only_open(open_log, db_url):
    writer = open_log()
    writer.append(record(1))
    note = writer.latest_checkpoint()
    writer.close()
    with Ledger.open(db_url) as reader:
        assert reader.latest_checkpoint() == note
        assert reader.size == 2
        with pytest.raises(
            InvalidRequest, match="opened without a signer key, so it is read-only"
        ):
            reader.append(record(2))


def test_closed_log_rejects_append(open_log):
    ledger = open_log()
    ledger.close()
    with pytest.raises(InvalidRequest, match="is closed"):
        ledger.append(record(1))


# -- damage and a second writer -----------------------------------------------


def test_damaged_head_root_detected(open_log, db_url):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(6)])
    ledger.close()
    run_sql(db_url, "UPDATE log_head SET root = :root", root=bytes(32))
    with pytest.raises(
        StorageError, match="the head row says 0000.*the database is damaged"
    ):
        Ledger.open(db_url)


def test_missing_subtree_detected(open_log, db_url):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(7)])
    ledger.close()
    run_sql(db_url, "DELETE FROM nodes WHERE level = 3")
    with pytest.raises(
        StorageError,
        match=r"subtree hashes \[\(3, 0\)\] of the tree of size 8 are missing",
    ):
        Ledger.open(db_url)


def test_second_writer_catches_up(open_log, signer):
    first = open_log()
    second = open_log()
    first.append(record(1))
    assert second.size == 1
    receipt = second.append(record(2))
    assert receipt.index == 2
    assert first.append(record(3)).index == 3
    assert second.refresh()
    assert first.root() == second.root()
    assert check_receipt(receipt.text, signer.verifier_key, ORIGIN)[2] == 3


def test_concurrent_appends(open_log, signer):
    ledger = open_log()
    receipts = []
    lock = threading.Lock()

    def worker(number):
        for i in range(25):
            receipt = ledger.append(record(number * 1000 + i))
            with lock:
                receipts.append(receipt)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert ledger.size == 201
    assert sorted(r.index for r in receipts) == list(range(1, 201))
    for receipt in receipts:
        check_receipt(receipt.text, signer.verifier_key, ORIGIN)
    reference = ReferenceTree(ledger.entries(0, ledger.size))
    assert ledger.root() == reference.root(201)
