"""Several OS processes, each with its own Ledger and Sequencer, extend one log.

The processes start with multiprocessing's spawn method, so they share
nothing but the database. The parent then checks the result with the
independent verifier: one log without gaps or duplicate indexes, every
receipt valid, one root per tree size, and every receipt's checkpoint
consistent with the final checkpoint.
"""

import multiprocessing
from collections import defaultdict

import pytest

from ledger import Ledger
from verifier import verify_checkpoint, verify_consistency, verify_receipt

from . import workers
from .conftest import FIXED_NOW, ORIGIN, record, run_sql

# Seconds a whole multi-process run may take before the test fails.
RUN_TIMEOUT = 600


def _run_processes(target, url, processes, *args):
    """Run ``target`` in ``processes`` spawned processes; return their results."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    started = [
        context.Process(target=target, args=(url, worker, *args, barrier, results))
        for worker in range(processes)
    ]
    for process in started:
        process.start()
    try:
        collected = [results.get(timeout=RUN_TIMEOUT) for _ in started]
    finally:
        for process in started:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    failures = [output for _, _, output in collected if isinstance(output, str)]
    assert failures == [], "\n".join(failures)
    assert len({pid for _, pid, _ in collected}) == processes
    return {worker: output for worker, _, output in collected}


def _check_one_log(url, signer, texts, expected_entries, key_records):
    """Verify the receipts, the stored leaves and the checkpoints of the log."""
    key = str(signer.verifier_key)
    size = len(expected_entries) + key_records
    with Ledger.open(url, signer) as ledger:
        final = verify_checkpoint(ledger.latest_checkpoint(), [key], ORIGIN)
        assert final.size == ledger.size == size

        rows = run_sql(
            url,
            "SELECT count(*), count(DISTINCT leaf_index), min(leaf_index), "
            "max(leaf_index) FROM leaves",
        )
        assert tuple(rows[0]) == (size, size, 0, size - 1)

        verified = [verify_receipt(text, [key], ORIGIN) for text in texts]
        assert sorted(v.index for v in verified) == list(range(key_records, size))
        assert sorted(v.entry for v in verified) == sorted(expected_entries)
        assert sorted(ledger.entries(key_records, size)) == sorted(expected_entries)

        roots = defaultdict(set)
        for receipt in verified:
            roots[receipt.checkpoint.size].add(receipt.checkpoint.root)
        for (note,) in run_sql(url, "SELECT note FROM checkpoints"):
            stored = verify_checkpoint(note, [key], ORIGIN)
            roots[stored.size].add(stored.root)
        assert {s: len(r) for s, r in roots.items() if len(r) > 1} == {}

        for checkpoint_size, (root,) in sorted(roots.items()):
            if checkpoint_size == final.size:
                assert root == final.root
                continue
            proof = ledger.consistency_proof(checkpoint_size, final.size)
            verify_consistency(checkpoint_size, final.size, proof, root, final.root)
    return verified


@pytest.mark.parametrize(
    "backend, processes",
    [("postgresql", 4), ("sqlite", 2)],
    ids=["postgresql", "sqlite"],
)
def test_processes_extend_one_log(request, tmp_path, signer, backend, processes):
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = str(tmp_path / "log.db")
    Ledger.open(url, signer, now=FIXED_NOW).close()
    threads, count = 16, 500

    results = _run_processes(workers.append_distinct, url, processes, threads, count)

    texts = [text for output in results.values() for _, text in output]
    assert len(texts) == processes * count
    expected = [
        record(worker * 100_000 + i, worker=worker)
        for worker in range(processes)
        for i in range(count)
    ]
    _check_one_log(url, signer, texts, expected, key_records=1)


def test_idempotency_keys_across_processes(db_url, signer):
    Ledger.open(db_url, signer, now=FIXED_NOW).close()
    processes, count = 3, 40

    results = _run_processes(workers.append_shared, db_url, processes, 8, count)

    indexes = defaultdict(set)
    texts = []
    for output in results.values():
        for key, text in output:
            indexes[key].add(verify_receipt(text, [str(signer.verifier_key)]).index)
            texts.append(text)
    # Every process got the first receipt's index for every key.
    assert {key: len(found) for key, found in indexes.items() if len(found) > 1} == {}
    assert len(indexes) == count
    expected = [record(-i, shared=True) for i in range(count)]
    first_texts = {}
    for text in texts:
        index = verify_receipt(text, [str(signer.verifier_key)]).index
        first_texts.setdefault(index, text)
    _check_one_log(db_url, signer, list(first_texts.values()), expected, key_records=1)
