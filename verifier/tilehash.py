"""Roots and RFC 9162 proofs computed from a tiled log's hashes.

The verifier never takes a proof from the log. It reads the hashes the log
publishes in its tiles and computes the root and the inclusion and
consistency proofs itself, following RFC 9162 section 2.1. The results mean
something only once checked against a checkpoint signed by the log's key:
``verify_inclusion`` and ``verify_consistency`` in ``verifier.merkle`` do
that, so a tile that lies makes the check fail.

``CompactRange`` keeps the roots of the complete subtrees that make up the
first ``size`` leaves, at most 64 hashes, so a monitor that saw the tree at
one size extends it to the next with only the new leaves.
"""

import hashlib
from collections.abc import Iterable, Iterator

from verifier._encoding import encode_base64
from verifier.errors import MalformedInput
from verifier.merkle import EMPTY_ROOT, HASH_SIZE
from verifier.tiles import TILE_HEIGHT, TILE_WIDTH, TiledLog, level_width

_NODE_PREFIX = b"\x01"


class CompactRange:
    """The complete-subtree roots ("peaks") of the leaves ``[0, size)``.

    Peak ``j`` covers the leaves of the ``j``-th set bit of ``size``, from the
    most significant. Appending a leaf merges the equal-sized peaks at the
    end, as adding 1 carries through the trailing one bits of ``size``.
    """

    def __init__(self, size: int = 0, peaks: Iterable[bytes] = ()) -> None:
        self.size = size
        self.peaks = [bytes(peak) for peak in peaks]
        if len(self.peaks) != size.bit_count() or any(
            len(peak) != HASH_SIZE for peak in self.peaks
        ):
            raise MalformedInput(
                f"compact range of size {size}: expected {size.bit_count()} "
                f"hashes of {HASH_SIZE} bytes, got {len(self.peaks)}"
            )

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf hash."""
        size = self.size
        peaks = self.peaks
        node = leaf_hash
        while size & 1:
            node = hashlib.sha256(_NODE_PREFIX + peaks.pop() + node).digest()
            size >>= 1
        peaks.append(node)
        self.size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaf hashes in order."""
        # Inlined append: this loop runs once per leaf of the audited log.
        sha256 = hashlib.sha256
        peaks = self.peaks
        size = self.size
        for node in leaf_hashes:
            carry = size
            while carry & 1:
                node = sha256(_NODE_PREFIX + peaks.pop() + node).digest()
                carry >>= 1
            peaks.append(node)
            size += 1
        self.size = size

    def root(self) -> bytes:
        """Return the RFC 9162 root of the leaves ``[0, size)``.

        The peaks fold from the right: with peaks ``P1 .. Pk`` the root is
        ``H(P1, H(P2, ... H(Pk-1, Pk)))``, which is MTH of section 2.1.1
        because every split point of the tree falls between two peaks.
        """
        if not self.peaks:
            return EMPTY_ROOT
        node = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            node = hashlib.sha256(_NODE_PREFIX + peak + node).digest()
        return node

    def copy(self) -> "CompactRange":
        return CompactRange(self.size, self.peaks)

    def to_json(self) -> dict:
        return {"size": self.size, "peaks": [encode_base64(p) for p in self.peaks]}


