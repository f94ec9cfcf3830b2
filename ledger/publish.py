"""Publish the log as static C2SP tlog-tiles files, with witness cosignatures.

``publish`` writes the log into a directory that any static web host or
object store can serve (https://c2sp.org/tlog-tiles)::

    checkpoint                  the latest checkpoint, with its cosignatures
    tile/<L>/<N>[.p/<W>]        hash tiles of height 8, partial ones included
    tile/entries/<N>[.p/<W>]    entry bundles of the level 0 tiles

Publication is incremental. The ``checkpoint`` already in the directory
records which tree size was published, so a later run writes only the tiles
that are new or have grown, and never rewrites a full tile. A file that is
already there is compared with the database instead, and a difference
stops the run. Partial tiles of earlier sizes stay, so readers holding an
older checkpoint can still read its tiles.

Every file is written atomically: to a temporary file in the same
directory, flushed to disk and renamed. The checkpoint is written last,
after the directories of the tiles were flushed. A reader therefore never
reads a checkpoint whose tiles are missing, and an interrupted run leaves
the previous publication intact. A killed run may leave hidden
``.<name>.*.tmp`` files behind; readers never request them. Runs on one host
take turns through a lock on ``.agentgate-publish.lock`` in the directory.

With a witness policy, the checkpoint is first sent to the witnesses
(``ledger.witnessing``). Publication proceeds only when cosignatures by the
policy's quorum of distinct keys verify on it. The cosigned checkpoint is
then also stored in the log database in place of the bare one (same text,
more signature lines), so ``agentgate export`` puts it in bundles.
"""

from __future__ import annotations

import fcntl
import hmac
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, select, update

from .errors import InvalidRequest, StorageError
from .log import Ledger
from .note import Checkpoint, parse_own_checkpoint
from .storage import Store, checkpoints
from .tiles import TILE_HEIGHT, TILE_WIDTH, TilePath, TileReader, format_tile_path
from .cosignatures import WitnessPolicy, read_cosignatures, split_note
from .witnessing import DEFAULT_TIMEOUT, Collection, Witness, collect_cosignatures

