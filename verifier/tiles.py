"""C2SP tlog-tiles: read a log's checkpoint, hash tiles and entry bundles.

A tiled log is a set of static paths under one prefix, a directory or an
http(s) URL (https://c2sp.org/tlog-tiles):

    checkpoint                     the latest signed checkpoint
    tile/<L>/<N>[.p/<W>]           hash tile: W hashes of level L, tile N
    tile/entries/<N>[.p/<W>]       entry bundle of level 0 tile N

Tiles have height 8, so a full tile contains 256 hashes. Hash ``i`` of tile ``N``
at level ``L`` is the RFC 9162 hash of the ``256**L`` leaves from
``(N * 256 + i) * 256**L``. ``N`` is written in 3-digit elements, each but the
last prefixed with ``x`` (1234067 is ``x001/x234/067``). An entry bundle is
each entry prefixed with its length as a big-endian uint16.

Nothing read here is trusted: callers hash the tiles into a root and compare
it with a checkpoint verified against the log's key.
"""

import base64
import gzip
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from verifier._encoding import shorten
from verifier.errors import MalformedInput, Unavailable
from verifier.merkle import HASH_SIZE

logger = logging.getLogger(__name__)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
# A full tile is 8 KiB and a full bundle of gate records a few MiB. A larger
# response is not a tile, so it is cut off instead of filling memory.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
# The ledger's /v1/entries returns at most this many entries per request.
API_PAGE = 1000

_USER_AGENT = "agentgate-verifier"


def format_tile_index(index: int) -> str:
    """Return the path form of a tile index: ``x001/x234/067`` for 1234067."""
    if not isinstance(index, int) or index < 0:
        raise MalformedInput(f"tile index: expected an integer >= 0, got {index!r}")
    digits = f"{index:d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{group}" for group in groups[:-1]] + [groups[-1]])


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """Return ``tile/<L>/<N>[.p/<W>]``, or the entry bundle path when level is None."""
    if not 1 <= width <= TILE_WIDTH:
        raise MalformedInput(f"tile width: expected 1 to {TILE_WIDTH}, got {width}")
    head = "tile/entries" if level is None else f"tile/{level}"
    path = f"{head}/{format_tile_index(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


