"""Audit a whole log: every entry, the root, and every record's evidence.

``audit_log`` runs this plan:

1. read the checkpoint and verify it with the log's key and origin;
2. read every entry, from the entry bundles and level 0 tiles of a tiled
   log (a directory or URL) or from the JSON API ``/v1/entries``; each
   entry's leaf hash must equal the tile's hash at its index;
3. recompute the root from the entries and compare it with the signed root;
4. when a monitor's state is given, compare the leaves it verified before
   with the entries now served, which names the first changed index of a
   rewritten log even when the log re-signed it;
5. re-verify every record (``verifier.audit_records``), and check that the
   keys that signed the checkpoint are active at its size.

Entries are processed as they are read and not kept. What later records
refer to is kept: about 360 bytes per record (measured with tracemalloc on
decisions and outcomes of the gate), so a log of a million records needs
some 400 MB. The findings and their kinds are described in ``specs/audit.md``.
"""

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from verifier._encoding import encode_base64
from verifier.audit_records import ERROR, Finding, RecordAuditor
from verifier.checkpoint import Checkpoint, open_checkpoint
from verifier.errors import MalformedInput, Unavailable
from verifier.monitor_state import leaves_path_for, load_state, read_leaves
from verifier.note import Note, VerifierKey
from verifier.tilehash import CompactRange, split_hashes
from verifier.tiles import (
    TILE_WIDTH,
    TiledLog,
    TileSource,
    is_url,
    level_width,
    split_entry_bundle,
    tile_path,
)

logger = logging.getLogger(__name__)

API_PAGE = 1000
_LEAF_PREFIX = b"\x00"

Progress = Callable[[int, int], None]


@dataclass
class AuditResult:
    """Everything an audit found, ready for ``audit.json`` and ``audit.html``."""

    location: str
    source: str
    checkpoint: Checkpoint
    checkpoint_text: str
    key_names: tuple[str, ...]
    computed_root: bytes = b""
    entries: int = 0
    findings: list[Finding] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def first_bad(self) -> dict[str, int | None]:
        """Return each finding kind with the first index it was found at."""
        first: dict[str, int | None] = {}
        for finding in self.findings:
            if finding.kind not in first:
                first[finding.kind] = finding.index
            elif finding.index is not None and (
                first[finding.kind] is None or finding.index < first[finding.kind]
            ):
                first[finding.kind] = finding.index
        return first

    def to_json(self) -> dict:
        return {
            "version": 1,
            "location": self.location,
            "source": self.source,
            "origin": self.checkpoint.origin,
            "checkpoint": {
                "size": self.checkpoint.size,
                "root": encode_base64(self.checkpoint.root),
                "keys": list(self.key_names),
                "text": self.checkpoint_text,
            },
            "computed_root": encode_base64(self.computed_root),
            "root_matches": self.computed_root == self.checkpoint.root,
            "entries": self.entries,
            "records": dict(sorted(self.records.items())),
            "verdicts": dict(sorted(self.verdicts.items())),
            "delegation_roots": sorted(self.roots),
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.findings) - len(self.errors),
            "first_bad": self.first_bad(),
            "findings": [finding.to_json() for finding in self.findings],
            "seconds": round(self.seconds, 3),
        }


