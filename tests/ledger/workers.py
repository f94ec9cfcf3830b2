"""Writer processes for test_processes.py, started with multiprocessing spawn.

Each function runs in a fresh interpreter. It opens its own ``Ledger`` and
``Sequencer`` on the shared database and waits at the barrier, so that all
writers overlap. Then it appends from several threads and puts its results
(or the traceback of its error) on the result queue.
"""

import os
import traceback
from concurrent.futures import ThreadPoolExecutor

from ledger import Ledger, Signer
from ledger.sequencer import Sequencer

from .conftest import ORIGIN, TEST_SEED, record


def _run(url, worker, threads, barrier, results, make_items):
    try:
        signer = Signer.from_seed(ORIGIN, TEST_SEED)
        with Ledger.open(url, signer, create=False) as ledger:
            with Sequencer(ledger) as sequencer:
                barrier.wait(timeout=120)
                items = make_items()

                def append_share(thread):
                    return [
                        (key, sequencer.append(entry, key, timeout=300).text)
                        for entry, key in items[thread::threads]
                    ]

                with ThreadPoolExecutor(threads) as pool:
                    shares = list(pool.map(append_share, range(threads)))
        results.put((worker, os.getpid(), [pair for share in shares for pair in share]))
    except BaseException:  # noqa: BLE001 - the parent reports it
        results.put((worker, os.getpid(), traceback.format_exc()))


def append_distinct(url, worker, threads, count, barrier, results):
    """Append ``count`` entries of this worker's own; put (key, receipt) pairs."""
    _run(
        url,
        worker,
        threads,
        barrier,
        results,
        lambda: [
            (record(worker * 100_000 + i, worker=worker), None) for i in range(count)
        ],
    )


def append_shared(url, worker, threads, count, barrier, results):
    """Append the same ``count`` keyed entries as every other worker."""
    _run(
        url,
        worker,
        threads,
        barrier,
        results,
        lambda: [(record(-i, shared=True), f"shared-{i}") for i in range(count)],
    )