class TileSource:
    """The location of a tiled log: a directory or an http(s) URL prefix.

    ``read`` returns the bytes at a relative path, or None when the path does
    not exist (a missing file or HTTP 404). Any other failure raises
    ``Unavailable``.
    """

    def __init__(self, location: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.location = location
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(location)
        self.is_url = parsed.scheme in ("http", "https")
        if parsed.scheme and not self.is_url and len(parsed.scheme) > 1:
            raise MalformedInput(
                f"log location {location!r}: expected a directory or an http(s) "
                f"URL, got the scheme {parsed.scheme!r}"
            )
        if self.is_url:
            self._prefix = location.rstrip("/") + "/"
        else:
            self._directory = Path(location)
            if not self._directory.is_dir():
                raise Unavailable(
                    f"log directory {location} does not exist or is not a directory"
                )

    def __repr__(self) -> str:
        return f"TileSource({self.location!r})"

    def url(self, path: str) -> str:
        """Return where ``path`` is read from, for messages."""
        if self.is_url:
            return self._prefix + path
        return str(self._directory / path)

    def read(self, path: str, accept: str | None = None) -> bytes | None:
        """Return the content at ``path`` under the prefix, or None when absent."""
        if self.is_url:
            return self._read_url(path, accept)
        return self._read_file(path)

    def _read_file(self, path: str) -> bytes | None:
        target = self._directory / path
        try:
            with open(target, "rb") as stream:
                data = stream.read(MAX_RESPONSE_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise Unavailable(f"cannot read {target}: {err.strerror or err}") from err
        _check_size(data, str(target))
        return data

    def _read_url(self, path: str, accept: str | None) -> bytes | None:
        url = self._prefix + path
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "gzip"}
        if accept:
            headers["Accept"] = accept
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read(MAX_RESPONSE_BYTES + 1)
                encoding = response.headers.get("Content-Encoding", "")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            detail = err.read(300).decode("utf-8", "replace").strip()
            failure = Unavailable(
                f"GET {url} answered HTTP {err.code}: {shorten(detail)}"
            )
            failure.status = err.code
            raise failure from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise Unavailable(f"GET {url} failed: {reason}") from err

        _check_size(data, url)
        if encoding.strip().lower() == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as err:
                raise MalformedInput(
                    f"GET {url}: the body is marked gzip but does not decompress"
                ) from err
            _check_size(data, url)
        logger.debug("read %d bytes from %s", len(data), url)
        return data


class TiledLog:
    """Reads checkpoints, hash tiles and entry bundles from a ``TileSource``."""

    def __init__(self, source: TileSource | str) -> None:
        self.source = source if isinstance(source, TileSource) else TileSource(source)

    def checkpoint(self) -> bytes:
        """Return the bytes of the log's latest checkpoint, unverified."""
        data = self.source.read("checkpoint")
        if data is None:
            raise Unavailable(
                f"no checkpoint at {self.source.url('checkpoint')}; is this the "
                "prefix of a tiled log?"
            )
        return data

    def hash_tile(self, level: int, index: int, width: int) -> bytes:
        """Return ``width`` hashes (32 bytes each) of tile ``index`` at ``level``.

        A partial tile that the log no longer serves is cut from the full
        tile, whose first hashes are the same. Raises ``Unavailable`` when
        neither exists and ``MalformedInput`` for a tile of the wrong length.
        """
        if not 0 <= level <= MAX_TILE_LEVEL:
            raise MalformedInput(
                f"tile level: expected 0 to {MAX_TILE_LEVEL}, got {level}"
            )
        data = self._read_tile(level, index, width)
        if len(data) != width * HASH_SIZE:
            raise MalformedInput(
                f"{self.source.url(tile_path(level, index, width))}: expected "
                f"{width * HASH_SIZE} bytes ({width} hashes), got {len(data)}"
            )
        return data

    def entry_bundle(self, index: int, width: int) -> list[bytes]:
        """Return the ``width`` entries of the level 0 tile ``index``."""
        path = tile_path(None, index, width)
        data = self.source.read(path)
        expected = width
        if data is None and width < TILE_WIDTH:
            data = self.source.read(tile_path(None, index))
            expected = TILE_WIDTH
        if data is None:
            raise Unavailable(f"entry bundle {self.source.url(path)} not found")
        entries = parse_entry_bundle(data, expected, self.source.url(path))
        return entries[:width]

    def read_bundle(self, index: int, width: int) -> tuple[list[bytes], str | None]:
        """Return the first ``width`` entries of level 0 tile ``index`` and a problem.

        The problem is None for a well-formed bundle. Otherwise it describes
        the damage after the entries returned, so a caller can name the first
        entry it could not read. An http(s) log that answers 501 for a bundle (an
        entry too long for a uint16 prefix) is read through its JSON API
        ``/v1/entries`` instead. Raises ``Unavailable`` when neither exists.
        """
        path = tile_path(None, index, width)
        try:
            data = self.source.read(path)
            expected = width
            if data is None and width < TILE_WIDTH:
                data = self.source.read(tile_path(None, index))
                expected = TILE_WIDTH
        except Unavailable as err:
            if err.status == 501 and self.source.is_url:
                first = index * TILE_WIDTH
                return self.api_entries(first, first + width), None
            raise
        if data is None:
            raise Unavailable(f"entry bundle {self.source.url(path)} not found")

        entries, problem = split_entry_bundle(data)
        if problem is None and len(entries) != expected:
            problem = f"expected {expected} entries, got {len(entries)}"
        if problem is not None:
            problem = f"entry bundle {self.source.url(path)}: {problem}"
        return entries[:width], problem

    def api_entries(self, start: int, end: int) -> list[bytes]:
        """Return the entries ``[start, end)`` from the ledger's ``/v1/entries``."""
        entries: list[bytes] = []
        for first in range(start, end, API_PAGE):
            last = min(end, first + API_PAGE)
            path = f"v1/entries?start={first}&end={last}"
            data = self.source.read(path, accept="application/json")
            if data is None:
                raise Unavailable(f"GET {self.source.url(path)} returned 404 Not Found")
            try:
                document = json.loads(data)
                page = [
                    base64.b64decode(entry, validate=True)
                    for entry in document["entries"]
                ]
            except (ValueError, KeyError, TypeError) as err:
                raise MalformedInput(
                    f"GET {self.source.url(path)}: expected JSON with base64 "
                    f"entries: {err}"
                ) from err
            if len(page) != last - first:
                raise MalformedInput(
                    f"GET {self.source.url(path)}: expected {last - first} entries, "
                    f"got {len(page)}"
                )
            entries.extend(page)
        return entries

    def _read_tile(self, level: int, index: int, width: int) -> bytes:
        path = tile_path(level, index, width)
        data = self.source.read(path)
        if data is None and width < TILE_WIDTH:
            full = self.source.read(tile_path(level, index))
            if full is not None:
                if len(full) != TILE_WIDTH * HASH_SIZE:
                    raise MalformedInput(
                        f"{self.source.url(tile_path(level, index))}: expected "
                        f"{TILE_WIDTH * HASH_SIZE} bytes, got {len(full)}"
                    )
                data = full[: width * HASH_SIZE]
        if data is None:
            raise Unavailable(f"hash tile {self.source.url(path)} not found")
        return data


def parse_entry_bundle(
    data: bytes, count: int, where: str = "entry bundle"
) -> list[bytes]:
    """Split an entry bundle into exactly ``count`` entries.

    Each entry is a big-endian uint16 length and that many bytes. Raises
    ``MalformedInput`` for a truncated entry, another number of entries, or
    bytes left over.
    """
    entries, problem = split_entry_bundle(data)
    if problem is None and len(entries) != count:
        problem = f"expected {count} entries, got {len(entries)}"
    if problem is not None:
        raise MalformedInput(f"{where}: {problem}")
    return entries


def split_entry_bundle(data: bytes) -> tuple[list[bytes], str | None]:
    """Return the complete entries of a bundle and what is wrong after them, or None.

    An auditor uses the entries it could read to find the first bad index
    even in a damaged bundle.
    """
    entries = []
    view = memoryview(data)
    offset, end = 0, len(data)
    while offset < end:
        if offset + 2 > end:
            return entries, (
                f"entry {len(entries)} has a truncated length prefix at byte {offset}"
            )
        length = (data[offset] << 8) | data[offset + 1]
        start = offset + 2
        if start + length > end:
            return entries, (
                f"entry {len(entries)} claims {length} bytes, but only "
                f"{end - start} remain"
            )
        offset = start + length
        entries.append(bytes(view[start:offset]))
    return entries, None


def level_width(size: int, level: int, index: int) -> int:
    """Return the number of hashes in tile ``index`` at ``level`` of a tree of ``size``.

    Zero means the tree does not reach the tile.
    """
    hashes_at_level = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, hashes_at_level - index * TILE_WIDTH))


def _check_size(data: bytes, where: str) -> None:
    if len(data) > MAX_RESPONSE_BYTES:
        raise MalformedInput(
            f"{where}: larger than {MAX_RESPONSE_BYTES} bytes, which no tile, "
            "bundle or checkpoint is"
        )


def is_url(location: str | os.PathLike[str]) -> bool:
    """Return whether ``location`` is an http(s) URL rather than a path."""
    scheme = urllib.parse.urlsplit(os.fspath(location)).scheme
    return scheme in ("http", "https")
