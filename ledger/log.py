"""``Ledger``: the append-only transparency log: opening, reads and closing.

Every entry is the RFC 8785 (JCS) bytes of one JSON record. Appends go
through one write path, ``ledger.writes``, which ``Ledger`` inherits. It
checks the entries and locks the log head, commits the entries in one
durable transaction, and signs one checkpoint for the new tree after the
commit. It returns one receipt per entry against that checkpoint.

Many processes may open the same database and append. Each write
transaction locks the head row first. A process whose view is behind then
reloads the tree's frontier (O(log n) hashes, one query) before it
appends, so all of them extend one linear log. ``refresh`` brings a
reader's view up to date the same way. Because every checkpoint is signed
from committed state, no two checkpoints of one size have different roots.

A new log's first entries are ``key`` records, one per signing key, naming
the keys that sign its checkpoints. ``add_key`` and ``retire_key`` append
later key records to rotate keys; the ``log_keys`` table tracks them, and a
key signs a checkpoint only when the tree contains its introducing record
and not its retiring one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import InvalidRequest, StorageError
from .items import MAX_IDEMPOTENCY_KEY_LENGTH, check_idempotency_key
from .keys import (
    KeyChange,
    LogKey,
    Signer,
    key_record,
    signers_for,
    validate_key_name,
)
from .note import Checkpoint, check_own_checkpoint
from .proofs import consistency_proof
from .storage import Store
from .tree import DEFAULT_CACHE_BYTES, EMPTY_ROOT, StoredTree
from .writes import LedgerWrites, aware_now, check_signer_name

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "Ledger",
    "check_idempotency_key",
    "key_record",
    "open_ledger",
]

logger = logging.getLogger(__name__)


class Ledger(LedgerWrites):
    """An open transparency log. Use ``Ledger.open`` to create one.

    All methods are thread-safe. Writes are serialized by one lock in this
    process and by the head row lock across processes. Reads run
    concurrently with writes and see the last tree this process committed
    or loaded.
    """

    def __init__(
        self,
        store: Store,
        tree: StoredTree,
        signers: Sequence[Signer],
        checkpoint: Checkpoint | None,
        log_keys: Sequence[LogKey],
    ) -> None:
        self._store = store
        self._tree = tree
        self._signers = list(signers)
        self._checkpoint = checkpoint
        self._log_keys = {key.verifier_key: key for key in log_keys}
        # Checkpoints signed but not yet stored; the next write transaction
        # (or close) stores them, see _write.
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
        as specs/checkpoint.md requires, and each must be an active key of
        an existing log. ``origin`` defaults to the first signer's name and
        must match the stored origin of an existing log. Without signers the
        log is read-only: appends raise ``InvalidRequest``. With ``create``
        (the default) a missing log is created and its key records are
        appended, stamped with ``now`` (default: the current UTC time).
        Without it, a database that contains no log raises
        ``InvalidRequest`` and is left as it was: no file is created and no
        table is added. The database schema is created or checked as
        ``ledger.migrations`` describes.
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
            check_signer_name(signer, origin)
        if not create:
            _check_contains_log(path_or_url)

        store = Store.open(path_or_url)
        try:
            return cls._open_store(store, signer_list, origin, create, now, cache_bytes)
        except BaseException:
            store.close()
            raise

    @classmethod
    def exists(cls, path_or_url: str | os.PathLike[str]) -> bool:
        """Return whether ``path_or_url`` contains a log; never creates anything."""
        text = os.fspath(path_or_url)
        if "://" not in text and not os.path.exists(text):
            return False
        store = Store.open(path_or_url, prepare_schema=False)
        try:
            return store.contains_log()
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
                    f"{store.name} contains no log; create it first (agentgate "
                    "log init)"
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
        ledger = cls(store, tree, signers, checkpoint, store.read_log_keys())

        if head.size == 0:
            # A new log, or one whose creation stopped before its key records
            # were committed: write them now, unless another process just did.
            if not signers:
                raise InvalidRequest(
                    f"log {head.origin!r} is empty; open it with its key to write the "
                    "key records"
                )
            now = aware_now(now)
            ledger._write(
                [(key_record(signer, now), None) for signer in signers],
                atomic=True,
                key_changes=[KeyChange(i, s) for i, s in enumerate(signers)],
                only_if_empty=True,
            )
        ledger._check_signers_are_log_keys()
        if ledger._checkpoint is None and ledger.signers:
            # The latest checkpoint was signed but its row was not stored yet
            # (its writer stopped, or has not written it yet). Signing the same size
            # again gives the same root, from the same stored subtrees.
            ledger._sign_checkpoint()
        logger.info("opened log %s at size %d", ledger.origin, ledger.size)
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
        return check_own_checkpoint(note, head.origin, head.size, head.root)

    def _check_signers_are_log_keys(self) -> None:
        """Raise unless each signer is an active key of the log."""
        for signer in self._signers:
            text = str(signer.verifier_key)
            log_key = self._log_keys.get(text)
            if log_key is None:
                known = ", ".join(self._active_keys()) or "none"
                raise InvalidRequest(
                    f"signer key {text} is not a key of log {self.origin!r} (its "
                    f"active keys: {known}); open the log with one of them, or "
                    "introduce this key with agentgate log add-key"
                )
            if log_key.retired_index is not None:
                raise InvalidRequest(
                    f"signer key {text} of log {self.origin!r} was retired by leaf "
                    f"{log_key.retired_index}; remove it from the keys this process "
                    "signs with"
                )

    # -- properties -----------------------------------------------------------

    @property
    def origin(self) -> str:
        """The log's origin, the first line of every checkpoint."""
        return self._tree.head.origin

    @property
    def size(self) -> int:
        """The number of entries this process has seen committed.

        Appends by other processes show after this process writes or calls
        ``refresh``.
        """
        return self._tree.head.size

    @property
    def signers(self) -> list[Signer]:
        """The configured keys that sign the checkpoint of the current size."""
        return signers_for(self.size, self._log_keys, self._signers)

    @property
    def log_keys(self) -> list[LogKey]:
        """Every key the log has had, in the order the key records introduced them."""
        return sorted(self._log_keys.values(), key=lambda key: key.added_index)

    # -- reads ----------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash of the tree of ``size`` leaves (default: all)."""
        self._refresh_beyond(size)
        return self._tree.root(size)

    def latest_checkpoint(self) -> str:
        """Return the newest signed checkpoint note, after a ``refresh``.

        That is the checkpoint of the current size when one is stored or a
        configured key may sign it. Otherwise (a read-only process, or one
        whose keys were retired) it is the newest stored checkpoint, which
        may be of a smaller size. Raises ``InvalidRequest`` when there is
        none.
        """
        self.refresh()
        with self._write_lock:
            checkpoint = self._checkpoint_for_head()
        if checkpoint is not None:
            return checkpoint.note
        latest = self._store.read_latest_checkpoint()
        if latest is None:
            raise InvalidRequest(
                f"log {self.origin!r} has no stored checkpoint; open it with its "
                "key to sign one"
            )
        return latest[1]

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
        """Return the RFC 9162 audit path for leaf ``index`` in the tree of ``size``.

        The path comes from ``StoredTree.inclusion_paths``, which reads the
        hashes it lacks in one round trip and skips pymerkle's per-node calls.
        """
        self._refresh_beyond(size)
        return self._tree.inclusion_paths([index], size)[0]

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Return the RFC 9162 consistency proof from size ``first`` to ``second``."""
        self._refresh_beyond(second)
        return consistency_proof(self._tree, first, second)

    def entries(self, start: int, stop: int) -> list[bytes]:
        """Return the entries of leaves ``[start, stop)``."""
        for name, value in (("start", start), ("stop", stop)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRequest(
                    f"entries [{start!r}, {stop!r}): {name} must be an integer"
                )
        self._refresh_beyond(stop)
        size = self.size
        if not 0 <= start <= stop <= size:
            raise InvalidRequest(
                f"entries [{start}, {stop}): need 0 <= start <= stop <= {size}, "
                "the log size"
            )
        if start == stop:
            return []
        return self._store.read_entries(start, stop)

    def _refresh_beyond(self, size: object) -> None:
        """Refresh when a read requests a size larger than this process has seen."""
        if isinstance(size, int) and not isinstance(size, bool) and size > self.size:
            self.refresh()

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



def _check_contains_log(path_or_url: str | os.PathLike[str]) -> None:
    """Raise ``InvalidRequest`` unless the database exists and contains a log."""
    text = os.fspath(path_or_url)
    if "://" not in text and not os.path.exists(text):
        raise InvalidRequest(
            f"no log at {text}: the file does not exist; create the log first "
            "(agentgate log init), or check the path"
        )
    store = Store.open(path_or_url, prepare_schema=False)
    try:
        if not store.contains_log():
            raise InvalidRequest(
                f"{store.name} contains no log; create it first (agentgate log "
                "init), or check the path"
            )
    finally:
        store.close()


def _signer_list(signers: Signer | Sequence[Signer] | None) -> list[Signer]:
    if signers is None:
        return []
    if isinstance(signers, Signer):
        return [signers]
    signer_list = list(signers)
    seen = set()
    for signer in signer_list:
        if not isinstance(signer, Signer):
            raise InvalidRequest(
                f"expected Signer objects, got {type(signer).__name__}"
            )
        if str(signer.verifier_key) in seen:
            raise InvalidRequest(f"signer key {signer.verifier_key} is listed twice")
        seen.add(str(signer.verifier_key))
    return signer_list
