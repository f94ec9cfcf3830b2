"""A test-only writer of C2SP tlog-tiles directories.

It follows the tile layout of ``specs/http-api.md`` and shares no code with
the ledger or the verifier, so the verifier's tile reader is tested against
an independent writer. Tests change the files it writes to simulate a log
that misbehaves.
"""

import hashlib
from pathlib import Path

WIDTH = 256


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def index_path(index: int) -> str:
    digits = f"{index:d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def tile_name(level, index: int, width: int) -> str:
    head = "tile/entries" if level is None else f"tile/{level}"
    name = f"{head}/{index_path(index)}"
    return name if width == WIDTH else f"{name}.p/{width}"


def bundle(entries: list[bytes]) -> bytes:
    return b"".join(len(e).to_bytes(2, "big") + e for e in entries)


def write_tiles(
    directory: Path,
    entries: list[bytes],
    checkpoint: str | bytes,
    leaves: list[bytes] | None = None,
) -> None:
    """Write the checkpoint, every hash tile and every entry bundle of the log.

    ``leaves`` overrides the level 0 hashes, so a test can write tiles that
    disagree with the entries.
    """
    directory = Path(directory)
    hashes = list(leaves) if leaves is not None else [leaf_hash(e) for e in entries]
    level = 0
    while hashes:
        for start in range(0, len(hashes), WIDTH):
            chunk = hashes[start : start + WIDTH]
            write(
                directory, tile_name(level, start // WIDTH, len(chunk)), b"".join(chunk)
            )
            if level == 0:
                write(
                    directory,
                    tile_name(None, start // WIDTH, len(chunk)),
                    bundle(entries[start : start + WIDTH]),
                )
        parents = []
        for start in range(0, len(hashes) - len(hashes) % WIDTH, WIDTH):
            group = hashes[start : start + WIDTH]
            while len(group) > 1:
                group = [
                    node_hash(group[i], group[i + 1]) for i in range(0, len(group), 2)
                ]
            parents.append(group[0])
        hashes = parents
        level += 1
    if isinstance(checkpoint, str):
        checkpoint = checkpoint.encode()
    write(directory, "checkpoint", checkpoint)


def write(directory: Path, name: str, data: bytes) -> None:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
