"""Watch a tiled log: every new checkpoint must extend the last one seen.

One check (``Monitor.check``) runs this plan:

1. read the checkpoint and verify the log's signature and origin, then the
   witness policy when one is given;
2. compare with the stored state: a smaller tree is a rollback, the same
   size with another root a fork;
3. read the level 0 tiles from the tile that contains the last leaf seen: the
   leaves seen before must be unchanged (else a fork, at the first changed
   index), and the new leaves, added to the stored compact range, must give
   the checkpoint's root;
4. compute the consistency proof from the log's higher tiles and verify it
   against both signed roots, so every tile a client reads is checked;
5. read the entry bundles of the new leaves: each entry's leaf hash,
   SHA-256(0x00 || entry), must equal the level 0 tile's hash at its index;
6. re-read ``recheck`` bundles of the leaves seen before, round robin from
   the stored position, and compare their entries with the leaf hashes the
   monitor accepted, so an entry changed after it was seen is found when
   its bundle comes round;
7. store the new state, with the next recheck position, atomically.

When step 3 fails, the monitor reads all level 0 tiles to tell a fork (the
tiles give the signed root but differ from the leaves seen before, at an
index it names) from an inconsistent log (its tiles do not give its own
signed root).

The state is a JSON file and, beside it, ``<state>.leaves``: every leaf hash
seen, 32 bytes each, so a fork is located to the leaf
(``verifier/monitor_state.py``). Exit codes per
outcome are in ``Outcome`` and in ``specs/witness.md``. After an alert the
state is not written, so the next check reports the same problem again.
"""

import hashlib
import hmac
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from verifier._encoding import encode_base64
from verifier._files import write_atomic
from verifier.checkpoint import Checkpoint, open_checkpoint
from verifier.errors import (
    BadSignature,
    MalformedInput,
    OriginMismatch,
    ProofMismatch,
    QuorumNotMet,
    Unavailable,
)
from verifier.jcs import canonicalize
from verifier.merkle import HASH_SIZE, verify_consistency
from verifier.note import VerifierKey
from verifier.tilehash import CompactRange, TileHashReader, leaf_hashes
from verifier.tiles import TILE_WIDTH, TiledLog, level_width
from verifier.monitor_state import (
    MonitorState,
    leaves_path_for,
    load_state,
    read_leaf_range,
    read_leaves,
)
from verifier.witness_policy import WitnessPolicy

logger = logging.getLogger(__name__)

# Bundles of old leaves re-read per check by default: a log of a million
# leaves (3,907 bundles) is re-read in full every 977 checks.
DEFAULT_RECHECK = 4
RECHECK_ALL = "all"
_LEAF_PREFIX = b"\x00"


class Outcome:
    """The outcomes of one check, each with the exit code of ``agentgate monitor``."""

    OK = ("ok", 0)
    MALFORMED = ("malformed", 1)
    SIGNATURE = ("bad-signature", 3)
    WITNESS = ("witness-policy", 4)
    ROLLBACK = ("rollback", 5)
    FORK = ("fork", 6)
    INCONSISTENT = ("inconsistent", 7)
    UNAVAILABLE = ("unavailable", 8)
    ENTRY = ("entry-mismatch", 9)


@dataclass
class Report:
    """The result of one check: its outcome, a sentence, and where it failed."""

    outcome: tuple[str, int]
    message: str
    old_size: int | None = None
    new_size: int | None = None
    first_bad_index: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK

    @property
    def kind(self) -> str:
        return self.outcome[0]

    @property
    def exit_code(self) -> int:
        return self.outcome[1]


class _Stop(Exception):
    def __init__(self, report: Report) -> None:
        super().__init__(report.message)
        self.report = report


