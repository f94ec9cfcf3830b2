"""Several writers on one database: catching up, refresh, one tree, the backstop.

Each writer here is a separate ``Ledger`` with its own connections in one
process. The database treats them exactly like separate processes, and
test_processes.py runs real OS processes.
"""

import threading
from collections import defaultdict

import pytest

from ledger import InvalidRequest, Ledger, StorageError
from verifier import verify_receipt

from .conftest import ORIGIN, record, run_sql
from .notes import check_receipt, open_checkpoint
from .rfc9162 import ReferenceTree


def _head_size(url):
    return run_sql(url, "SELECT size FROM log_head")[0][0]


# -- refresh --------------------------------------------------------------------


def test_refresh_sees_other_writer(open_log):
    writer = open_log()
    reader = open_log()
    writer.append_batch([(record(i), None) for i in range(10)])
    assert reader.size == 1
    assert reader.refresh() is True
    assert reader.size == 11
    assert reader.root() == writer.root()
    assert reader.refresh() is False


def test_refresh_unchanged_is_one_read(open_log, statements):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(5)])
    statements.start()
    assert ledger.refresh() is False
    recorded = statements.stop()
    queries = [s for s, _ in recorded if not s.startswith(("BEGIN", "COMMIT"))]
    assert len(queries) == 1
    assert "FROM log_head" in queries[0]
    assert "WHERE log_head.origin =" in queries[0]


def test_refresh_reads_are_bounded(open_log, statements):
    """Catching up with 1000 or with 3000 new entries costs the same queries."""
    writer = open_log()
    reader = open_log()
    counts = []
    for count in (1000, 3000):
        writer.append_batch([(record(i), None) for i in range(count)])
        statements.start()
        assert reader.refresh() is True
        recorded = statements.stop()
        counts.append(len([s for s, _ in recorded if s.startswith("SELECT")]))
        assert reader.root() == writer.root()
    assert counts[0] == counts[1]
    assert counts[0] <= 5


def test_reads_beyond_local_size_refresh(open_log, signer):
    writer = open_log()
    reader = open_log(None)
    receipts = writer.append_batch([(record(i), None) for i in range(6)])
    size = writer.size
    reference = ReferenceTree(writer.entries(0, size))

    assert reader.inclusion_proof(3, size) == receipts[2].proof
    assert reader.consistency_proof(2, size) == reference.proof(2, size)
    assert reader.entries(5, 7) == [record(4), record(5)]
    assert reader.root(size) == reference.root(size)


def test_latest_checkpoint_refreshes(open_log, signer):
    writer = open_log()
    other = open_log()
    writer.append(record(1))
    # Ed25519 is deterministic, so the same key signs the same tree head
    # into the same note in either process.
    assert other.latest_checkpoint() == writer.latest_checkpoint()
    assert open_checkpoint(other.latest_checkpoint(), signer.verifier_key)[1] == 2


def test_read_only_reader_serves_newest_stored_checkpoint(open_log, db_url):
    writer = open_log()
    first = writer.latest_checkpoint()
    writer.append(record(1))
    reader = Ledger.open(db_url)
    try:
        # The writer stored the checkpoint of size 1 with this write, and
        # keeps the one of size 2 until its next write.
        assert reader.latest_checkpoint() == first
        assert reader.size == 2
        assert writer.store_checkpoints() == 1
        assert writer.store_checkpoints() == 0
        assert reader.latest_checkpoint() == writer.latest_checkpoint()
        assert reader.latest_checkpoint().split("\n")[1] == "2"
    finally:
        reader.close()


# -- one linear log -------------------------------------------------------------


def test_idempotency_key_across_writers(open_log):
    first = open_log()
    second = open_log()
    original = first.append(record(1), key="call-1")
    repeat = second.append(record(1), key="call-1")
    assert repeat.index == original.index == 1
    assert second.size == 2
    with pytest.raises(
        InvalidRequest,
        match=r"idempotency key 'call-1' was first used for a different entry "
        r"\(leaf 1\)",
    ):
        second.append(record(2), key="call-1")


