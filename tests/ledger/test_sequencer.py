"""Sequencer: group commit without delaying a lone caller, errors per caller, close."""

import asyncio
import threading
import time

import pytest

from ledger import InvalidEntry, InvalidRequest, key_record
from ledger.sequencer import Sequencer, SequencerClosed

from .conftest import FIXED_NOW, ORIGIN, record, run_sql
from .notes import check_receipt


class HeldLedger:
    """A ledger whose batches wait until the test releases them."""

    def __init__(self, ledger):
        self.ledger = ledger
        self.started = threading.Event()
        self.release = threading.Event()

    def _hold(self):
        self.started.set()
        assert self.release.wait(10), "the test never released the batch"

    def append_each(self, items):
        self._hold()
        return self.ledger.append_each(items)


class HeldBatchOnly(HeldLedger):
    """A held ledger behind a wrapper that offers only ``append_batch``."""

    append_each = None

    def append_batch(self, items):
        self._hold()
        return self.ledger.append_batch(items)


@pytest.fixture
def sequencers():
    """Return a function that starts a Sequencer; all are closed afterwards."""
    started = []

    def _start(ledger, **options):
        sequencer = Sequencer(ledger, **options)
        started.append(sequencer)
        return sequencer

    yield _start
    for sequencer in started:
        sequencer.close()


def test_lone_caller_not_delayed(open_log, sequencers):
    ledger = open_log()
    # A sequencer that lingered for max_wait before committing a lone entry
    # would exceed each append's timeout, 600 times shorter.
    sequencer = sequencers(ledger, max_wait=3600)
    for i in range(20):
        sequencer.append(record(i), timeout=6)
    assert sequencer.batches == 20


def test_concurrent_callers_share_commits(open_log, sequencers, signer):
    ledger = open_log()
    sequencer = sequencers(ledger)
    receipts = []
    lock = threading.Lock()

    def work(number):
        for i in range(20):
            receipt = sequencer.append(record(number * 100 + i), timeout=30)
            with lock:
                receipts.append(receipt)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.index for r in receipts) == list(range(1, 321))
    assert sequencer.entries == 320
    assert sequencer.batches < 320
    for receipt in receipts:
        index, entry, _ = check_receipt(receipt.text, signer.verifier_key, ORIGIN)
        assert (index, entry) == (receipt.index, receipt.entry)


def test_bad_entry_fails_only_its_caller(open_log, sequencers, other_signer):
    ledger = open_log()
    sequencer = sequencers(ledger)
    good = [sequencer.submit(record(i)) for i in range(5)]
    with pytest.raises(InvalidEntry, match="duplicate member name 'a'"):
        sequencer.submit(b'{"a":1,"a":2}')
    with pytest.raises(InvalidRequest, match="idempotency key must be None or a"):
        sequencer.submit(record(99), key=7)
    with pytest.raises(InvalidRequest, match="entry is a key record"):
        sequencer.submit(key_record(other_signer, FIXED_NOW))
    good += [sequencer.submit(record(i)) for i in range(5, 10)]

    assert sorted(f.result(10).index for f in good) == list(range(1, 11))
    assert ledger.size == 11


@pytest.mark.parametrize("held_type", [HeldLedger, HeldBatchOnly])
def test_reused_idempotency_key_fails_only_its_caller(open_log, sequencers, held_type):
    ledger = open_log()
    ledger.append(record(1), key="call-1")
    held = held_type(ledger)
    sequencer = sequencers(held)
    blocker = sequencer.submit(record(2))
    assert held.started.wait(10)
    # These wait behind the blocked batch, so they form one batch together.
    futures = [
        sequencer.submit(record(3)),
        sequencer.submit(record(4), key="call-1"),
        sequencer.submit(record(1), key="call-1"),
        sequencer.submit(record(5)),
    ]
    held.release.set()

    assert blocker.result(10).index == 2
    with pytest.raises(
        InvalidRequest,
        match=r"idempotency key 'call-1' was first used for a different entry "
        r"\(leaf 1\)",
    ):
        futures[1].result(10)
    assert futures[2].result(10).index == 1
    assert sorted([futures[0].result(10).index, futures[3].result(10).index]) == [
        3,
        4,
    ]
    assert ledger.size == 5


def test_close_rejects_later_submissions(open_log, sequencers):
    ledger = open_log()
    sequencer = sequencers(ledger)
    sequencer.append(record(1), timeout=10)
    sequencer.close()
    sequencer.close()
    with pytest.raises(
        SequencerClosed,
        match="the sequencer is closed, so the entry was not appended; append "
        "through a new Sequencer",
    ):
        sequencer.submit(record(2))
    assert ledger.size == 2


def test_close_writes_queued_entries(open_log, sequencers):
    ledger = open_log()
    sequencer = sequencers(ledger)
    futures = [sequencer.submit(record(i)) for i in range(200)]
    sequencer.close()
    assert all(future.done() for future in futures)
    assert sorted(f.result().index for f in futures) == list(range(1, 201))
    assert ledger.size == 201


