"""RFC 9162 proofs built from stored subtree hashes: audit paths and consistency.

``audit_paths`` computes the audit paths (section 2.1.3.1) of many leaves of
one tree in a single descent, so that the receipts of a batch share the
hashes they have in common instead of each walking the tree on its own.

pymerkle's own consistency path is a different structure from the RFC 9162
proof, so this module builds the RFC proof (section 2.1.4.1) directly:

    PROOF(m, D[n]) = SUBPROOF(m, D[n], true)
    SUBPROOF(m, D[m], true)  = {}
    SUBPROOF(m, D[m], false) = {MTH(D[m])}
    for m < n, with k the largest power of two smaller than n:
      m <= k: SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
      m >  k: SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])

Each MTH is the hash of a leaf range, which ``StoredTree`` computes from
O(log n) stored subtrees, loaded with one query.
"""

from __future__ import annotations

import base64
import hashlib
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .tree import StoredTree

__all__ = [
    "audit_path_ranges",
    "audit_paths",
    "consistency_proof",
    "consistency_ranges",
    "format_proof_text",
]

# Returns the hash of the aligned perfect subtree (level, node_index): the
# 2**level leaves starting at leaf node_index * 2**level.
SubtreeHash = Callable[[int, int], bytes]


def audit_paths(
    indexes: Sequence[int], size: int, subtree_hash: SubtreeHash
) -> dict[int, list[bytes]]:
    """Return the RFC 9162 audit path of each leaf in ``indexes``, by index.

    Requires ``0 <= index < size`` for each index; callers check it. Walks
    the recursion of section 2.1.3.1 once for all leaves:

        PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])      for m < k
        PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])  for m >= k

    with k the largest power of two smaller than n. Every left part D[0:k]
    of the recursion is an aligned perfect subtree, read with
    ``subtree_hash``. A right part is one too unless it ends at ``size``;
    those right-edge ranges are hashed from their pieces once and shared.
    Each path lists the sibling hashes from the leaf up to the root.
    """
    targets = sorted(set(indexes))
    paths: dict[int, list[bytes]] = {index: [] for index in targets}
    right_edge: dict[int, bytes] = {}

    def range_hash(start: int, stop: int) -> bytes:
        width = stop - start
        if width & (width - 1) == 0:
            level = width.bit_length() - 1
            return subtree_hash(level, start >> level)
        # Only ranges that end at `size` are not perfect subtrees.
        digest = right_edge.get(start)
        if digest is None:
            split = start + (1 << ((width - 1).bit_length() - 1))
            digest = node_hash(range_hash(start, split), range_hash(split, stop))
            right_edge[start] = digest
        return digest

    def descend(start: int, stop: int, low: int, high: int) -> None:
        # targets[low:high] are the leaves of interest in [start, stop).
        if stop - start == 1:
            return
        middle = start + (1 << ((stop - start - 1).bit_length() - 1))
        split = bisect_left(targets, middle, low, high)
        if low < split:
            descend(start, middle, low, split)
            sibling = range_hash(middle, stop)
            for index in targets[low:split]:
                paths[index].append(sibling)
        if split < high:
            descend(middle, stop, split, high)
            sibling = range_hash(start, middle)
            for index in targets[split:high]:
                paths[index].append(sibling)

    if targets:
        descend(0, size, 0, len(targets))
    return paths


def audit_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose hashes form the audit path (RFC 9162 2.1.3.1).

    Walks down from the root: at each split ``k`` (the largest power of two
    below the width) the sibling is the half that does not hold ``index``.
    ``StoredTree`` prefetches these before pymerkle requests them.
    """
    ranges = []
    start, stop = 0, size
    while stop - start > 1:
        k = 1 << ((stop - start - 1).bit_length() - 1)
        if index < start + k:
            ranges.append((start + k, stop))
            stop = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.append((index, index + 1))
    return ranges


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose hashes form ``PROOF(first, D[second])``.

    Requires ``0 < first <= second``; callers check it with the log's size.
    """
    start, stop, remaining, complete = 0, second, first, True
    siblings = []
    # Walk down the recursion, tracking the subtree [start, stop) that
    # contains the last `remaining` leaves of the old tree.
    while remaining != stop - start:
        k = 1 << ((stop - start - 1).bit_length() - 1)
        if remaining <= k:
            siblings.append((start + k, stop))
            stop = start + k
        else:
            siblings.append((start, start + k))
            start += k
            remaining -= k
            complete = False
    # SUBPROOF(m, D[m], b): the old tree's own subtree is named unless it is
    # the whole old tree (b still true), whose root the verifier already has.
    ranges = [] if complete else [(start, stop)]
    # The recursion emits the deepest sibling first.
    ranges.extend(reversed(siblings))
    return ranges


def consistency_proof(tree: StoredTree, first: int, second: int) -> list[bytes]:
    """Return the RFC 9162 consistency proof between sizes ``first`` and ``second``.

    Requires ``0 < first <= second <= tree size``. A first size of 0 is
    rejected although RFC 9162 would allow an empty proof: a verifier learns
    nothing from it. For ``first == second`` the proof is empty.
    """
    size = tree.head.size
    for name, value in (("first", first), ("second", second)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidRequest(
                f"consistency proof for sizes {first!r} -> {second!r}: {name} size "
                f"must be an integer, got {type(value).__name__}"
            )
    if first < 1:
        raise InvalidRequest(
            f"consistency proof for sizes {first} -> {second}: first size must be "
            "at least 1, because a proof from the empty tree proves nothing"
        )
    if first > second:
        raise InvalidRequest(
            f"consistency proof for sizes {first} -> {second}: first size must not "
            "exceed second"
        )
    if second > size:
        raise InvalidRequest(
            f"consistency proof for sizes {first} -> {second}: second size exceeds "
            f"the log size {size}"
        )
    return tree.range_hashes(consistency_ranges(first, second))


def format_proof_text(proof: Sequence[bytes]) -> str:
    """Return the proof text: one padded standard base64 hash per line."""
    return "".join(base64.b64encode(digest).decode("ascii") + "\n" for digest in proof)