def audit_log(
    location: str,
    keys: list[VerifierKey],
    origin: str | None = None,
    anchors: list[str] | None = None,
    monitor_state: str | Path | None = None,
    source: str = "auto",
    progress: Progress | None = None,
) -> AuditResult:
    """Audit the log at ``location`` (directory or URL); see the module plan.

    ``source`` is ``tiles``, ``api`` or ``auto`` (tiles for a directory; for a
    URL, tiles when it serves ``checkpoint``, else the JSON API). Raises a
    ``VerificationError`` when the checkpoint does not verify or the log
    cannot be read; every other problem is a finding in the result.
    """
    started = time.perf_counter()
    reader = _open_reader(location, source)

    # 1. Checkpoint.
    text = reader.checkpoint()
    checkpoint, note = open_checkpoint(text, keys, origin)
    result = AuditResult(
        location, reader.kind, checkpoint, text.decode("utf-8"), note.key_names
    )
    auditor = RecordAuditor(
        checkpoint.origin, tuple(anchors) if anchors is not None else None
    )

    # 4. (prepared) The leaves a monitor verified before.
    seen: list[bytes] = []
    if monitor_state is not None:
        seen = _monitor_leaves(monitor_state, checkpoint, auditor)

    # 2. and 3. Entries, leaf hashes and root, one tile or page at a time.
    compact = CompactRange()
    sha256 = hashlib.sha256
    forked = False
    for first, entries, tile_hashes in reader.batches(checkpoint.size, auditor):
        leaves = [sha256(_LEAF_PREFIX + entry).digest() for entry in entries]
        if tile_hashes is not None and leaves != tile_hashes[: len(leaves)]:
            _report_tile_mismatch(auditor, first, leaves, tile_hashes)
        if first < len(seen) and not forked:
            forked = _compare_with_monitor(auditor, first, leaves, seen)
        compact.extend(leaves)
        for offset, (entry, leaf) in enumerate(zip(entries, leaves, strict=True)):
            auditor.add(first + offset, entry, leaf)
        if progress is not None:
            progress(first + len(entries), checkpoint.size)

    result.entries = compact.size
    result.computed_root = compact.root()
    if compact.size != checkpoint.size:
        auditor.report(
            "log.truncated",
            compact.size,
            f"the log served {compact.size} entries, but its checkpoint "
            f"has tree size {checkpoint.size}",
        )
    elif result.computed_root != checkpoint.root:
        auditor.report(
            "log.root",
            None,
            f"the {compact.size} entries hash to root "
            f"{encode_base64(result.computed_root)}, not to the signed root "
            f"{encode_base64(checkpoint.root)}",
        )

    # 5. Keys that signed the checkpoint.
    _check_signing_keys(note, checkpoint, auditor)

    result.findings = sorted(
        auditor.findings, key=lambda f: (f.index is None, f.index or 0)
    )
    result.records = dict(auditor.counts)
    result.verdicts = dict(auditor.verdicts)
    result.roots = sorted(auditor.roots)
    result.seconds = time.perf_counter() - started
    logger.info(
        "audited %d entries of %s: %d findings",
        result.entries,
        checkpoint.origin,
        len(result.findings),
    )
    return result


def _monitor_leaves(
    state_path: str | Path, checkpoint: Checkpoint, auditor: RecordAuditor
) -> list[bytes]:
    state = load_state(state_path)
    if state is None:
        raise Unavailable(f"no monitor state at {state_path}")
    if state.origin != checkpoint.origin:
        raise MalformedInput(
            f"monitor state {state_path} is for {state.origin!r}, not "
            f"{checkpoint.origin!r}"
        )
    if state.size > checkpoint.size:
        auditor.report(
            "log.rollback",
            checkpoint.size,
            f"the checkpoint has tree size {checkpoint.size}, but a monitor "
            f"verified size {state.size} before; the log was truncated",
        )
    return read_leaves(leaves_path_for(state_path), state.size)


def _report_tile_mismatch(
    auditor: RecordAuditor, first: int, leaves: list[bytes], tile_hashes: list[bytes]
) -> None:
    for offset, (leaf, tile_hash) in enumerate(zip(leaves, tile_hashes, strict=False)):
        if leaf != tile_hash:
            index = first + offset
            auditor.report(
                "log.entry",
                index,
                f"entry {index} hashes to {leaf.hex()}, but the level 0 tile holds "
                f"{tile_hash.hex()} at that index",
            )


def _compare_with_monitor(
    auditor: RecordAuditor, first: int, leaves: list[bytes], seen: list[bytes]
) -> bool:
    """Report the first leaf that differs from the monitor's; return whether one did."""
    for offset, leaf in enumerate(leaves):
        index = first + offset
        if index < len(seen) and leaf != seen[index]:
            auditor.report(
                "log.fork",
                index,
                f"entry {index} differs from the leaf a monitor verified at that "
                f"index; the log was rewritten from index {index}",
            )
            return True
    return False