def test_interleaved_writers_share_one_tree(open_log, db_url, signer):
    writers = [open_log(), open_log(), open_log()]
    receipts = []
    lock = threading.Lock()

    def work(number):
        ledger = writers[number]
        for i in range(30):
            receipt = ledger.append(record(number * 1000 + i))
            with lock:
                receipts.append(receipt)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.index for r in receipts) == list(range(1, 91))
    assert _head_size(db_url) == 91
    roots = defaultdict(set)
    for receipt in receipts:
        _, _, size = check_receipt(receipt.text, signer.verifier_key, ORIGIN)
        roots[size].add(open_checkpoint(receipt.checkpoint, signer.verifier_key)[2])
    for ledger in writers:
        ledger.close()
    for (size,) in run_sql(db_url, "SELECT size FROM checkpoints"):
        note = run_sql(db_url, f"SELECT note FROM checkpoints WHERE size = {size}")
        roots[size].add(open_checkpoint(note[0][0], signer.verifier_key)[2])
    assert all(len(found) == 1 for found in roots.values()), roots

    with Ledger.open(db_url) as final:
        reference = ReferenceTree(final.entries(0, 91))
        for size, (root,) in roots.items():
            assert root == reference.root(size)


def test_checkpoint_signed_after_commit(open_log, db_url, monkeypatch):
    """Every checkpoint is signed when the database already contains its tree."""
    import ledger.writes

    signed = []
    original = ledger.writes.sign_checkpoint

    def checked_sign(origin, size, root, signers):
        signed.append((size, _head_size(db_url)))
        return original(origin, size, root, signers)

    first = open_log()
    second = open_log()
    monkeypatch.setattr(ledger.writes, "sign_checkpoint", checked_sign)
    first.append_batch([(record(i), None) for i in range(3)])
    second.append(record(10))
    first.append(record(11))
    second.latest_checkpoint()

    assert [size for size, _ in signed] == [4, 5, 6, 6]
    for size, committed in signed:
        assert committed >= size


# -- damage and the backstop ----------------------------------------------------


def test_unique_leaf_index_is_backstop(open_log, db_url):
    ledger = open_log()
    ledger.append(record(1))
    # A writer that ignores the head lock stored leaf 2 behind our back.
    run_sql(
        db_url,
        "INSERT INTO leaves (leaf_index, leaf_hash, entry) VALUES (2, :h, :e)",
        h=bytes(32),
        e=b"{}",
    )
    with pytest.raises(StorageError, match="database rejected a duplicate leaf index"):
        ledger.append(record(2))
    assert ledger.size == 2
    assert _head_size(db_url) == 2

    run_sql(db_url, "DELETE FROM leaves WHERE leaf_index = 2")
    assert ledger.append(record(2)).index == 2


def test_shrunk_log_detected(open_log, db_url):
    writer = open_log()
    reader = open_log()
    writer.append_batch([(record(i), None) for i in range(4)])
    reader.refresh()
    run_sql(db_url, "UPDATE log_head SET size = 3")
    with pytest.raises(
        StorageError,
        match=r"stored head is 'agentgate.test/log' at size 3, but this process "
        r"already saw size 5; the database was rolled back or replaced",
    ):
        reader.refresh()
    with pytest.raises(StorageError, match="already saw size 5"):
        writer.append(record(9))


def test_forked_log_detected(open_log, db_url):
    ledger = open_log()
    ledger.append(record(1))
    run_sql(db_url, "UPDATE log_head SET root = :root", root=bytes(32))
    with pytest.raises(
        StorageError, match=r"the stored root of size 2 is 0000.*the log forked"
    ):
        ledger.refresh()


def test_closed_log_rejects_refresh(open_log):
    ledger = open_log()
    ledger.close()
    with pytest.raises(InvalidRequest, match="log 'agentgate.test/log' is closed"):
        ledger.refresh()


def test_receipts_from_both_writers_verify(open_log, signer):
    first = open_log()
    second = open_log()
    receipts = [first.append(record(1)), second.append(record(2))]
    receipts += first.append_batch([(record(3), None), (record(4), None)])
    key = str(signer.verifier_key)
    for receipt in receipts:
        verified = verify_receipt(receipt.text, [key], ORIGIN)
        assert verified.index == receipt.index
