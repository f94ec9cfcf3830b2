"""A literal RFC 9162 section 2.1 Merkle tree, for tests only.

The functions follow the recursive definitions of the RFC text: MTH for the
tree hash, PATH for inclusion proofs, and PROOF/SUBPROOF for consistency
proofs. They are slow and simple on purpose, so the fast verifier can be
checked against them. Trees are ranges ``[lo, hi)`` of one list of entries,
so that subtree hashes can be cached between calls.
"""

import functools
import hashlib


def largest_power_of_two_below(n: int) -> int:
    """Return k, the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class ReferenceTree:
    """MTH, PATH and PROOF over the entries ``D[0:n]``."""

    def __init__(self, entries: list[bytes]):
        self.entries = list(entries)
        self.mth = functools.lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        # MTH({}) = SHA-256(), MTH({d0}) = SHA-256(0x00 || d0),
        # MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return leaf(self.entries[lo])
        k = largest_power_of_two_below(n)
        return node(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def path(self, m: int, size: int) -> list[bytes]:
        """PATH(m, D[size])."""
        return self._path(m, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        # PATH(0, {d0}) = {}; for m < k: PATH(m, D[0:k]) : MTH(D[k:n]);
        # for m >= k: PATH(m - k, D[k:n]) : MTH(D[0:k]).
        n = hi - lo
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return self._path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def proof(self, m: int, size: int) -> list[bytes]:
        """PROOF(m, D[size]) = SUBPROOF(m, D[size], true)."""
        return self._subproof(m, 0, size, True)

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])};
        # for m <= k: SUBPROOF(m, D[0:k], b) : MTH(D[k:n]);
        # for m > k: SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).
        n = hi - lo
        if m == n:
            return [] if whole else [self.mth(lo, hi)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, whole) + [self.mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]


def path_length(m: int, n: int) -> int:
    """Return len(PATH(m, D[n])) by the same recursion, without hashing."""
    length = 0
    while n > 1:
        k = largest_power_of_two_below(n)
        if m < k:
            n = k
        else:
            m, n = m - k, n - k
        length += 1
    return length


def proof_length(m: int, n: int) -> int:
    """Return len(PROOF(m, D[n])) by the SUBPROOF recursion, without hashing."""
    length, whole = 0, True
    while m != n:
        k = largest_power_of_two_below(n)
        if m > k:
            m, n, whole = m - k, n - k, False
        else:
            n = k
        length += 1
    return length if whole else length + 1


def root_from_path(leaf_hash: bytes, m: int, n: int, path: list[bytes]) -> bytes:
    """Invert PATH: rebuild MTH(D[n]) from leaf m's hash and its audit path."""
    if n == 1:
        assert not path
        return leaf_hash
    k = largest_power_of_two_below(n)
    *rest, last = path
    if m < k:
        return node(root_from_path(leaf_hash, m, k, rest), last)
    return node(last, root_from_path(leaf_hash, m - k, n - k, rest))


def roots_from_proof(
    m: int, n: int, proof: list[bytes], first_root: bytes, whole: bool = True
) -> tuple[bytes, bytes]:
    """Invert SUBPROOF: rebuild MTH(D[0:m]) and MTH(D[n]) from a proof."""
    if m == n:
        if whole:
            assert not proof
            return first_root, first_root
        (subtree,) = proof
        return subtree, subtree
    k = largest_power_of_two_below(n)
    *rest, last = proof
    if m <= k:
        first, second = roots_from_proof(m, k, rest, first_root, whole)
        return first, node(second, last)
    first, second = roots_from_proof(m - k, n - k, rest, first_root, False)
    return node(last, first), node(last, second)