def _check_signing_keys(
    note: Note, checkpoint: Checkpoint, auditor: RecordAuditor
) -> None:
    active = auditor.active_keys(checkpoint.size)
    for key in note.verified:
        if key.text not in active:
            auditor.report(
                "key.inactive",
                None,
                f"the checkpoint of size {checkpoint.size} is signed by "
                f"{key.name}+{key.key_id.hex()}, which no key record among the first "
                f"{checkpoint.size} entries makes active",
            )


# -- readers ----------------------------------------------------------------------


class _TileReader:
    kind = "tiles"

    def __init__(self, source: TileSource) -> None:
        self.source = source
        self.log = TiledLog(source)

    def checkpoint(self) -> bytes:
        return self.log.checkpoint()

    def batches(
        self, size: int, auditor: RecordAuditor
    ) -> Iterator[tuple[int, list[bytes], list[bytes]]]:
        """Yield each level 0 tile: its first index, entries and hashes."""
        for tile in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = level_width(size, 0, tile)
            first = tile * TILE_WIDTH
            hashes = split_hashes(self.log.hash_tile(0, tile, width))
            entries = self._bundle(tile, width, first, auditor)
            yield first, entries[:width], hashes

    def _bundle(
        self, tile: int, width: int, first: int, auditor: RecordAuditor
    ) -> list[bytes]:
        path = tile_path(None, tile, width)
        try:
            data = self.source.read(path)
            if data is None and width < TILE_WIDTH:
                data = self.source.read(tile_path(None, tile))
                width_read = TILE_WIDTH
            else:
                width_read = width
        except Unavailable as err:
            if err.status == 501 and self.source.is_url:
                # An entry too long for a uint16 prefix: the API serves it.
                return _ApiReader(self.source).page(first, first + width)
            raise
        if data is None:
            raise Unavailable(f"entry bundle {self.source.url(path)} not found")
        entries, problem = split_entry_bundle(data)
        if problem is None and len(entries) != width_read:
            problem = f"expected {width_read} entries, got {len(entries)}"
        if problem is not None:
            auditor.report(
                "log.bundle",
                first + min(len(entries), width),
                f"entry bundle {self.source.url(path)}: {problem}",
            )
        return entries


class _ApiReader:
    kind = "api"

    def __init__(self, source: TileSource) -> None:
        self.source = source

    def checkpoint(self) -> bytes:
        data = self.source.read("v1/checkpoint")
        if data is None:
            raise Unavailable(f"no checkpoint at {self.source.url('v1/checkpoint')}")
        return data

    def batches(
        self, size: int, auditor: RecordAuditor
    ) -> Iterator[tuple[int, list[bytes], None]]:
        """Yield each page of ``/v1/entries``: its first index and entries."""
        for start in range(0, size, API_PAGE):
            yield start, self.page(start, min(size, start + API_PAGE)), None

    def page(self, start: int, end: int) -> list[bytes]:
        path = f"v1/entries?start={start}&end={end}"
        data = self.source.read(path, accept="application/json")
        if data is None:
            raise Unavailable(f"GET {self.source.url(path)} returned 404 Not Found")
        try:
            document = json.loads(data)
            entries = [base64.b64decode(e, validate=True) for e in document["entries"]]
        except (ValueError, KeyError, TypeError) as err:
            raise MalformedInput(
                f"GET {self.source.url(path)}: expected JSON with base64 entries: {err}"
            ) from err
        if len(entries) != end - start:
            raise MalformedInput(
                f"GET {self.source.url(path)}: expected {end - start} entries, got "
                f"{len(entries)}"
            )
        return entries


def _open_reader(location: str, source: str) -> _TileReader | _ApiReader:
    if source not in ("auto", "tiles", "api"):
        raise MalformedInput(f"source: expected auto, tiles or api, got {source!r}")
    tiles = TileSource(location)
    if source == "tiles" or (source == "auto" and not is_url(location)):
        return _TileReader(tiles)
    if source == "api":
        return _ApiReader(tiles)
    if tiles.read("checkpoint") is not None:
        return _TileReader(tiles)
    return _ApiReader(tiles)