def split_hashes(data: bytes) -> list[bytes]:
    """Split concatenated 32-byte hashes."""
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def leaf_hashes(
    log: TiledLog, size: int, start: int = 0, published: int | None = None
) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(first index, hashes)`` of level 0 tiles for leaves ``[start, size)``.

    Tiles are read at the widths of the tree of ``published`` leaves (the
    log's latest size, at least ``size``), because a log need not keep the
    narrower partial tiles of older sizes, and cut to ``[start, size)``.
    """
    published = size if published is None else published
    if not 0 <= start <= size <= published:
        raise MalformedInput(
            f"leaf range: expected 0 <= {start} <= {size} <= {published}"
        )
    tile = start // TILE_WIDTH
    while tile * TILE_WIDTH < size:
        width = level_width(published, 0, tile)
        hashes = split_hashes(log.hash_tile(0, tile, width))
        hashes = hashes[: size - tile * TILE_WIDTH]
        first = tile * TILE_WIDTH
        skip = max(0, start - first)
        yield first + skip, hashes[skip:]
        tile += 1


class TileHashReader:
    """Subtree hashes, roots and proofs of the tree of ``size`` leaves, from tiles.

    A complete subtree of ``2**level`` leaves is read from the tile at level
    ``level // 8`` and hashed up ``level % 8`` levels within it. Tiles are
    read at the widths of the tree of ``published`` leaves (the log's latest
    size, by default ``size``), once, and kept.
    """

    def __init__(self, log: TiledLog, size: int, published: int | None = None) -> None:
        self.log = log
        self.size = size
        self.published = size if published is None else published
        if self.published < size:
            raise MalformedInput(
                f"tiles of tree size {self.published} cannot hold tree size {size}"
            )
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    def subtree_hash(self, level: int, index: int) -> bytes:
        """Return MTH of the leaves ``[index << level, (index + 1) << level)``.

        The range must lie inside the tree.
        """
        if (index + 1) << level > self.size:
            raise MalformedInput(
                f"subtree {index} at level {level} reaches leaf "
                f"{((index + 1) << level) - 1}, beyond the tree of size {self.size}"
            )
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height
        tile, offset = divmod(first, TILE_WIDTH)
        hashes = self._tile(tile_level, tile)[offset : offset + (1 << height)]
        while len(hashes) > 1:
            hashes = [
                hashlib.sha256(_NODE_PREFIX + hashes[i] + hashes[i + 1]).digest()
                for i in range(0, len(hashes), 2)
            ]
        return hashes[0]

    def range_hash(self, start: int, end: int) -> bytes:
        """Return MTH of the leaves ``[start, end)``, a subtree of the tree.

        ``start`` must be a multiple of the smallest power of two that is at
        least ``end - start``, as every range in an RFC 9162 proof is. The
        range splits into complete subtrees of decreasing size, which fold
        from the right.
        """
        if not 0 <= start < end <= self.size:
            raise MalformedInput(
                f"leaf range [{start}, {end}) is empty or outside the tree of "
                f"size {self.size}"
            )
        parts = []
        position = start
        while position < end:
            level = (end - position).bit_length() - 1
            while position & ((1 << level) - 1):
                level -= 1
            parts.append(self.subtree_hash(level, position >> level))
            position += 1 << level
        node = parts[-1]
        for part in reversed(parts[:-1]):
            node = hashlib.sha256(_NODE_PREFIX + part + node).digest()
        return node

    def root(self) -> bytes:
        """Return the root of the tree of ``size`` leaves."""
        if self.size == 0:
            return EMPTY_ROOT
        return self.range_hash(0, self.size)

    def inclusion_proof(self, index: int) -> list[bytes]:
        """Return PATH(index, D[size]) of RFC 9162 section 2.1.3.1."""
        if not 0 <= index < self.size:
            raise MalformedInput(
                f"inclusion proof: expected an index less than the tree size "
                f"{self.size}, got {index}"
            )
        proof: list[bytes] = []
        low, high = 0, self.size
        while high - low > 1:
            split = low + _largest_power_below(high - low)
            if index < split:
                proof.append(self.range_hash(split, high))
                high = split
            else:
                proof.append(self.range_hash(low, split))
                low = split
        proof.reverse()
        return proof

    def consistency_proof(self, first: int) -> list[bytes]:
        """Return PROOF(first, D[size]) of RFC 9162 section 2.1.4.1.

        Requires ``0 < first <= size``; equal sizes give the empty proof.
        """
        if not 0 < first <= self.size:
            raise MalformedInput(
                f"consistency proof for tree sizes {first} -> {self.size}: "
                "expected 0 < first <= second"
            )
        # SUBPROOF(m, D[low:high], b), unrolled: each step descends into one
        # half and records the sibling hash, and the proof is read backwards.
        proof: list[bytes] = []
        low, high, complete = 0, self.size, True
        while True:
            if first - low == high - low:
                if not complete:
                    proof.append(self.range_hash(low, high))
                break
            split = low + _largest_power_below(high - low)
            if first <= split:
                proof.append(self.range_hash(split, high))
                high = split
            else:
                proof.append(self.range_hash(low, split))
                low, complete = split, False
        proof.reverse()
        return proof

    def _tile(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        hashes = self._tiles.get(key)
        if hashes is None:
            width = level_width(self.published, level, index)
            hashes = split_hashes(self.log.hash_tile(level, index, width))
            self._tiles[key] = hashes
        return hashes


def _largest_power_below(count: int) -> int:
    return 1 << ((count - 1).bit_length() - 1)
