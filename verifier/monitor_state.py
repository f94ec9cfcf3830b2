"""The monitor's state on disk: a JSON file and the leaf hashes beside it.

``<state>`` holds the last verified checkpoint, its compact range and the
recheck position; ``<state>.leaves`` holds every leaf hash the monitor
verified, 32 bytes each, so a fork is located to the leaf and old entries
can be checked again. ``Monitor`` writes both (``verifier/monitor.py``);
``agentgate audit`` reads them to start from what a monitor verified.
"""

from dataclasses import dataclass, field
from pathlib import Path

from verifier._encoding import decode_hash
from verifier.errors import MalformedInput, Unavailable, VerificationError
from verifier.jcs import parse_strict
from verifier.merkle import HASH_SIZE
from verifier.tilehash import CompactRange


@dataclass
class MonitorState:
    """The last checkpoint seen, its compact range, and the leaf hash file."""

    origin: str
    size: int
    root: bytes
    checkpoint: str
    peaks: list[bytes] = field(default_factory=list)
    # The level 0 tile whose bundle the next check re-reads first.
    recheck_position: int = 0


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
            # A state written before rechecks existed starts at tile 0.
            recheck_position=document.get("recheck_position", 0),
        )
        CompactRange(state.size, state.peaks)
        if (
            not isinstance(state.recheck_position, int)
            or isinstance(state.recheck_position, bool)
            or state.recheck_position < 0
        ):
            raise MalformedInput(
                "recheck_position: expected an integer >= 0, got "
                f"{state.recheck_position!r}"
            )
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


def read_leaf_range(leaves_path: str | Path, start: int, end: int) -> list[bytes]:
    """Return the stored leaf hashes ``[start, end)`` without reading the rest."""
    try:
        with open(leaves_path, "rb") as stream:
            stream.seek(start * HASH_SIZE)
            data = stream.read((end - start) * HASH_SIZE)
    except OSError as err:
        raise Unavailable(f"cannot read {leaves_path}: {err.strerror or err}") from err
    if len(data) != (end - start) * HASH_SIZE:
        raise MalformedInput(
            f"{leaves_path} ends before leaf {end - 1}, which the state records; "
            "restore both files from a backup"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def leaves_path_for(state_path: str | Path) -> Path:
    """Return where the leaf hashes of the state at ``state_path`` are kept."""
    return Path(f"{state_path}.leaves")
