"""``Ledger``: the append-only transparency log.

Every entry is the RFC 8785 (JCS) bytes of one JSON record. ``append_batch``
is the single write path: it checks the entries, commits them in one durable
transaction, signs one checkpoint for the new tree after the commit, and
returns one receipt per entry against that checkpoint.

A new log's first entries are ``key`` records, one per signing key, naming
the keys that sign its checkpoints. Re-opening a database reuses its stored
state: the head row, the stored subtrees and the latest checkpoint. Because
every checkpoint is signed from that committed state, the log never signs
two checkpoints of the same size with different roots.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from .canonical import canonical_bytes, check_entry
from .errors import InvalidRequest, StorageError
from .keys import Signer, validate_key_name
from .note import Checkpoint, parse_own_checkpoint, sign_checkpoint
from .proofs import consistency_proof
from .receipt import Receipt
from .storage import Store
from .tree import DEFAULT_CACHE_BYTES, EMPTY_ROOT, StoredTree

__all__ = ["Ledger", "key_record", "open_ledger"]

logger = logging.getLogger(__name__)

# Idempotency keys are opaque strings chosen by the caller.
MAX_IDEMPOTENCY_KEY_LENGTH = 256
# Key records are the first entries of a log; this bounds the read at open.
_MAX_LEADING_KEY_RECORDS = 16


def key_record(signer: Signer, now: datetime) -> bytes:
    """Return the canonical ``key`` record that names ``signer`` as a log key.

    The ``id`` is ``k-`` and the first 16 bytes (hex) of the SHA-256 of the
    record without its id, so the record is reproducible from the key and
    the time.
    """
    if now.tzinfo is None:
        raise InvalidRequest(f"time {now!r} has no time zone; pass an aware datetime")
    record: dict[str, Any] = {
        "type": "key",
        "version": 1,
        "time": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "role": "log",
        "key": str(signer.verifier_key),
    }
    digest = hashlib.sha256(canonical_bytes(record)).hexdigest()
    record["id"] = "k-" + digest[:32]
    return canonical_bytes(record)


class Ledger:
    """An open transparency log. Use ``Ledger.open`` to create one.

    All methods are thread-safe. Writes are serialized by one lock around
    ``append_batch``; reads run concurrently with writes and see the last
    committed tree.
    """

    def __init__(
        self,
        store: Store,
        tree: StoredTree,
        signers: Sequence[Signer],
        checkpoint: Checkpoint | None,
    ) -> None:
        self._store = store
        self._tree = tree
        self._signers = list(signers)
        self._checkpoint = checkpoint
        # Checkpoints signed but not yet stored; the next write transaction
        # (or close) stores them, see append_batch.
        self._unstored: list[tuple[int, str]] = []
        self._write_lock = threading.Lock()
        self._closed = False

    # -- opening --------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path_or_url: str | os.PathLike[str],
        signers: Signer | Sequence[Signer] | None = None,
        origin: str | None = None,
        *,
        create: bool = True,
        now: datetime | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> Ledger:
        """Open the log in ``path_or_url`` (an SQLite file path or database URL).

        ``signers`` sign checkpoints; every signer's name must be the origin,
        as specs/checkpoint.md requires. ``origin`` defaults to the first
        signer's name and must match the stored origin of an existing log.
        Without signers the log is read-only: appends raise
        ``InvalidRequest``. With ``create`` (the default) a missing log is
        created and its key records are appended, stamped with ``now``
        (default: the current UTC time).
        """
        signer_list = _signer_list(signers)
        if now is not None and now.tzinfo is None:
            raise InvalidRequest(
                f"time {now!r} has no time zone; pass an aware datetime"
            )
        if origin is None and signer_list:
            origin = signer_list[0].name
        if origin is not None:
            validate_key_name(origin)
        for signer in signer_list:
            if signer.name != origin:
                raise InvalidRequest(
                    f"signer key {signer.verifier_key} is named {signer.name!r}, but "
                    f"the log's key name must be its origin {origin!r}"
                )

        store = Store.open(path_or_url)
        try:
            return cls._open_store(store, signer_list, origin, create, now, cache_bytes)
        except BaseException:
            store.close()
            raise

    @classmethod
    def exists(cls, path_or_url: str | os.PathLike[str]) -> bool:
        """Return whether ``path_or_url`` contains a log; never creates a file."""
        text = os.fspath(path_or_url)
        if "://" not in text and not os.path.exists(text):
            return False
        store = Store.open(path_or_url)
        try:
            return store.read_head() is not None
        finally:
            store.close()

    @classmethod
    def _open_store(
        cls,
        store: Store,
        signers: list[Signer],
        origin: str | None,
        create: bool,
        now: datetime | None,
        cache_bytes: int,
    ) -> Ledger:
        head = store.read_head()
        if head is None:
            if not create:
                raise InvalidRequest(
                    f"{store.engine.url.render_as_string(hide_password=True)} contains "
                    "no log; create it first (agentgate log init)"
                )
            if not signers:
                raise InvalidRequest("creating a log needs at least one signer key")
            head = store.create_head(origin, EMPTY_ROOT)
            logger.info("created log %s", origin)
        elif origin is not None and head.origin != origin:
            raise InvalidRequest(
                f"the database contains the log {head.origin!r}, not {origin!r}; "
                "open it with its own origin and key"
            )

        tree = StoredTree(store, head, cache_bytes=cache_bytes)
        checkpoint = cls._stored_checkpoint(store, tree)
        ledger = cls(store, tree, signers, checkpoint)

        if head.size == 0:
            # A new log, or one whose creation stopped before its key records
            # were committed: write them now.
            if not signers:
                raise InvalidRequest(
                    f"log {head.origin!r} is empty; open it with its key to write the "
                    "key records"
                )
            now = now or datetime.now(timezone.utc)
            ledger.append_batch([(key_record(signer, now), None) for signer in signers])
        else:
            ledger._check_signers_are_log_keys()
            if ledger._checkpoint is None and signers:
                # The latest checkpoint was signed but its row was lost (the
                # process stopped before storing it). Signing the same size
                # again gives the same root, from the same stored subtrees.
                ledger._sign_checkpoint()
        logger.info("opened log %s at size %d", head.origin, ledger.size)
        return ledger

    @staticmethod
    def _stored_checkpoint(store: Store, tree: StoredTree) -> Checkpoint | None:
        """Return the stored checkpoint of the head size, checked against the head."""
        latest = store.read_latest_checkpoint()
        if latest is None:
            return None
        size, note = latest
        head = tree.head
        if size > head.size:
            raise StorageError(
                f"log {head.origin!r} has a checkpoint of size {size}, larger than "
                f"its tree of size {head.size}; the database is damaged"
            )
        if size < head.size:
            return None
        checkpoint = parse_own_checkpoint(note)
        if (checkpoint.origin, checkpoint.size, checkpoint.root) != (
            head.origin,
            head.size,
            head.root,
        ):
            raise StorageError(
                f"stored checkpoint of size {size} names origin {checkpoint.origin!r} "
                f"and root {checkpoint.root.hex()}, but the tree has "
                f"{head.origin!r} and {head.root.hex()}; the database is damaged"
            )
        return checkpoint

    def _check_signers_are_log_keys(self) -> None:
        """Raise unless each signer is named by one of the log's leading key records."""
        if not self._signers:
            return
        count = min(self.size, _MAX_LEADING_KEY_RECORDS)
        log_keys = set()
        for entry in self._store.read_entries(0, count):
            record = check_entry(entry)
            if record.get("type") != "key":
                break
            if record.get("role") == "log":
                log_keys.add(record.get("key"))
        # NOTE: keys added later by key records after the first non-key
        # entry (key rotation) are not looked up yet, so such a key is
        # rejected here.
        for signer in self._signers:
            if str(signer.verifier_key) not in log_keys:
                known = ", ".join(sorted(log_keys)) or "none"
                raise InvalidRequest(
                    f"signer key {signer.verifier_key} is not a key of log "
                    f"{self.origin!r} (its key records name: {known}); open the log "
                    "with its own key"
                )

    # -- properties -----------------------------------------------------------

    @property
    def origin(self) -> str:
        """The log's origin, the first line of every checkpoint."""
        return self._tree.head.origin

    @property
    def size(self) -> int:
        """The number of committed entries."""
        return self._tree.head.size

    @property
    def signers(self) -> list[Signer]:
        """The keys that sign new checkpoints (empty when read-only)."""
        return list(self._signers)

    # -- writes ---------------------------------------------------------------

    def append(self, entry: bytes, key: str | None = None) -> Receipt:
        """Append one entry and return its receipt; see ``append_batch``."""
        return self.append_batch([(entry, key)])[0]

    def append_batch(self, items: Sequence[tuple[bytes, str | None]]) -> list[Receipt]:
        """Append entries in one durable transaction and return their receipts.

        ``items`` are ``(entry, idempotency_key)`` pairs. Every entry must be
        canonical JCS bytes of a JSON object (else ``InvalidEntry``), and
        every key must be ``None`` or a non-empty string. The whole batch is
        checked before anything is stored. One checkpoint is signed for the
        batch, after the commit, and every receipt is proved against it.

        An idempotency key that was used before (in an earlier batch or
        earlier in this one) stores nothing new: its receipt names the first
        entry's index, re-proved against the current checkpoint. The entry
        must be byte for byte the first one, else ``InvalidRequest``.
        """
        self._check_writable()
        items = list(items)
        for position, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise InvalidRequest(
                    f"batch item {position} must be an (entry, idempotency key) "
                    f"pair, got {type(item).__name__}"
                )
            check_entry(item[0])
            _check_idempotency_key(item[1])
        if not items:
            return []

        with self._write_lock:
            self._check_writable()
            # Resolve idempotency keys against the store and the batch itself.
            previous = self._store.find_idempotency_keys(
                key for _, key in items if key is not None
            )
            indexes: list[int] = []
            first_in_batch: dict[str, tuple[int, bytes]] = {}
            new_entries: list[bytes] = []
            new_keys: list[str | None] = []
            next_index = self.size
            for entry, key in items:
                earlier = None
                if key is not None:
                    earlier = previous.get(key) or first_in_batch.get(key)
                if earlier is not None:
                    index, earlier_entry = earlier
                    if earlier_entry != bytes(entry):
                        raise InvalidRequest(
                            f"idempotency key {key!r} was first used for a different "
                            f"entry (leaf {index}); use a new key for a new entry"
                        )
                    indexes.append(index)
                    continue
                if key is not None:
                    first_in_batch[key] = (next_index, bytes(entry))
                indexes.append(next_index)
                new_entries.append(bytes(entry))
                new_keys.append(key)
                next_index += 1

            if new_entries:
                # Checkpoints signed since the last write ride along in this
                # transaction, so a batch costs one commit (one fsync).
                unstored, self._unstored = self._unstored, []
                try:
                    self._tree.append(new_entries, new_keys, unstored)
                except BaseException:
                    self._unstored = unstored + self._unstored
                    raise
                checkpoint = self._sign_checkpoint()
            elif self._checkpoint is None or self._checkpoint.size != self.size:
                checkpoint = self._sign_checkpoint()
            else:
                checkpoint = self._checkpoint

        paths = self._tree.inclusion_paths(indexes, checkpoint.size)
        return [
            Receipt.build(bytes(entry), index, path, checkpoint.note)
            for (entry, _), index, path in zip(items, indexes, paths)
        ]

    def _sign_checkpoint(self) -> Checkpoint:
        head = self._tree.head
        checkpoint = sign_checkpoint(head.origin, head.size, head.root, self._signers)
        self._checkpoint = checkpoint
        self._unstored.append((checkpoint.size, checkpoint.note))
        logger.debug("signed checkpoint of size %d", checkpoint.size)
        return checkpoint

    def _check_writable(self) -> None:
        if self._closed:
            raise InvalidRequest(f"log {self.origin!r} is closed")
        if not self._signers:
            raise InvalidRequest(
                f"log {self.origin!r} was opened without a signer key, so it is "
                "read-only; open it with its key to append"
            )

    # -- reads ----------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash of the tree of ``size`` leaves (default: all)."""
        return self._tree.root(size)

    def latest_checkpoint(self) -> str:
        """Return the signed note of the checkpoint for the current size."""
        checkpoint = self._checkpoint
        if checkpoint is None or checkpoint.size != self.size:
            raise InvalidRequest(
                f"log {self.origin!r} has no stored checkpoint of size {self.size}; "
                "open it with its key to sign one"
            )
        return checkpoint.note

    def checkpoint_at(self, size: int) -> str | None:
        """Return the checkpoint of ``size`` if one was signed and kept, else None.

        A checkpoint is stored with the next write or at ``close``. If the
        process stops before that, the checkpoint is lost, and the next open
        signs the latest size again.
        """
        for stored_size, note in list(self._unstored):
            if stored_size == size:
                return note
        return self._store.read_checkpoint(size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the RFC 9162 audit path for leaf ``index`` in the tree of ``size``."""
        return self._tree.inclusion_path(index, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Return the RFC 9162 consistency proof from size ``first`` to ``second``."""
        return consistency_proof(self._tree, first, second)

    def entries(self, start: int, stop: int) -> list[bytes]:
        """Return the entries of leaves ``[start, stop)``."""
        size = self.size
        for name, value in (("start", start), ("stop", stop)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRequest(
                    f"entries [{start!r}, {stop!r}): {name} must be an integer"
                )
        if not 0 <= start <= stop <= size:
            raise InvalidRequest(
                f"entries [{start}, {stop}): need 0 <= start <= stop <= {size}, "
                "the log size"
            )
        if start == stop:
            return []
        return self._store.read_entries(start, stop)

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """Store unstored checkpoints and close the database. Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._store.write_checkpoints(self._unstored)
                self._unstored = []
            finally:
                self._store.close()
        logger.info("closed log %s at size %d", self.origin, self.size)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger(origin={self.origin!r}, size={self.size})"


def open_ledger(
    path_or_url: str | os.PathLike[str],
    signers: Signer | Sequence[Signer] | None = None,
    origin: str | None = None,
    **options: Any,
) -> Ledger:
    """Open a log; the same as ``Ledger.open``."""
    return Ledger.open(path_or_url, signers, origin, **options)


def _signer_list(signers: Signer | Sequence[Signer] | None) -> list[Signer]:
    if signers is None:
        return []
    if isinstance(signers, Signer):
        return [signers]
    signer_list = list(signers)
    for signer in signer_list:
        if not isinstance(signer, Signer):
            raise InvalidRequest(
                f"expected Signer objects, got {type(signer).__name__}"
            )
    return signer_list


def _check_idempotency_key(key: object) -> None:
    if key is None:
        return
    if not isinstance(key, str) or not key:
        raise InvalidRequest(
            f"idempotency key must be None or a non-empty string, got {key!r}"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequest(
            f"idempotency key is {len(key)} characters; the maximum is "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH}"
        )
