"""The write path of ``Ledger``: appends, key rotation, checkpoints, catching up.

Appends go through one write path. It checks the entries (see
``ledger.items``) and locks the log head. Then it commits the entries in one
durable transaction, signs one checkpoint for the new tree after the commit,
and returns one receipt per entry against that checkpoint. The receipts' audit
paths are computed together, from the hashes the append just produced and
the frontier it started from, without a database read.

A process whose view is behind the stored head reloads the tree's frontier
(O(log n) hashes, one query) under the head lock before it appends, so all
processes extend one linear log.

``LedgerWrites`` holds these methods; ``ledger.log.Ledger`` inherits them
and owns the state they use (store, tree, signers, keys, checkpoints).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidRequest, LedgerError, StorageError
from .items import CheckedItem, assign_indexes, checked_items
from .keys import (
    KeyChange,
    LogKey,
    Signer,
    VerifierKey,
    apply_key_changes,
    key_record,
    signers_for,
)
from .note import Checkpoint, check_own_checkpoint, sign_checkpoint
from .receipt import Receipt
from .storage import Head, Reads, Store
from .tree import StoredTree

__all__ = ["LedgerWrites", "aware_now", "check_signer_name"]

logger = logging.getLogger(__name__)


class LedgerWrites:
    """The write methods of ``Ledger``, which sets the attributes below."""

    _store: Store
    _tree: StoredTree
    _signers: list[Signer]
    _checkpoint: Checkpoint | None
    _log_keys: dict[str, LogKey]
    _unstored: list[tuple[int, str]]
    _write_lock: threading.Lock
    _closed: bool
    origin: str
    size: int
    log_keys: list[LogKey]

    # -- writes ---------------------------------------------------------------

    def append(self, entry: bytes, key: str | None = None) -> Receipt:
        """Append one entry and return its receipt; see ``append_batch``."""
        return self.append_batch([(entry, key)])[0]

    def append_batch(self, items: Sequence[tuple[bytes, str | None]]) -> list[Receipt]:
        """Append entries in one durable transaction and return their receipts.

        ``items`` are ``(entry, idempotency_key)`` pairs. Every entry must be
        canonical JCS bytes of a JSON object (else ``InvalidEntry``) and not
        a ``key`` record, and every key must be ``None`` or a non-empty
        string. The whole batch is checked before anything is stored; items
        made by ``ledger.items.check_item`` were checked there and are not
        checked again. One checkpoint is signed for the batch, after the
        commit, and every receipt is proved against it.

        An idempotency key that was used before (by any process, or earlier
        in this batch) stores nothing new: its receipt names the first
        entry's index, re-proved against the current checkpoint. The entry
        must be byte for byte the first one, else ``IdempotencyConflict``.
        The lookup runs under the head lock, so it finds every committed key.
        """
        self._check_writable()
        checked = checked_items(items)
        for outcome in checked:
            if isinstance(outcome, LedgerError):
                raise outcome
        if not checked:
            return []
        return self._write(checked, atomic=True)

    def append_each(
        self, items: Sequence[tuple[bytes, str | None]]
    ) -> list[Receipt | LedgerError]:
        """Append entries in one transaction, each accepted or rejected on its own.

        Returns, in order, a receipt or the ``InvalidEntry`` or
        ``InvalidRequest`` that rejected the item (see ``append_batch`` for
        the rules); the other items are written anyway. Errors of the
        database or of the log as a whole are raised. A ``Sequencer`` calls
        this with items it checked in its callers' threads.
        """
        self._check_writable()
        outcomes: list[Any] = checked_items(items)
        positions = [
            position
            for position, outcome in enumerate(outcomes)
            if isinstance(outcome, CheckedItem)
        ]
        if positions:
            checked = [outcomes[position] for position in positions]
            for position, result in zip(
                positions, self._write(checked, atomic=False)
            ):
                outcomes[position] = result
        return outcomes

    def add_key(self, signer: Signer, now: datetime | None = None) -> Receipt:
        """Introduce ``signer``'s key with a key record and sign with it from then on.

        The checkpoint that first covers the record is signed by the keys
        that were active, and by the new key too. Returns the record's
        receipt. Raises ``InvalidRequest`` for a key the log already has,
        including a retired one.
        """
        self._check_writable()
        if not isinstance(signer, Signer):
            raise InvalidRequest(f"expected a Signer, got {type(signer).__name__}")
        check_signer_name(signer, self.origin)
        entry = key_record(signer, aware_now(now))
        change = KeyChange(0, signer)
        receipt = self._write([(entry, None)], atomic=True, key_changes=[change])[0]
        logger.info("added key %s to log %s", signer.verifier_key, self.origin)
        return receipt

    def retire_key(
        self, key: VerifierKey | Signer | str, now: datetime | None = None
    ) -> Receipt:
        """Retire an active key with a key record; it signs no later checkpoint.

        ``key`` is the verifier key (or its text). A configured signer of
        this process other than ``key`` must stay active, because it signs
        the checkpoint that covers the record. Returns the record's receipt.
        """
        self._check_writable()
        if isinstance(key, Signer):
            key = key.verifier_key
        elif isinstance(key, str):
            key = VerifierKey.parse(key)
        elif not isinstance(key, VerifierKey):
            raise InvalidRequest(
                f"expected a VerifierKey, Signer or key text, got {type(key).__name__}"
            )
        entry = key_record(key, aware_now(now), retired=True)
        change = KeyChange(0, key, retire=True)
        receipt = self._write([(entry, None)], atomic=True, key_changes=[change])[0]
        logger.info("retired key %s of log %s", key, self.origin)
        return receipt

    def store_checkpoints(self) -> int:
        """Store the checkpoints signed since the last write; return how many.

        Other processes see only stored checkpoints. The next write or
        ``close`` stores them too; this is for a writer that goes idle.
        """
        with self._write_lock:
            self._check_open()
            rows = self._unstored
            if rows:
                self._store.write_checkpoints(rows)
                self._unstored = []
            return len(rows)

    def refresh(self) -> bool:
        """Catch up with appends by other processes; return whether the log grew.

        Costs one primary key read of the head row when nothing changed. When
        the stored tree is larger, it also reads the new frontier (at most 64
        hashes, one query) and the key table.
        """
        self._check_open()
        stored = self._store.read_head(self.origin)
        if stored == self._tree.head:
            return False
        with self._write_lock:
            before = self.size
            with self._store.read() as reads:
                self._catch_up(reads, reads.read_head(self.origin))
            return self.size != before

    def _write(
        self,
        items: list[tuple[bytes, str | None]],
        *,
        atomic: bool,
        key_changes: Sequence[KeyChange] = (),
        only_if_empty: bool = False,
    ) -> list[Any]:
        """Append checked ``(entry, key)`` items; return a receipt or error for each.

        With ``atomic``, the first rejected item raises and nothing is
        written. With ``only_if_empty``, nothing is written (and nothing
        returned) when the log already has entries.
        """
        plan = None
        with self._write_lock:
            self._check_open()
            with self._store.write() as transaction:
                stored = transaction.lock_head(self.origin)
                if stored != self._tree.head:
                    self._catch_up(transaction, stored)
                if only_if_empty and self.size:
                    return []
                indexes, new_entries, new_keys = assign_indexes(
                    transaction, items, self.size
                )
                if atomic:
                    for outcome in indexes:
                        if isinstance(outcome, LedgerError):
                            raise outcome
                size_after = self.size + len(new_entries)
                log_keys, signers = self._keys_after(key_changes, indexes, size_after)
                if new_entries:
                    plan = self._tree.plan_append(new_entries, new_keys)
                    transaction.insert_checkpoints(self._unstored)
                    transaction.append(
                        plan.head, plan.new_head, plan.leaf_rows, plan.node_rows
                    )
                    for change in key_changes:
                        _store_key_change(transaction, change, indexes)

            if plan is not None:
                self._unstored = []
                self._tree.apply(plan)
                self._log_keys = log_keys
                self._signers = signers
                checkpoint = self._sign_checkpoint()
            else:
                checkpoint = self._checkpoint_for_head() or self._sign_checkpoint()

        valid = [index for index in indexes if isinstance(index, int)]
        known = plan.known_hashes() if plan is not None else None
        paths = iter(self._tree.inclusion_paths(valid, checkpoint.size, known))
        return [
            Receipt.build(entry, index, next(paths), checkpoint.note)
            if isinstance(index, int)
            else index
            for (entry, _), index in zip(items, indexes)
        ]
    def _keys_after(
        self,
        key_changes: Sequence[KeyChange],
        indexes: list[int | LedgerError],
        size: int,
    ) -> tuple[dict[str, LogKey], list[Signer]]:
        """Return the log keys and configured signers after ``key_changes``.

        Raises ``InvalidRequest`` for a change the log cannot take, or when
        no configured signer would sign the checkpoint of ``size``.
        """
        log_keys, signers = self._log_keys, self._signers
        if key_changes:
            log_keys, signers = apply_key_changes(
                self.origin, self.size, log_keys, signers, key_changes, indexes
            )
        if not signers_for(size, log_keys, signers):
            names = ", ".join(str(s.verifier_key) for s in signers)
            raise InvalidRequest(
                f"none of this process's signer keys ({names}) may sign log "
                f"{self.origin!r} at size {size}: each is retired or not a key of "
                "the log; open the log with one of its active keys"
            )
        return log_keys, signers

    def _catch_up(self, reads: Reads, stored: Head | None) -> None:
        """Move this process's view to the stored head, read through ``reads``."""
        if stored is None:
            raise StorageError(
                f"log {self.origin!r} has no head row any more; the database is "
                "damaged or was replaced"
            )
        before = self.size
        self._tree.catch_up(stored, reads.read_hashes)
        if self.size != before:
            self._log_keys = {key.verifier_key: key for key in reads.read_log_keys()}

    # -- checkpoints ----------------------------------------------------------

    def _active_keys(self) -> list[str]:
        return [key.verifier_key for key in self.log_keys if key.signs(self.size)]

    def _sign_checkpoint(self) -> Checkpoint:
        head = self._tree.head
        signers = signers_for(head.size, self._log_keys, self._signers)
        if not signers:
            raise InvalidRequest(
                f"log {head.origin!r} has no checkpoint of size {head.size} and "
                "none of this process's keys may sign one"
            )
        checkpoint = sign_checkpoint(head.origin, head.size, head.root, signers)
        self._checkpoint = checkpoint
        self._unstored.append((checkpoint.size, checkpoint.note))
        logger.debug("signed checkpoint of size %d", checkpoint.size)
        return checkpoint

    def _checkpoint_for_head(self) -> Checkpoint | None:
        """Return the checkpoint of the current size: cached, stored or signed now.

        None when none is stored and no configured key may sign it.
        """
        head = self._tree.head
        if self._checkpoint is not None and self._checkpoint.size == head.size:
            return self._checkpoint
        note = self._store.read_checkpoint(head.size)
        if note is not None:
            self._checkpoint = check_own_checkpoint(
                note, head.origin, head.size, head.root
            )
            return self._checkpoint
        if signers_for(head.size, self._log_keys, self._signers):
            return self._sign_checkpoint()
        return None

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidRequest(f"log {self.origin!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if not self._signers:
            raise InvalidRequest(
                f"log {self.origin!r} was opened without a signer key, so it is "
                "read-only; open it with its key to append"
            )


def _store_key_change(transaction, change: KeyChange, indexes: list) -> None:
    verifier_key = str(change.verifier_key)
    if change.retire:
        transaction.retire_log_key(verifier_key, indexes[change.position])
    else:
        transaction.add_log_key(verifier_key, indexes[change.position])


def check_signer_name(signer: Signer, origin: str | None) -> None:
    """Raise ``InvalidRequest`` unless the signer's key name is the log's origin."""
    if signer.name != origin:
        raise InvalidRequest(
            f"signer key {signer.verifier_key} is named {signer.name!r}, but "
            f"the log's key name must be its origin {origin!r}"
        )


def aware_now(now: datetime | None) -> datetime:
    """Return ``now``, or the current UTC time; reject a naive datetime."""
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise InvalidRequest(f"time {now!r} has no time zone; pass an aware datetime")
    return now
