"""A literal, recursive RFC 9162 section 2.1 implementation, for tests only.

Each function follows the definition in the RFC line by line (MTH in 2.1.1,
PATH in 2.1.3.1, PROOF and SUBPROOF in 2.1.4.1) over a list of leaf inputs
``D``. It is slow on purpose and shares no code with the ledger. ``MTH`` is
memoized on the leaf range so that exhaustive tests over a few hundred
leaves finish in seconds; the recursion itself is unchanged.
"""

import hashlib
from functools import lru_cache


def largest_power_of_two_below(n):
    """Return k, the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class ReferenceTree:
    """RFC 9162 hashes and proofs over the leaf inputs ``D[0:n]``."""

    def __init__(self, leaf_inputs):
        self.leaves = list(leaf_inputs)
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, start, stop):
        """MTH(D[start:stop])."""
        n = stop - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return hashlib.sha256(b"\x00" + self.leaves[start]).digest()
        k = largest_power_of_two_below(n)
        left = self.mth(start, start + k)
        right = self.mth(start + k, stop)
        return hashlib.sha256(b"\x01" + left + right).digest()

    def root(self, n):
        """MTH(D[n]), the root of the first n leaves."""
        return self.mth(0, n)

    def path(self, m, n):
        """PATH(m, D[n])."""
        return self._path(m, 0, n)

    def _path(self, m, start, stop):
        n = stop - start
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return self._path(m, start, start + k) + [self.mth(start + k, stop)]
        return self._path(m - k, start + k, stop) + [self.mth(start, start + k)]

    def proof(self, m, n):
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
        return self._subproof(m, 0, n, True)

    def _subproof(self, m, start, stop, b):
        n = stop - start
        if m == n:
            return [] if b else [self.mth(start, stop)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return self._subproof(m, start, start + k, b) + [self.mth(start + k, stop)]
        return self._subproof(m - k, start + k, stop, False) + [
            self.mth(start, start + k)
        ]