def test_close_while_submitting_loses_nothing(open_log, sequencers):
    """Every submission either raises SequencerClosed or gets its receipt."""
    ledger = open_log()
    sequencer = sequencers(ledger)
    accepted = []
    rejected = []
    lock = threading.Lock()

    def submit_until_closed(number):
        for i in range(10_000):
            try:
                future = sequencer.submit(record(number * 100_000 + i))
            except SequencerClosed:
                with lock:
                    rejected.append(number)
                return
            with lock:
                accepted.append(future)

    threads = [
        threading.Thread(target=submit_until_closed, args=(n,)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    sequencer.close(timeout=30)
    for thread in threads:
        thread.join()

    assert len(rejected) == 8
    indexes = [future.result(timeout=10).index for future in accepted]
    assert sorted(indexes) == list(range(1, len(accepted) + 1))
    assert ledger.size == len(accepted) + 1


def test_cancelled_entry_not_written(open_log, sequencers):
    ledger = open_log()
    held = HeldLedger(ledger)
    sequencer = sequencers(held)
    first = sequencer.submit(record(1))
    assert held.started.wait(10)
    second = sequencer.submit(record(2))
    assert second.cancel()
    held.release.set()
    assert first.result(10).index == 1
    sequencer.close()
    assert ledger.size == 2
    assert ledger.entries(1, 2) == [record(1)]


def test_idle_writer_stores_checkpoint(open_log, db_url, sequencers):
    ledger = open_log()
    sequencer = sequencers(ledger, store_delay=0.02)
    receipt = sequencer.append(record(1), timeout=10)
    query = "SELECT note FROM checkpoints WHERE size = 2"
    deadline = time.monotonic() + 10
    while not run_sql(db_url, query) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [tuple(row) for row in run_sql(db_url, query)] == [(receipt.checkpoint,)]


def test_closed_ledger_fails_the_batch(open_log, sequencers):
    ledger = open_log()
    sequencer = sequencers(ledger)
    ledger.close()
    with pytest.raises(InvalidRequest, match="log 'agentgate.test/log' is closed"):
        sequencer.append(record(1), timeout=10)


def test_append_async(open_log, sequencers):
    ledger = open_log()
    sequencer = sequencers(ledger)

    async def append_three():
        return await asyncio.gather(
            *(sequencer.append_async(record(i)) for i in range(3))
        )

    receipts = asyncio.run(append_three())
    assert sorted(r.index for r in receipts) == [1, 2, 3]


def test_append_async_wakes_loop_once_per_batch(open_log, sequencers):
    ledger = open_log()
    held = HeldLedger(ledger)
    sequencer = sequencers(held)
    wakeups = []

    async def append_batch_of_forty():
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(callback, *args, **kwargs):
            wakeups.append(callback)
            return original(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counting
        blocker = asyncio.ensure_future(sequencer.append_async(record(0)))
        await asyncio.to_thread(held.started.wait, 10)
        tasks = [
            asyncio.ensure_future(sequencer.append_async(record(i)))
            for i in range(1, 41)
        ]
        await asyncio.sleep(0)
        held.release.set()
        return await blocker, await asyncio.gather(*tasks)

    first, receipts = asyncio.run(append_batch_of_forty())
    assert first.index == 1
    assert sorted(r.index for r in receipts) == list(range(2, 42))
    assert sequencer.batches == 2
    # One wake-up per batch, besides those of asyncio.to_thread.
    deliveries = [c for c in wakeups if getattr(c, "__name__", "") == "_deliver"]
    assert len(deliveries) == 2


def test_cancelled_async_append_stays_out(open_log, sequencers):
    ledger = open_log()
    held = HeldLedger(ledger)
    sequencer = sequencers(held)

    async def cancel_one():
        blocker = asyncio.ensure_future(sequencer.append_async(record(1)))
        await asyncio.to_thread(held.started.wait, 10)
        cancelled = asyncio.ensure_future(sequencer.append_async(record(2)))
        kept = asyncio.ensure_future(sequencer.append_async(record(3)))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        held.release.set()
        return await blocker, await kept, cancelled

    first, kept, cancelled = asyncio.run(cancel_one())
    assert cancelled.cancelled()
    assert (first.index, kept.index) == (1, 2)
    assert ledger.entries(1, 3) == [record(1), record(3)]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_batch": 0}, "max_batch must be at least 1, got 0"),
        ({"max_wait": -1}, "max_wait must not be negative, got -1"),
        ({"store_delay": 0}, "store_delay must be positive, got 0"),
    ],
)
def test_bad_options_rejected(open_log, options, message):
    with pytest.raises(InvalidRequest, match=message):
        Sequencer(open_log(), **options)
