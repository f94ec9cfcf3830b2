"""``StoredTree``: the pymerkle tree engine on top of the ``Store``.

pymerkle's ``BaseMerkleTree`` computes roots and inclusion paths from the
hashes of aligned power-of-two subtrees, which it requests one at a time
through ``_get_subroot(offset, width)``. Every such subtree is complete once
the tree has grown past it, and the Store keeps the hash of each complete
subtree, so ``StoredTree`` returns each ``_get_subroot`` request with one
lookup and never hashes a range of leaves. Roots and proofs therefore touch
O(log n) stored hashes, and ``prefetch`` loads the ones a request needs in
one query.

Hashing follows RFC 9162 section 2.1 with SHA-256: a leaf hash is
``SHA-256(0x00 || entry)`` and an interior node ``SHA-256(0x01 || left ||
right)``; pymerkle's security mode applies exactly these prefixes.

Two kinds of hashes stay in memory: the frontier (the roots of the perfect
subtrees that make up the current tree, at most 64) and a byte-bounded LRU
cache of recently written or read subtrees, which serves the receipts of a
batch that was just appended without a database read. Complete subtrees
never change, so the cache stays valid when another process extends the
log; ``catch_up`` then only reloads the frontier, in one query.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pymerkle import BaseMerkleTree

from .errors import InvalidRequest, StorageError
from .proofs import audit_path_ranges, audit_paths
from .storage import Head, LeafRow, Store

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "EMPTY_ROOT",
    "AppendPlan",
    "StoredTree",
    "leaf_hash",
    "subtrees",
]

logger = logging.getLogger(__name__)

# Root hash of the empty tree: SHA-256 of the empty string (RFC 9162 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()
# About 200,000 cached subtree hashes at pymerkle's estimate of ~290 bytes each.
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

# Reads the stored hashes of (level, node_index) subtrees, as Store does.
HashReader = Callable[[Iterable[tuple[int, int]]], dict[tuple[int, int], bytes]]


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def subtrees(start: int, stop: int) -> list[tuple[int, int]]:
    """Split the leaf range ``[start, stop)`` into aligned perfect subtrees.

    Returns ``(level, node_index)`` keys from left to right: the subtree of
    ``2**level`` leaves starting at leaf ``node_index * 2**level``. The split
    takes the largest power of two that fits at each step, which is the
    decomposition pymerkle's ``_get_root`` requests. Every range that RFC
    9162 proofs name starts at a multiple of that power, so every piece is
    aligned. A range where that fails raises ``ValueError``.
    """
    keys = []
    offset = start
    while offset < stop:
        level = (stop - offset).bit_length() - 1
        if offset % (1 << level):
            raise ValueError(
                f"leaf range [{start}, {stop}) is not split into aligned subtrees"
            )
        keys.append((level, offset >> level))
        offset += 1 << level
    return keys


@dataclass(frozen=True)
class AppendPlan:
    """The rows and the new state that appending some entries produces.

    ``StoredTree.plan_append`` computes it without touching the database or
    the tree; the caller stores the rows and then calls ``StoredTree.apply``.
    """

    head: Head
    new_head: Head
    leaf_rows: list[LeafRow]
    node_rows: list[tuple[int, int, bytes]]
    frontier: dict[int, bytes]
    old_frontier: dict[int, bytes]

    def known_hashes(self) -> dict[tuple[int, int], bytes]:
        """Return the subtree hashes the plan holds, by ``(level, node_index)``.

        They are the new leaves and nodes and the frontier of ``head``,
        which together contain every sibling on the audit paths of the new
        leaves in the tree of ``new_head``.
        """
        known = {(0, row.index): row.leaf_hash for row in self.leaf_rows}
        for level, index, digest in self.node_rows:
            known[(level, index)] = digest
        frontier_keys = _frontier_keys(self.head.size)
        known.update(
            (key, self.old_frontier[level]) for level, key in frontier_keys.items()
        )
        return known


class StoredTree(BaseMerkleTree):
    """A pymerkle Merkle tree whose nodes live in a ``Store``.

    ``head`` is the committed state to start from; ``open`` reads it. The
    tree serializes its own state changes with pymerkle's reentrant lock,
    and callers that append from several threads hold a lock around
    ``append`` as well (``Ledger`` does).
    """

    def __init__(
        self, store: Store, head: Head, *, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        super().__init__("sha256", capacity=cache_bytes)
        self.store = store
        self._head = head
        # Frontier: level -> hash of the perfect subtree at that level that
        # ends the current tree. Levels are the set bits of the size.
        self._frontier = self._load_frontier(head, store.read_hashes)

    @classmethod
    def open(
        cls, store: Store, *, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> StoredTree:
        """Load the tree whose head row is in ``store``."""
        head = store.read_head()
        if head is None:
            raise StorageError(
                "database contains no log head row; create the log first"
            )
        return cls(store, head, cache_bytes=cache_bytes)

    @property
    def head(self) -> Head:
        """The committed head: origin, size and root."""
        return self._head

    # -- pymerkle storage interface -------------------------------------------

    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        self.append([data])
        return self._head.size

    def _get_leaf(self, index: int) -> bytes:
        # pymerkle counts leaves from one.
        return self._get_subroot(index - 1, 1)

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        return self.store.read_leaf_hashes(offset, offset + width)

    def _get_size(self) -> int:
        return self._head.size

    def append_entries(self, entries: Iterable[bytes]) -> int:
        """Append ``entries`` in one transaction and return the new size."""
        return self.append(list(entries)).size

    def _get_subroot(self, offset: int, width: int) -> bytes:
        """Return the stored hash of the aligned subtree ``[offset, offset+width)``."""
        level = width.bit_length() - 1
        if width != 1 << level or offset % width:
            raise ValueError(f"subtree [{offset}, {offset + width}) is not aligned")
        key = (level, offset >> level)
        cached = self._cached_subtree(key)
        if cached is not None:
            return cached
        return self._load([key])[key]

    def _cached_subtree(self, key: tuple[int, int]) -> bytes | None:
        """Return a subtree hash from the frontier or the cache, else None."""
        with self.lock:
            digest = self._frontier_hash(key) or self.cache.get(key)
            if digest is None:
                self.misses += 1
            else:
                self.hits += 1
            return digest

    def _load(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Read subtree hashes from the store into the cache; raise if any is absent."""
        keys = list(keys)
        found = self.store.read_hashes(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            level, index = missing[0]
            raise StorageError(
                f"subtree hash at level {level}, index {index} is missing from the "
                "database; the database is damaged"
            )
        with self.lock:
            for key, digest in found.items():
                self._remember(key, digest)
        return found

    # -- reads ----------------------------------------------------------------

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Load every subtree hash needed for the leaf ranges in one query."""
        with self.lock:
            wanted = {
                key
                for start, stop in ranges
                for key in subtrees(start, stop)
                if self._frontier_hash(key) is None and key not in self.cache
            }
        if not wanted:
            return
        found = self.store.read_hashes(wanted)
        with self.lock:
            for key, digest in found.items():
                self._remember(key, digest)

    def range_hash(self, start: int, stop: int) -> bytes:
        """Return the RFC 9162 hash of leaves ``[start, stop)``, MTH(D[start:stop]).

        The range must lie inside the tree; the empty range has the hash of
        the empty string.
        """
        if not 0 <= start <= stop <= self._head.size:
            raise InvalidRequest(
                f"leaf range [{start}, {stop}) is outside the tree of size "
                f"{self._head.size}"
            )
        with self.lock:
            return self._get_root(start, stop)

    def range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return ``range_hash`` for each range, prefetching all subtrees."""
        self.prefetch(ranges)
        return [self.range_hash(start, stop) for start, stop in ranges]

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash of the first ``size`` leaves (default: all)."""
        size = self._head.size if size is None else size
        if not isinstance(size, int) or not 0 <= size <= self._head.size:
            raise InvalidRequest(
                f"tree size {size!r} is outside [0, {self._head.size}], the sizes "
                "this log has had"
            )
        self.prefetch([(0, size)])
        return self.get_root(size)

    def inclusion_path(self, index: int, size: int) -> list[bytes]:
        """Return the RFC 9162 audit path for leaf ``index`` in the tree of ``size``.

        pymerkle's inclusion path starts with the leaf hash itself, followed
        by the sibling hashes from the leaf up to the root's children. The
        RFC 9162 section 2.1.3.1 path is that list without its first element.
        """
        self._check_inclusion_request(index, size)
        self.prefetch(audit_path_ranges(index, size))
        proof = self.prove_inclusion(index + 1, size)
        return list(proof.path[1:])

    def inclusion_paths(
        self,
        indexes: Sequence[int],
        size: int,
        known: Mapping[tuple[int, int], bytes] | None = None,
    ) -> list[list[bytes]]:
        """Return ``inclusion_path`` for each index, computed in one descent.

        ``known`` maps ``(level, node_index)`` to subtree hashes the caller
        already has, such as ``AppendPlan.known_hashes()``. They are used
        before the frontier and the cache; any other hash needed is read
        from the store, all in one query.
        """
        for index in indexes:
            self._check_inclusion_request(index, size)
        known = dict(known or {})
        missing: set[tuple[int, int]] = set()

        def subtree_hash(level: int, index: int) -> bytes:
            key = (level, index)
            digest = known.get(key) or self._cached_subtree(key)
            if digest is None:
                # A stand-in: the paths are computed again once it is read.
                missing.add(key)
                return EMPTY_ROOT
            return digest

        paths = audit_paths(indexes, size, subtree_hash)
        if missing:
            # Which hashes a path needs depends on the sizes alone, so the
            # first descent requested every one of them, and _load raises
            # if the store lacks any.
            known.update(self._load(missing))
            paths = audit_paths(indexes, size, subtree_hash)
        return [paths[index] for index in indexes]

    def _check_inclusion_request(self, index: object, size: object) -> None:
        if not isinstance(size, int) or not 0 < size <= self._head.size:
            raise InvalidRequest(
                f"inclusion proof for index {index!r} in size {size!r}: size must be "
                f"in [1, {self._head.size}], the non-empty sizes this log has had"
            )
        if not isinstance(index, int) or not 0 <= index < size:
            raise InvalidRequest(
                f"inclusion proof for index {index!r} in size {size}: index must be "
                f"in [0, {size - 1}]"
            )

    # -- writes ---------------------------------------------------------------

    def append(
        self,
        entries: Sequence[bytes],
        idempotency_keys: Sequence[str | None] | None = None,
        checkpoint_rows: Sequence[tuple[int, str]] = (),
    ) -> Head:
        """Append leaves for ``entries`` in one durable transaction.

        Commits the rows of ``plan_append`` with the new head (and any
        ``checkpoint_rows``), and only then updates the in-memory state.
        Returns the new head. Nothing changes in memory if the transaction
        fails, which it does when another writer moved the stored head.
        """
        plan = self.plan_append(entries, idempotency_keys)
        self.store.append(
            plan.head, plan.new_head, plan.leaf_rows, plan.node_rows, checkpoint_rows
        )
        self.apply(plan)
        return plan.new_head

    def plan_append(
        self,
        entries: Sequence[bytes],
        idempotency_keys: Sequence[str | None] | None = None,
    ) -> AppendPlan:
        """Compute the leaf hashes and every subtree the new leaves complete.

        Neither the database nor the tree changes; see ``AppendPlan``.
        """
        if idempotency_keys is None:
            idempotency_keys = [None] * len(entries)
        keys = list(idempotency_keys)
        if len(keys) != len(entries):
            raise InvalidRequest(
                f"got {len(entries)} entries but {len(keys)} idempotency keys"
            )

        head = self._head
        old_frontier = self._frontier
        frontier = dict(old_frontier)
        size = head.size
        leaf_rows = []
        node_rows = []
        for entry, key in zip(entries, keys):
            digest = leaf_hash(entry)
            leaf_rows.append(LeafRow(size, digest, entry, key))
            # Leaf `size` completes one subtree per trailing 1 bit of `size`:
            # each merges with the frontier subtree of the same level.
            level = 0
            node = digest
            while size >> level & 1:
                node = self.hash_pair(frontier.pop(level), node)
                level += 1
                node_rows.append((level, size >> level, node))
            frontier[level] = node
            size += 1

        new_head = Head(origin=head.origin, size=size, root=self._fold(frontier))
        return AppendPlan(head, new_head, leaf_rows, node_rows, frontier, old_frontier)

    def apply(self, plan: AppendPlan) -> None:
        """Move the in-memory state to ``plan.new_head`` after its rows committed."""
        with self.lock:
            if plan.head != self._head:
                raise StorageError(
                    f"log {plan.head.origin!r}: an append planned at size "
                    f"{plan.head.size} was committed, but the tree is now at size "
                    f"{self._head.size}; appends to one tree must be serialized"
                )
            self._head = plan.new_head
            self._frontier = plan.frontier
            for row in plan.leaf_rows:
                self._remember((0, row.index), row.leaf_hash)
            for level, index, digest in plan.node_rows:
                self._remember((level, index), digest)
        logger.debug("appended leaves [%d, %d)", plan.head.size, plan.new_head.size)

    def catch_up(self, head: Head, read_hashes: HashReader) -> None:
        """Move to a larger stored ``head`` that another writer committed.

        Reads the new frontier with ``read_hashes`` (one query for at most
        64 hashes) and checks that it folds to ``head.root``. Raises
        ``StorageError`` if ``head`` is smaller than the current head, or of
        the same size with another root: a log never shrinks or forks.
        """
        current = self._head
        if head.origin != current.origin or head.size < current.size:
            raise StorageError(
                f"log {current.origin!r}: the stored head is {head.origin!r} at "
                f"size {head.size}, but this process already saw size "
                f"{current.size}; the database was rolled back or replaced, so "
                "stop writing and compare it with the latest published checkpoint"
            )
        if head.size == current.size:
            if hmac.compare_digest(head.root, current.root):
                return
            raise StorageError(
                f"log {current.origin!r}: the stored root of size {head.size} is "
                f"{head.root.hex()}, but this process saw {current.root.hex()}; "
                "the log forked, so stop writing and inspect the database"
            )
        frontier = self._load_frontier(head, read_hashes)
        with self.lock:
            self._head = head
            self._frontier = frontier
        logger.debug(
            "caught up with log %s from size %d to %d",
            head.origin,
            current.size,
            head.size,
        )

    # -- helpers --------------------------------------------------------------

    def _remember(self, key: tuple[int, int], digest: bytes) -> None:
        try:
            self.cache[key] = digest
        except ValueError:
            # The LRU cache rejects an entry larger than its whole capacity,
            # which happens only when the capacity is set near zero.
            pass

    def _frontier_hash(self, key: tuple[int, int]) -> bytes | None:
        level, index = key
        digest = self._frontier.get(level)
        if digest is None:
            return None
        # The frontier subtree at `level` starts where the higher ones end.
        start = (self._head.size >> (level + 1)) << (level + 1)
        return digest if index == start >> level else None

    def _load_frontier(self, head: Head, read_hashes: HashReader) -> dict[int, bytes]:
        """Read the frontier of ``head`` and check that it folds to its root."""
        size = head.size
        keys = _frontier_keys(size)
        found = read_hashes(list(keys.values())) if keys else {}
        missing = [key for key in keys.values() if key not in found]
        if missing:
            raise StorageError(
                f"subtree hashes {missing} of the tree of size {size} are missing "
                "from the database; the database is damaged"
            )
        frontier = {level: found[key] for level, key in keys.items()}
        root = self._fold(frontier)
        if not hmac.compare_digest(root, head.root):
            raise StorageError(
                f"log {head.origin!r}: the stored subtrees of size {size} give "
                f"root {root.hex()}, but the head row says {head.root.hex()}; the "
                "database is damaged"
            )
        return frontier

    def _fold(self, frontier: dict[int, bytes]) -> bytes:
        """Combine frontier subtrees from right (smallest) to left into the root."""
        if not frontier:
            return EMPTY_ROOT
        return self.hash_fold([frontier[level] for level in sorted(frontier)])


def _frontier_keys(size: int) -> dict[int, tuple[int, int]]:
    """Map each level of the frontier of ``size`` to its ``(level, node_index)``.

    The frontier subtrees are the perfect subtrees that make up the tree of
    ``size`` leaves, one per set bit of ``size``, largest first.
    """
    keys = {}
    offset = 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            keys[level] = (level, offset >> level)
            offset += 1 << level
    return keys
