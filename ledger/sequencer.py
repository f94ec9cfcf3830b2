"""Group commit: many concurrent appends, one transaction and one signature.

Callers hand entries to the ``Sequencer``; one writer thread takes everything
that is waiting (up to ``max_batch`` entries), appends it with
``Ledger.append_each`` in one durable transaction, signs one checkpoint, and
gives every caller its receipt against that checkpoint. Each entry is
checked in its caller's thread (``ledger.items.check_item``), so a bad entry
or a key record raises at once, and the ledger takes the checked items
without checking them again. An entry that the log rejects in the batch (a
reused idempotency key with other bytes) fails only its own caller; the
rest of the batch is written.

The batch size follows the load without a timer: while one batch commits, new
callers queue up and form the next batch. A lone caller is written at once.
Under load the writer may linger up to ``max_wait`` seconds for a batch to
fill, but only while entries keep arriving, so the wait never delays a
caller that is alone.

Several processes may each run a Sequencer on the same database; the
ledger's head lock makes their batches take turns on one log. Other
processes read only stored checkpoints, and a batch's checkpoint is stored
with the next batch, so after ``store_delay`` seconds without new entries
the writer stores it on its own.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from .errors import InvalidRequest, LedgerError
from .items import CheckedItem, check_item
from .log import Ledger
from .receipt import Receipt

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_STORE_DELAY",
    "Sequencer",
    "SequencerClosed",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 512
DEFAULT_MAX_WAIT = 0.002
DEFAULT_STORE_DELAY = 0.05


class SequencerClosed(LedgerError):
    """The sequencer was closed; the entry was not appended."""


@dataclass
class _Pending:
    item: CheckedItem
    future: Future
    # Set for append_async: the asyncio future its caller awaits.
    waiter: asyncio.Future | None = None


class Sequencer:
    """Batches concurrent appends to one ``Ledger`` (see the module docstring).

    ``ledger`` may also be a wrapper that has only ``append_batch``. Then a
    batch in which the log rejects one entry is written again entry by
    entry, so that only that entry's caller gets the error.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait: float = DEFAULT_MAX_WAIT,
        store_delay: float = DEFAULT_STORE_DELAY,
    ) -> None:
        if max_batch < 1:
            raise InvalidRequest(f"max_batch must be at least 1, got {max_batch}")
        if max_wait < 0:
            raise InvalidRequest(f"max_wait must not be negative, got {max_wait}")
        if store_delay <= 0:
            raise InvalidRequest(f"store_delay must be positive, got {store_delay}")
        self.ledger = ledger
        self._append_each = getattr(ledger, "append_each", None)
        self._store_checkpoints = getattr(ledger, "store_checkpoints", None)
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.store_delay = store_delay
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        # Guards the closed flag and every put, so that nothing is queued
        # behind the stop marker after the writer has drained the queue.
        self._submit_lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.entries = 0
        self._writer = threading.Thread(
            target=self._run, name="agentgate-sequencer", daemon=True
        )
        self._writer.start()

    # -- callers ----------------------------------------------------------------

    def submit(self, entry: bytes, key: str | None = None) -> Future:
        """Queue an entry and return a future of its ``Receipt``.

        The entry and key are checked here, in the caller's thread, so a bad
        one (or a key record) raises ``InvalidEntry`` or ``InvalidRequest``
        at once and never reaches a batch. Raises ``SequencerClosed`` after
        ``close``. Cancelling the future before its batch starts keeps the
        entry out of the log.
        """
        return self._submit(entry, key, None)

    def _submit(
        self, entry: bytes, key: str | None, waiter: asyncio.Future | None
    ) -> Future:
        item = check_item(entry, key)
        future: Future = Future()
        with self._submit_lock:
            if self._closed:
                raise SequencerClosed(
                    "the sequencer is closed, so the entry was not appended; "
                    "append through a new Sequencer"
                )
            self._queue.put(_Pending(item, future, waiter))
        return future

    def append(
        self, entry: bytes, key: str | None = None, timeout: float | None = None
    ) -> Receipt:
        """Append one entry and wait up to ``timeout`` seconds for its receipt."""
        return self.submit(entry, key).result(timeout)

    async def append_async(self, entry: bytes, key: str | None = None) -> Receipt:
        """Append one entry from asyncio code and await its receipt.

        The writer hands the outcomes of a batch to each event loop in one
        call, rather than waking the loop once per entry. Cancelling the
        awaiting task before the entry's batch starts keeps it out of the
        log, as cancelling ``submit``'s future does.
        """
        waiter = asyncio.get_running_loop().create_future()
        future = self._submit(entry, key, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            future.cancel()
            raise

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what is queued, stop the writer, and reject later submissions.

        Waits up to ``timeout`` seconds for the writer. Entries queued before
        the call are still written (or failed, if the ledger fails) when the
        wait times out.
        """
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._writer.join(timeout)
        if self._writer.is_alive():
            logger.warning(
                "sequencer writer still busy %s s after close; queued entries "
                "are written or failed when it finishes",
                timeout,
            )

    def __enter__(self) -> Sequencer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the writer -------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        unstored = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.store_delay if unstored else None)
            except queue.Empty:
                unstored = False
                self._store_idle_checkpoints()
                continue
            if first is None:
                break
            unstored = self._store_checkpoints is not None
            batch = [first]
            stopping = self._fill(batch)
            self._write(batch)
        # Only the stop marker was queued last, and submit puts nothing after
        # it, so the queue is empty here; fail anything left all the same.
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None and pending.future.set_running_or_notify_cancel():
                closed = SequencerClosed(
                    "the sequencer closed before this entry was written"
                )
                _settle([pending], [closed])

    def _store_idle_checkpoints(self) -> None:
        try:
            self._store_checkpoints()
        except LedgerError as err:
            # Not fatal: the next batch or the ledger's close stores them.
            logger.warning("storing the latest checkpoint failed: %s", err)

    def _fill(self, batch: list[_Pending]) -> bool:
        """Add waiting entries to ``batch``; return True when the stop marker came."""
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                # Linger only when this batch already shares the commit with
                # others: a caller that came alone is written at once.
                remaining = deadline - time.monotonic()
                if len(batch) == 1 or remaining <= 0:
                    return False
                try:
                    pending = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return False
            if pending is None:
                return True
            batch.append(pending)
        return False

    def _write(self, batch: list[_Pending]) -> None:
        # A cancelled future's entry is left out; the others can no longer be
        # cancelled, so every one of them gets a result or an error.
        batch = [p for p in batch if p.future.set_running_or_notify_cancel()]
        if not batch:
            return
        items = [pending.item for pending in batch]
        try:
            if self._append_each is not None:
                outcomes = self._append_each(items)
            else:
                outcomes = self._append_batch_split(items)
        except BaseException as err:  # noqa: BLE001 - every waiter must hear
            logger.error("batch of %d entries failed: %s", len(batch), err)
            _settle(batch, [err] * len(batch))
            return
        self.batches += 1
        self.entries += sum(
            not isinstance(outcome, BaseException) for outcome in outcomes
        )
        _settle(batch, outcomes)

    def _append_batch_split(self, items: list[tuple[bytes, str | None]]) -> list:
        """Append with ``append_batch``; on a rejected entry, retry one by one."""
        try:
            return self.ledger.append_batch(items)
        except InvalidRequest as err:
            if len(items) == 1:
                return [err]
        outcomes = []
        for item in items:
            try:
                outcomes.extend(self.ledger.append_batch([item]))
            except InvalidRequest as err:
                outcomes.append(err)
        return outcomes


def _settle(batch: list[_Pending], outcomes: list) -> None:
    """Give each pending entry its outcome: a receipt, or the error to raise.

    Every future is settled here. The waiters of ``append_async`` callers
    are settled by one callback per event loop.
    """
    deliveries: dict[asyncio.AbstractEventLoop, list] = {}
    for pending, outcome in zip(batch, outcomes):
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
        if pending.waiter is not None:
            loop = pending.waiter.get_loop()
            deliveries.setdefault(loop, []).append((pending.waiter, outcome))
    for loop, pairs in deliveries.items():
        try:
            loop.call_soon_threadsafe(_deliver, pairs)
        except RuntimeError:
            # The loop was closed, so no caller awaits these outcomes.
            logger.debug("event loop closed before %d outcomes arrived", len(pairs))


def _deliver(pairs: list[tuple[asyncio.Future, object]]) -> None:
    """Settle asyncio waiters, in their event loop's thread."""
    for waiter, outcome in pairs:
        if waiter.done():
            # Its caller was cancelled after the batch had started.
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