class Monitor:
    """Checks a tiled log against its last verified state."""

    def __init__(
        self,
        log: TiledLog,
        keys: list[VerifierKey],
        state_path: str | Path,
        origin: str | None = None,
        policy: WitnessPolicy | None = None,
        recheck: int | str = DEFAULT_RECHECK,
    ) -> None:
        """``recheck`` is the number of old bundles re-read per check, or "all"."""
        if recheck != RECHECK_ALL and (
            not isinstance(recheck, int) or isinstance(recheck, bool) or recheck < 0
        ):
            raise ValueError(
                f"recheck: expected an integer >= 0 or {RECHECK_ALL!r}, got {recheck!r}"
            )
        self.recheck = recheck
        self.log = log
        self.keys = keys
        self.origin = origin
        self.policy = policy
        self.state_path = Path(state_path)
        self.leaves_path = leaves_path_for(self.state_path)

    def check(self, now: int | None = None) -> Report:
        """Run one check; ``now`` (POSIX seconds) bounds cosignature times."""
        try:
            return self._check(now)
        except _Stop as stop:
            return stop.report
        except Unavailable as err:
            return Report(Outcome.UNAVAILABLE, str(err))
        except MalformedInput as err:
            return Report(Outcome.MALFORMED, str(err))

    def _check(self, now: int | None) -> Report:
        # 1. Signature, origin and witnesses.
        text = self.log.checkpoint()
        state = self.load_state()
        origin = self.origin or (state.origin if state else None)
        try:
            checkpoint, note = open_checkpoint(text, self.keys, origin)
        except (BadSignature, OriginMismatch) as err:
            raise _Stop(Report(Outcome.SIGNATURE, f"checkpoint: {err}")) from err
        if self.policy is not None:
            try:
                self.policy.check(note, now)
            except (QuorumNotMet, BadSignature) as err:
                raise _Stop(
                    Report(Outcome.WITNESS, str(err), new_size=checkpoint.size)
                ) from err
        note_text = text.decode("utf-8")

        if state is None:
            return self._first(checkpoint, note_text)

        # 2. Rollback and same-size fork.
        old, new = state.size, checkpoint.size
        if new < old:
            raise _Stop(
                Report(
                    Outcome.ROLLBACK,
                    f"rollback: the checkpoint has tree size {new}, smaller than size "
                    f"{old} seen before; leaves from index {new} on are missing",
                    old,
                    new,
                    first_bad_index=new,
                )
            )
        if new == old:
            if hmac.compare_digest(state.root, checkpoint.root):
                position = self._recheck(state, new)
                compact = CompactRange(old, state.peaks)
                self._save(state, checkpoint, note_text, compact, [], position)
                return Report(Outcome.OK, f"tree size {new} unchanged", old, new)
            self._fork_or_inconsistent(state, checkpoint)

        # 3. Leaves seen before unchanged; new leaves give the signed root.
        seen = self.read_leaves(old)
        compact = CompactRange(old, state.peaks)
        new_leaves: list[bytes] = []
        for first, hashes in leaf_hashes(self.log, new, start=old - old % TILE_WIDTH):
            for offset, digest in enumerate(hashes):
                index = first + offset
                if index < old:
                    if digest != seen[index]:
                        self._fork_or_inconsistent(state, checkpoint)
                else:
                    new_leaves.append(digest)
        compact.extend(new_leaves)
        if not hmac.compare_digest(compact.root(), checkpoint.root):
            self._fork_or_inconsistent(state, checkpoint)

        # 4. A proof from the higher tiles must verify as well.
        if old > 0:
            proof = TileHashReader(self.log, new).consistency_proof(old)
            try:
                verify_consistency(old, new, proof, state.root, checkpoint.root)
            except (ProofMismatch, MalformedInput) as err:
                raise _Stop(
                    Report(
                        Outcome.INCONSISTENT,
                        f"inconsistent: the level 0 tiles extend size {old} to {new}, "
                        f"but the proof computed from the higher tiles fails: {err}",
                        old,
                        new,
                    )
                ) from err

        # 5. and 6. Entries: the new ones, then old ones round robin.
        self._check_entries(old, new_leaves, new, old)
        position = self._recheck(state, new)

        # 7. Store.
        self._save(state, checkpoint, note_text, compact, new_leaves, position)
        return Report(Outcome.OK, f"tree size {new} extends size {old}", old, new)

    def _first(self, checkpoint: Checkpoint, note_text: str) -> Report:
        compact = CompactRange()
        hashes: list[bytes] = []
        for _, tile in leaf_hashes(self.log, checkpoint.size):
            hashes.extend(tile)
        compact.extend(hashes)
        if not hmac.compare_digest(compact.root(), checkpoint.root):
            raise _Stop(
                Report(
                    Outcome.INCONSISTENT,
                    f"inconsistent: the level 0 tiles of tree size {checkpoint.size} "
                    f"hash to root {encode_base64(compact.root())}, not to the signed "
                    f"root {encode_base64(checkpoint.root)}",
                    None,
                    checkpoint.size,
                )
            )
        self._check_entries(0, hashes, checkpoint.size, None)
        empty = MonitorState(checkpoint.origin, 0, b"", "")
        self._save(empty, checkpoint, note_text, compact, hashes, 0)
        return Report(
            Outcome.OK,
            f"first checkpoint, tree size {checkpoint.size}",
            None,
            checkpoint.size,
        )

    def _fork_or_inconsistent(
        self, state: MonitorState, checkpoint: Checkpoint
    ) -> None:
        """Read every level 0 tile and raise the report that explains the mismatch."""
        old, new = state.size, checkpoint.size
        seen = self.read_leaves(old)
        compact = CompactRange()
        first_changed = None
        for first, hashes in leaf_hashes(self.log, new):
            for offset, digest in enumerate(hashes):
                index = first + offset
                if first_changed is None and index < old and digest != seen[index]:
                    first_changed = index
            compact.extend(hashes)

        if hmac.compare_digest(compact.root(), checkpoint.root) and (
            first_changed is not None
        ):
            raise _Stop(
                Report(
                    Outcome.FORK,
                    f"fork: the signed checkpoint of size {new} does not extend size "
                    f"{old} seen before; leaf {first_changed} differs from the leaf "
                    "seen before",
                    old,
                    new,
                    first_changed,
                )
            )
        if new == old:
            where = (
                f"; the tiles change leaf {first_changed}"
                if first_changed is not None
                else ""
            )
            raise _Stop(
                Report(
                    Outcome.FORK,
                    f"fork: the log signed two roots for tree size {new}: "
                    f"{encode_base64(state.root)} seen before and "
                    f"{encode_base64(checkpoint.root)} now{where}",
                    old,
                    new,
                    first_changed,
                )
            )
        where = (
            f"; they change leaf {first_changed} seen before"
            if first_changed is not None
            else ""
        )
        raise _Stop(
            Report(
                Outcome.INCONSISTENT,
                f"inconsistent: the log's level 0 tiles of tree size {new} do not hash "
                f"to its signed root {encode_base64(checkpoint.root)}, so its "
                f"checkpoint cannot be shown to extend size {old}{where}",
                old,
                new,
                first_changed,
            )
        )

    # -- entries ----------------------------------------------------------------

    def _check_entries(
        self, start: int, hashes: list[bytes], published: int, old: int | None
    ) -> None:
        """Check the entries from ``start`` on against the tile hashes ``hashes``.

        ``published`` is the checkpoint's size, whose bundle widths are read.
        ``old`` is the size seen before, or None on the first check.
        """
        end = start + len(hashes)
        for first, entries, problem in self._bundles(start, end, published):
            expected = hashes[first - start : first - start + len(entries)]
            mismatch = _first_mismatch(first, entries, expected)
            if mismatch is not None:
                index, leaf, tile_hash = mismatch
                raise _Stop(
                    Report(
                        Outcome.ENTRY,
                        f"entry mismatch: entry {index} hashes to {leaf.hex()}, but "
                        f"the level 0 tile contains {tile_hash.hex()} at that index",
                        old,
                        published,
                        index,
                    )
                )
            if problem is not None:
                self._bundle_alert(first + len(entries), problem, old, published)

    def _recheck(self, state: MonitorState, published: int) -> int:
        """Re-read old bundles (step 6); return the next recheck position.

        Entries are compared with the leaf hashes in ``<state>.leaves``, which
        consistency ties to every checkpoint accepted since.
        """
        old = state.size
        tiles = (old + TILE_WIDTH - 1) // TILE_WIDTH
        if tiles == 0:
            return 0
        position = state.recheck_position % tiles
        if self.recheck == RECHECK_ALL:
            chosen, after = list(range(tiles)), position
        else:
            count = min(self.recheck, tiles)
            chosen = sorted((position + k) % tiles for k in range(count))
            after = (position + count) % tiles

        for tile in chosen:
            start = tile * TILE_WIDTH
            end = min(old, start + TILE_WIDTH)
            accepted = read_leaf_range(self.leaves_path, start, end)
            for first, entries, problem in self._bundles(start, end, published):
                expected = accepted[first - start : first - start + len(entries)]
                mismatch = _first_mismatch(first, entries, expected)
                if mismatch is not None:
                    index, leaf, seen = mismatch
                    raise _Stop(
                        Report(
                            Outcome.ENTRY,
                            f"entry mismatch: entry {index} hashes to {leaf.hex()}, "
                            f"but the monitor accepted leaf hash {seen.hex()} at that "
                            f"index in tree size {old}; the entry changed after it "
                            "was seen",
                            old,
                            published,
                            index,
                        )
                    )
                if problem is not None:
                    self._bundle_alert(first + len(entries), problem, old, published)
        logger.debug("rechecked bundles %s of %d", chosen, tiles)
        return after

    def _bundles(
        self, start: int, end: int, published: int
    ) -> Iterator[tuple[int, list[bytes], str | None]]:
        """Yield ``(first index, entries, problem)`` per bundle of ``[start, end)``.

        Bundles are read at the widths of the tree of ``published`` leaves and
        cut to the range, one at a time.
        """
        tile = start // TILE_WIDTH
        while tile * TILE_WIDTH < end:
            first = tile * TILE_WIDTH
            entries, problem = self.log.read_bundle(
                tile, level_width(published, 0, tile)
            )
            low = max(start, first) - first
            high = min(end - first, len(entries))
            if problem is not None and len(entries) >= end - first:
                problem = None  # the damage lies after the entries checked
            yield first + low, entries[low:high], problem
            tile += 1

    def _bundle_alert(
        self, index: int, problem: str, old: int | None, published: int
    ) -> None:
        raise _Stop(
            Report(
                Outcome.ENTRY,
                f"entry mismatch: {problem}; entry {index} cannot be read",
                old,
                published,
                index,
            )
        )

    # -- state ------------------------------------------------------------------

    def load_state(self) -> MonitorState | None:
        """Return the stored state, or None before the first check."""
        return load_state(self.state_path)

    def read_leaves(self, size: int) -> list[bytes]:
        """Return the first ``size`` leaf hashes the monitor verified."""
        return read_leaves(self.leaves_path, size)

    def _save(
        self,
        state: MonitorState,
        checkpoint: Checkpoint,
        note_text: str,
        compact: CompactRange,
        new_leaves: list[bytes],
        recheck_position: int,
    ) -> None:
        # The leaves go first: a crash before the state is replaced leaves
        # extra hashes, which the next save cuts off at the recorded size.
        try:
            with open(self.leaves_path, "ab") as stream:
                stream.truncate(state.size * HASH_SIZE)
                stream.seek(state.size * HASH_SIZE)
                stream.write(b"".join(new_leaves))
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as err:
            raise Unavailable(
                f"cannot write {self.leaves_path}: {err.strerror or err}"
            ) from err
        document = {
            "version": 1,
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": encode_base64(checkpoint.root),
            "peaks": [encode_base64(peak) for peak in compact.peaks],
            "checkpoint": note_text,
            "recheck_position": recheck_position,
        }
        write_atomic(self.state_path, canonicalize(document) + b"\n")
        logger.info("%s: verified tree size %d", checkpoint.origin, checkpoint.size)


def _first_mismatch(
    first: int, entries: list[bytes], expected: list[bytes]
) -> tuple[int, bytes, bytes] | None:
    """Return (index, entry's leaf hash, expected hash) of the first mismatch."""
    sha256 = hashlib.sha256
    leaves = [sha256(_LEAF_PREFIX + entry).digest() for entry in entries]
    if leaves == expected:
        return None
    for offset, (leaf, hash_) in enumerate(zip(leaves, expected, strict=True)):
        if leaf != hash_:
            return first + offset, leaf, hash_
    return None
