"""RFC 9162 consistency proofs built from stored subtree hashes.

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
from collections.abc import Sequence

from .errors import InvalidRequest
from .tree import StoredTree

__all__ = ["consistency_proof", "consistency_ranges", "format_proof_text"]


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
