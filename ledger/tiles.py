"""C2SP tlog-tiles: tile paths, hash tiles and entry bundles from stored hashes.

A tile is 256 consecutive Merkle tree hashes at one tile level (tile height
8). Hash ``i`` of tile ``n`` at level ``L`` is the RFC 9162 hash of the
``256**L`` leaves starting at leaf ``(n * 256 + i) * 256**L``. That is the
complete subtree at tree level ``8 * L`` with node index ``n * 256 + i``, and
the Store keeps every complete subtree, so a tile is one read and nothing is
hashed here. Level 0 tiles are the leaf hashes.

A tile of fewer than 256 hashes is partial and is addressed with a ``.p/W``
suffix. Entry bundles hold the entries of a level 0 tile, each prefixed by
its length as a big-endian uint16. That prefix cannot carry an entry longer
than 65535 bytes, so ``entry_bundle`` raises ``InvalidRequest`` for a
bundle that contains one. Such entries are read with ``Ledger.entries``.

Paths follow https://c2sp.org/tlog-tiles: ``tile/<L>/<N>[.p/<W>]`` and
``tile/entries/<N>[.p/<W>]``, where ``N`` is written in 3-digit elements and
every element but the last starts with ``x`` (1234067 is ``x001/x234/067``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import select

from .errors import InvalidRequest, StorageError
from .storage import Store, leaves

__all__ = [
    "MAX_BUNDLE_ENTRY_BYTES",
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "TileReader",
    "format_tile_index",
    "format_tile_path",
    "parse_tile_path",
]

logger = logging.getLogger(__name__)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
# Entry bundles prefix each entry with its length as a big-endian uint16.
MAX_BUNDLE_ENTRY_BYTES = 0xFFFF

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_INNER_ELEMENT = re.compile(r"x[0-9]{3}")
_LAST_ELEMENT = re.compile(r"[0-9]{3}")


@dataclass(frozen=True)
class TilePath:
    """A parsed tile path: the level (None for an entry bundle), index and width.

    ``width`` is 256 for a full tile and 1 to 255 for a partial one.
    """

    level: int | None
    index: int
    width: int

    @property
    def is_partial(self) -> bool:
        """Whether the path names a partial tile (a ``.p/W`` suffix)."""
        return self.width < TILE_WIDTH

    @property
    def is_entries(self) -> bool:
        """Whether the path names an entry bundle rather than a hash tile."""
        return self.level is None


def format_tile_index(index: int) -> str:
    """Return the path form of a tile index: ``1234067`` -> ``x001/x234/067``."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InvalidRequest(
            f"tile index must be a non-negative integer, got {index!r}"
        )
    elements = []
    while True:
        index, last = divmod(index, 1000)
        elements.append(f"{last:03d}")
        if index == 0:
            break
    elements.reverse()
    return "/".join(["x" + element for element in elements[:-1]] + [elements[-1]])


def format_tile_path(tile: TilePath) -> str:
    """Return the path of ``tile`` below the prefix, such as ``tile/1/002.p/17``."""
    level = "entries" if tile.level is None else str(tile.level)
    path = f"tile/{level}/{format_tile_index(tile.index)}"
    return path + (f".p/{tile.width}" if tile.is_partial else "")