__all__ = [
    "CHECKPOINT_FILE",
    "Publication",
    "publish",
    "read_published_checkpoint",
    "store_cosigned_checkpoint",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint"
# Held while a run publishes, so that two runs on one host cannot interleave
# and leave the smaller checkpoint last.
LOCK_FILE = ".agentgate-publish.lock"
# Published files are public: readable by the web server's user.
_FILE_MODE = 0o644


@dataclass(frozen=True)
class Publication:
    """The result of ``publish``.

    ``published`` is False when the witness policy was not met; nothing was
    written then. ``skipped_bundles`` lists level 0 tile indexes whose entry
    bundle contains an entry over 65535 bytes and so could not be written.
    """

    size: int
    previous_size: int
    note: str
    published: bool
    files_written: int = 0
    skipped_bundles: list[int] = field(default_factory=list)
    collection: Collection | None = None


def read_published_checkpoint(directory: str | os.PathLike[str]) -> Checkpoint | None:
    """Return the checkpoint published in ``directory``, or None if there is none."""
    path = Path(directory) / CHECKPOINT_FILE
    try:
        note = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as err:
        raise InvalidRequest(
            f"{path} is not a checkpoint (not UTF-8); publish into an empty "
            "directory or one that only agentgate publish wrote"
        ) from err
    try:
        return parse_own_checkpoint(note)
    except StorageError as err:
        raise InvalidRequest(
            f"{path} is not a checkpoint ({err}); publish into an empty directory "
            "or one that only agentgate publish wrote"
        ) from err


def publish(
    ledger: Ledger,
    store: Store,
    directory: str | os.PathLike[str],
    *,
    witnesses: Sequence[Witness] = (),
    policy: WitnessPolicy | None = None,
    now: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Publication:
    """Publish the latest checkpoint of ``ledger`` and its tiles into ``directory``.

    Plan:

    1. take the latest checkpoint (with the cosignatures stored for it) and
       check that the directory contains an earlier publication of this log,
       or none;
    2. with a ``policy``, collect cosignatures from ``witnesses`` and stop,
       writing nothing, unless the policy is met; store the cosigned note;
    3. write the new and grown hash tiles and entry bundles;
    4. flush their directories, then write the checkpoint.

    ``store`` is a second handle on the log's database, for the tiles.
    ``now`` (POSIX seconds, default the current time) bounds cosignature
    timestamps. Raises ``InvalidRequest`` when the directory contains another
    log or a larger tree, and ``StorageError`` when a published tile differs
    from the database.
    """
    target = Path(directory)
    now = int(time.time()) if now is None else now
    with _publish_lock(target):
        return _publish(ledger, store, target, witnesses, policy, now, timeout)


def _publish(
    ledger: Ledger,
    store: Store,
    target: Path,
    witnesses: Sequence[Witness],
    policy: WitnessPolicy | None,
    now: int,
    timeout: float,
) -> Publication:
    # Step 1.
    note = ledger.latest_checkpoint()
    checkpoint = parse_own_checkpoint(note)
    stored = store.read_checkpoint(checkpoint.size)
    if stored is not None and split_note(stored)[0] == split_note(note)[0]:
        note = stored
    previous = read_published_checkpoint(target)
    previous_size = _check_previous(ledger, checkpoint, previous, target)

    # Step 2.
    collection = None
    if policy is not None:
        last_sizes = _last_cosigned_sizes(policy, previous, note, checkpoint.size)
        collection = collect_cosignatures(
            note,
            checkpoint.size,
            ledger.consistency_proof,
            witnesses,
            policy,
            now=now,
            last_sizes=last_sizes,
            timeout=timeout,
        )
        if not collection.met:
            logger.warning(
                "not publishing size %d: %d of %d witness cosignatures",
                checkpoint.size,
                collection.counted,
                collection.quorum,
            )
            return Publication(
                checkpoint.size, previous_size, note, False, collection=collection
            )
        if collection.note != note:
            note = collection.note
            ledger.store_checkpoints()
            store_cosigned_checkpoint(store, checkpoint.size, note)

    # Step 3.
    writer = _TileWriter(TileReader(store), target, checkpoint.size)
    writer.write_tiles(previous_size)

    # Step 4.
    writer.flush_directories()
    _write_atomic(target / CHECKPOINT_FILE, note.encode("utf-8"))
    logger.info(
        "published %s at size %d (%d files written, from size %d)",
        checkpoint.origin,
        checkpoint.size,
        writer.written + 1,
        previous_size,
    )
    return Publication(
        checkpoint.size,
        previous_size,
        note,
        True,
        files_written=writer.written + 1,
        skipped_bundles=writer.skipped_bundles,
        collection=collection,
    )


def store_cosigned_checkpoint(store: Store, size: int, note: str) -> None:
    """Store ``note``, the checkpoint of ``size`` with cosignatures, in the database.

    It replaces the stored note of that size, whose text must be the same:
    only signature lines are added. Raises ``StorageError`` otherwise.
    """
    text, _ = split_note(note)
    with store.write() as transaction:
        connection = transaction.connection
        stored = connection.execute(
            select(checkpoints.c.note).where(checkpoints.c.size == size)
        ).scalar_one_or_none()
        if stored is None:
            connection.execute(insert(checkpoints).values(size=size, note=note))
            return
        if split_note(stored)[0] != text:
            raise StorageError(
                f"the stored checkpoint of size {size} has another text than the "
                "one the witnesses cosigned; the database changed during "
                "publication, so run it again"
            )
        connection.execute(
            update(checkpoints).where(checkpoints.c.size == size).values(note=note)
        )


@contextmanager
def _publish_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``target``'s lock file, waiting for other runs.

    NOTE: the lock covers runs on one host only; runs on several hosts that
    write one object store must be serialized by the operator.
    """
    target.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _check_previous(
    ledger: Ledger, checkpoint: Checkpoint, previous: Checkpoint | None, target: Path
) -> int:
    """Return the published size, after checking it is a prefix of this log."""
    if previous is None:
        return 0
    if previous.origin != checkpoint.origin:
        raise InvalidRequest(
            f"{target} contains a publication of log {previous.origin!r}, not "
            f"{checkpoint.origin!r}; publish each log into its own directory"
        )
    if previous.size > checkpoint.size:
        raise InvalidRequest(
            f"{target} contains a checkpoint of tree size {previous.size}, but the "
            f"log's latest checkpoint has size {checkpoint.size}; publishing would "
            "roll the published log back, so open the log with its key to sign "
            "the latest size"
        )
    if previous.size and not hmac.compare_digest(
        ledger.root(previous.size), previous.root
    ):
        raise StorageError(
            f"{target} contains a checkpoint of tree size {previous.size} whose root "
            f"{previous.root.hex()} is not the log's root "
            f"{ledger.root(previous.size).hex()} at that size; the published "
            "directory belongs to another history of this log"
        )
    return previous.size


def _last_cosigned_sizes(
    policy: WitnessPolicy, previous: Checkpoint | None, note: str, size: int
) -> dict[str, int]:
    """Return, by witness label, the largest size known to carry its cosignature.

    That is the current size when the stored note already carries it, else
    the published size when the published checkpoint does.
    """
    sizes: dict[str, int] = {}
    sources = [(size, note)]
    if previous is not None:
        sources.append((previous.size, previous.note))
    for source_size, source_note in sources:
        cosigned = {c.key for c in read_cosignatures(source_note, policy.keys)}
        for label, key in policy.witnesses:
            if key in cosigned and source_size > sizes.get(label, 0):
                sizes[label] = source_size
    return sizes


class _TileWriter:
    """Writes the hash tiles and entry bundles of a tree of ``size`` leaves."""

    def __init__(self, tiles: TileReader, directory: Path, size: int) -> None:
        self.tiles = tiles
        self.directory = directory
        self.size = size
        self.written = 0
        self.skipped_bundles: list[int] = []
        self._directories: set[Path] = set()

    def write_tiles(self, previous_size: int) -> None:
        """Write every tile that a tree of ``previous_size`` lacks or has partially."""
        level = 0
        while self.size >> (TILE_HEIGHT * level):
            count = self.size >> (TILE_HEIGHT * level)
            first = (previous_size >> (TILE_HEIGHT * level)) // TILE_WIDTH
            full, partial = divmod(count, TILE_WIDTH)
            widths = [(index, TILE_WIDTH) for index in range(first, full)]
            if partial:
                widths.append((full, partial))
            for index, width in widths:
                self._write_hash_tile(level, index, width)
                if level == 0:
                    self._write_entry_bundle(index, width)
            level += 1

    def flush_directories(self) -> None:
        """Flush the directories of the written files, deepest first."""
        for directory in sorted(self._directories, key=lambda p: -len(p.parts)):
            _fsync_directory(directory)
        self._directories.clear()

    def _write_hash_tile(self, level: int, index: int, width: int) -> None:
        data = self.tiles.tile(level, index, width, self.size)
        if data is None:
            raise StorageError(
                f"tile {level}/{index} of width {width} lies in the tree of size "
                f"{self.size}, but the database does not cover it yet"
            )
        self._write(TilePath(level, index, width), data)

    def _write_entry_bundle(self, index: int, width: int) -> None:
        try:
            data = self.tiles.entry_bundle(index, width, self.size)
        except InvalidRequest as err:
            # An entry over 65535 bytes does not fit the uint16 length prefix.
            logger.warning("entry bundle %d not published: %s", index, err)
            self.skipped_bundles.append(index)
            return
        if data is None:
            raise StorageError(
                f"entry bundle {index} of width {width} lies in the tree of size "
                f"{self.size}, but the database does not cover it yet"
            )
        self._write(TilePath(None, index, width), data)

    def _write(self, tile: TilePath, data: bytes) -> None:
        path = self.directory / format_tile_path(tile)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if not hmac.compare_digest(existing, data):
                raise StorageError(
                    f"{path} is already published with other content than the "
                    "database contains; published tiles never change, so find out "
                    "which of the two was altered"
                )
            return
        _write_atomic(path, data, fsync_directory=False)
        # mkdir may have created parents too; their entries must reach the disk.
        for directory in (path.parent, *path.parent.parents):
            self._directories.add(directory)
            if directory == self.directory:
                break
        self.written += 1


def _write_atomic(path: Path, data: bytes, *, fsync_directory: bool = True) -> None:
    """Replace ``path`` with ``data``: temporary file, flush, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), _FILE_MODE)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    if fsync_directory:
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
