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
5. store the new state atomically.

When step 3 fails, the monitor reads all level 0 tiles to tell a fork (the
tiles give the signed root but differ from the leaves seen before, at an
index it names) from an inconsistent log (its tiles do not give its own
signed root).

The state is a JSON file and, beside it, ``<state>.leaves``: every leaf hash
seen, 32 bytes each, so a fork is located to the leaf. Exit codes per
outcome are in ``Outcome`` and in ``specs/witness.md``.
"""

import hmac
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from verifier._encoding import decode_hash, encode_base64
from verifier._files import write_atomic
from verifier.checkpoint import Checkpoint, open_checkpoint
from verifier.errors import (
    BadSignature,
    MalformedInput,
    OriginMismatch,
    ProofMismatch,
    QuorumNotMet,
    Unavailable,
    VerificationError,
)
from verifier.jcs import canonicalize, parse_strict
from verifier.merkle import HASH_SIZE, verify_consistency
from verifier.note import VerifierKey
from verifier.tilehash import CompactRange, TileHashReader, leaf_hashes
from verifier.tiles import TILE_WIDTH, TiledLog
from verifier.witness_policy import WitnessPolicy

logger = logging.getLogger(__name__)


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


@dataclass
class MonitorState:
    """The last checkpoint seen, its compact range, and the leaf hash file."""

    origin: str
    size: int
    root: bytes
    checkpoint: str
    peaks: list[bytes] = field(default_factory=list)


class Monitor:
    """Checks a tiled log against its last verified state."""

    def __init__(
        self,
        log: TiledLog,
        keys: list[VerifierKey],
        state_path: str | Path,
        origin: str | None = None,
        policy: WitnessPolicy | None = None,
    ) -> None:
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
                    f"{old} seen before",
                    old,
                    new,
                )
            )
        if new == old:
            if hmac.compare_digest(state.root, checkpoint.root):
                self._save(
                    state, checkpoint, note_text, CompactRange(old, state.peaks), []
                )
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

        # 5. Store.
        self._save(state, checkpoint, note_text, compact, new_leaves)
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
        empty = MonitorState(checkpoint.origin, 0, b"", "")
        self._save(empty, checkpoint, note_text, compact, hashes)
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
        }
        write_atomic(self.state_path, canonicalize(document) + b"\n")
        logger.info("%s: verified tree size %d", checkpoint.origin, checkpoint.size)


def load_state(state_path: str | Path) -> MonitorState | None:
    """Return the monitor state stored at ``state_path``, or None when there is none."""
    state_path = Path(state_path)
    try:
        data = state_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Unavailable(f"cannot read {state_path}: {err.strerror or err}") from err
    try:
        document = parse_strict(data)
        state = MonitorState(
            origin=document["origin"],
            size=document["size"],
            root=decode_hash(document["root"], "state root"),
            checkpoint=document["checkpoint"],
            peaks=[decode_hash(p, "state peak") for p in document["peaks"]],
        )
        CompactRange(state.size, state.peaks)
    except (KeyError, TypeError, VerificationError) as err:
        raise MalformedInput(
            f"monitor state {state_path} is unreadable ({err}); restore it from a "
            "backup, because a monitor that forgets its state cannot see a rollback"
        ) from err
    return state


def read_leaves(leaves_path: str | Path, size: int) -> list[bytes]:
    """Return the first ``size`` leaf hashes stored in ``leaves_path``."""
    try:
        with open(leaves_path, "rb") as stream:
            data = stream.read(size * HASH_SIZE)
    except OSError as err:
        raise Unavailable(f"cannot read {leaves_path}: {err.strerror or err}") from err
    if len(data) != size * HASH_SIZE:
        raise MalformedInput(
            f"{leaves_path} contains {len(data) // HASH_SIZE} leaf hashes, but the "
            f"state records {size}; restore both files from a backup"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def leaves_path_for(state_path: str | Path) -> Path:
    """Return where the leaf hashes of the state at ``state_path`` are kept."""
    return Path(f"{state_path}.leaves")