def parse_tile_path(level_text: str, index_text: str) -> TilePath:
    """Parse the two halves of ``tile/<level_text>/<index_text>``.

    ``level_text`` is a level from 0 to 63 without leading zeros, or
    ``entries``. ``index_text`` is the index in 3-digit elements with an
    optional ``.p/<W>`` suffix, W from 1 to 255. An index written with more
    elements than it needs (``x000/005``) is rejected: every tile has one
    path. Raises ``InvalidRequest`` naming the part that is wrong.
    """
    if level_text == "entries":
        level = None
    elif _LEVEL.fullmatch(level_text) and int(level_text) <= MAX_TILE_LEVEL:
        level = int(level_text)
    else:
        raise InvalidRequest(
            f"tile level {level_text!r} is invalid; expected 'entries' or a "
            f"decimal number from 0 to {MAX_TILE_LEVEL} without leading zeros"
        )

    elements = index_text.split("/")
    width = TILE_WIDTH
    if len(elements) >= 2 and elements[-2].endswith(".p"):
        width_text = elements.pop()
        elements[-1] = elements[-1].removesuffix(".p")
        if not _WIDTH.fullmatch(width_text) or int(width_text) >= TILE_WIDTH:
            raise InvalidRequest(
                f"partial tile width {width_text!r} is invalid; expected a decimal "
                f"number from 1 to {TILE_WIDTH - 1} without leading zeros"
            )
        width = int(width_text)

    inner, last = elements[:-1], elements[-1]
    valid = _LAST_ELEMENT.fullmatch(last) and all(
        _INNER_ELEMENT.fullmatch(element) for element in inner
    )
    if not valid or (inner and inner[0] == "x000"):
        raise InvalidRequest(
            f"tile index {index_text!r} is invalid; expected 3-digit elements "
            "where all but the last start with 'x', without leading x000 "
            "elements, and an optional .p/<width> suffix (1234067 is "
            "x001/x234/067)"
        )
    index = int("".join(element.removeprefix("x") for element in elements))
    return TilePath(level, index, width)


class TileReader:
    """Reads tiles, entry bundles and leaf indexes from a log's ``Store``.

    Every read takes ``size``, the tree size the caller serves, and returns
    ``None`` for a tile that the tree of that size does not contain yet.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def tile(self, level: int, index: int, width: int, size: int) -> bytes | None:
        """Return the concatenated hashes of a tile, or None when not available.

        The tile is available when all ``width`` of its hashes lie in the
        tree of ``size`` leaves: ``index * 256 + width <= size // 256**level``.
        """
        first = index * TILE_WIDTH
        if first + width > size >> (TILE_HEIGHT * level):
            return None
        tree_level = TILE_HEIGHT * level
        keys = [(tree_level, node) for node in range(first, first + width)]
        found = self.store.read_hashes(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            raise StorageError(
                f"tile {level}/{index} of width {width} is inside the tree of size "
                f"{size}, but {len(missing)} of its hashes (first: level "
                f"{missing[0][0]}, index {missing[0][1]}) are missing from the "
                "database; the database is damaged"
            )
        return b"".join(found[key] for key in keys)

    def entry_bundle(self, index: int, width: int, size: int) -> bytes | None:
        """Return the entry bundle of level 0 tile ``index``, or None.

        Raises ``InvalidRequest`` when an entry of the bundle is longer than
        65535 bytes, because its length does not fit the uint16 prefix.
        """
        first = index * TILE_WIDTH
        if first + width > size:
            return None
        entries = self.store.read_entries(first, first + width)
        parts = []
        for position, entry in enumerate(entries, start=first):
            if len(entry) > MAX_BUNDLE_ENTRY_BYTES:
                raise InvalidRequest(
                    f"entry {position} is {len(entry)} bytes, but an entry bundle "
                    f"holds entries of at most {MAX_BUNDLE_ENTRY_BYTES} bytes; read "
                    f"it from /v1/entries?start={position}&end={position + 1}"
                )
            parts.append(len(entry).to_bytes(2, "big"))
            parts.append(entry)
        return b"".join(parts)

    def find_leaf(self, leaf_hash: bytes, size: int) -> int | None:
        """Return the first index below ``size`` whose leaf hash is ``leaf_hash``.

        The same entry appended twice (without an idempotency key) has two
        leaves with one hash; the first is returned, or None if there is none.
        """
        query = (
            select(leaves.c.leaf_index)
            .where(leaves.c.leaf_hash == leaf_hash, leaves.c.leaf_index < size)
            .order_by(leaves.c.leaf_index)
            .limit(1)
        )
        with self.store.read() as reads:
            return reads.connection.execute(query).scalar_one_or_none()
