"""Tamperings of a log database, done with SQL as an operator with access could.

Each function works on an SQLite file path or a PostgreSQL URL, through the
ledger's own tables (``ledger.storage``):

- ``rewrite_leaves`` changes the rows of the ``leaves`` table and nothing
  else, so the stored subtree hashes, the head and the signed checkpoints
  still describe the honest tree. Deleting, inserting and reordering rows
  are expressed as the contents the rows hold afterwards; the row count
  stays at the signed size, so that the ledger still serves every index.
- ``roll_back`` cuts the log back to an earlier size for which it signed a
  checkpoint, in every table, as restoring an old backup would.
- ``rebuild_tree`` makes the stored tree match rewritten leaves and removes
  the checkpoints that cover them, so that the ledger signs the rewritten
  tree with the log key when it next opens the database: a fork.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from ledger import Ledger
from tests.tamper.gate_run import T0, GateRun


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def engine_for(url: str) -> Engine:
    """Return an engine without a pool for an SQLite path or a database URL."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    return create_engine(url, poolclass=NullPool)


def copy_log(run: GateRun, url: str) -> None:
    """Write the gate's log into the empty database ``url``, batch by batch.

    The ledger signs deterministically, so the copy holds the same entries,
    tree and checkpoints as the log the gate wrote.
    """
    ledger = Ledger.open(url, run.signer, now=T0)
    try:
        if ledger.entries(0, 1) != run.entries[:1]:
            raise AssertionError("the copy's key record differs from the gate's")
        start = 1
        for size in run.batches:
            ledger.append_batch([(entry, None) for entry in run.entries[start:size]])
            start = size
        if ledger.latest_checkpoint() != run.checkpoint:
            raise AssertionError("the copy's checkpoint differs from the gate's")
    finally:
        ledger.close()


def rewrite_leaves(
    url: str, honest: Sequence[bytes], forged: Sequence[bytes], *, hashes: bool = True
) -> None:
    """Store ``forged[i]`` in every leaf row whose entry differs from ``honest[i]``.

    With ``hashes`` the row's leaf hash is rewritten to match its new entry,
    so the hash tiles show the change; without it the stored leaf hash is
    left as it was and only the entry bytes change.
    """
    if len(forged) != len(honest):
        raise ValueError(f"expected {len(honest)} entries, got {len(forged)}")
    statement = (
        "UPDATE leaves SET entry = :entry, leaf_hash = :hash, "
        "idempotency_key = NULL WHERE leaf_index = :index"
        if hashes
        else "UPDATE leaves SET entry = :entry WHERE leaf_index = :index"
    )
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            for index, (old, new) in enumerate(zip(honest, forged, strict=True)):
                if old != new:
                    connection.execute(
                        text(statement),
                        {"entry": new, "hash": leaf_hash(new), "index": index},
                    )
    finally:
        engine.dispose()


def roll_back(url: str, entries: Sequence[bytes], size: int) -> None:
    """Cut the log back to ``size`` leaves in every table (leaves, nodes, head)."""
    root = tree_levels(entries[:size])[-1][0]
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("DELETE FROM leaves WHERE leaf_index >= :size"), {"size": size}
            )
            for level in range(1, 64):
                # Node (level, i) covers leaves [i * 2**level, (i + 1) * 2**level).
                connection.execute(
                    text(
                        "DELETE FROM nodes WHERE level = :level "
                        "AND node_index >= :first"
                    ),
                    {"level": level, "first": size >> level},
                )
            connection.execute(
                text("DELETE FROM checkpoints WHERE size > :size"), {"size": size}
            )
            connection.execute(
                text("UPDATE log_head SET size = :size, root = :root"),
                {"size": size, "root": root},
            )
    finally:
        engine.dispose()


def tree_levels(entries: Sequence[bytes]) -> list[list[bytes]]:
    """Return the hashes of every complete subtree, by level, and the root last.

    Level ``k`` holds the subtrees of ``2**k`` leaves; the last list holds
    the RFC 9162 root of all ``entries``.
    """
    levels = [[leaf_hash(entry) for entry in entries]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append(
            [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        )
    return levels + [[_root([leaf_hash(entry) for entry in entries])]]


def _root(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    split = 1 << (len(hashes) - 1).bit_length() - 1
    return node_hash(_root(hashes[:split]), _root(hashes[split:]))


def rebuild_tree(url: str, honest: Sequence[bytes], forged: Sequence[bytes]) -> None:
    """Rewrite the leaves and the whole stored tree, and drop the checkpoints
    from the first changed leaf on; the ledger signs the forged head on open."""
    first_changed = next(
        i for i, (old, new) in enumerate(zip(honest, forged, strict=True)) if old != new
    )
    rewrite_leaves(url, honest, forged)
    levels = tree_levels(forged)
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM nodes"))
            for level, hashes in enumerate(levels[1:-1], start=1):
                for index, digest in enumerate(hashes):
                    connection.execute(
                        text(
                            "INSERT INTO nodes (level, node_index, hash) "
                            "VALUES (:level, :index, :hash)"
                        ),
                        {"level": level, "index": index, "hash": digest},
                    )
            connection.execute(
                text("UPDATE log_head SET root = :root"), {"root": levels[-1][0]}
            )
            connection.execute(
                text("DELETE FROM checkpoints WHERE size > :size"),
                {"size": first_changed},
            )
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Tampering:
    """One tampering: what it does to the database, and the answer expected.

    ``first_bad`` is the first leaf index that differs from the honest log,
    and ``appended`` how many records the log takes after the tampering.
    A tampering that is not ``offline`` is done under a running server,
    which keeps its own view of the tree; an ``offline`` one is done before
    the server opens the database, because it changes what the ledger
    reads when it opens a log (the head, the stored tree, the checkpoints).
    """

    name: str
    apply: Callable[[str, GateRun], None]
    first_bad: int
    appended: int = 2
    offline: bool = False


def replaced(entries: Sequence[bytes], index: int, old: bytes, new: bytes) -> list:
    """Return ``entries`` with ``old`` replaced by ``new`` in entry ``index``."""
    if old not in entries[index]:
        raise ValueError(f"entry {index} does not contain {old!r}")
    result = list(entries)
    result[index] = result[index].replace(old, new)
    return result


def _changed(url: str, run: GateRun) -> None:
    forged = replaced(run.entries, 5, b'"send_money"', b'"read_money"')
    rewrite_leaves(url, run.entries, forged)


def _changed_bytes_only(url: str, run: GateRun) -> None:
    forged = replaced(run.entries, 7, b'"verdict":"hold"', b'"verdict":"deny"')
    rewrite_leaves(url, run.entries, forged, hashes=False)


def _deleted(url: str, run: GateRun) -> None:
    # Leaf 9 goes; the later ones move down, and the last one stays in place
    # as well, so the rows still fill the signed size.
    forged = run.entries[:9] + run.entries[10:] + run.entries[-1:]
    rewrite_leaves(url, run.entries, forged)


def _reordered(url: str, run: GateRun) -> None:
    forged = list(run.entries)
    forged[14], forged[15] = forged[15], forged[14]
    rewrite_leaves(url, run.entries, forged)


def _inserted(url: str, run: GateRun) -> None:
    # A copy of the payment at leaf 5, with another time, goes in at 12; the
    # last leaf falls off the signed size.
    forged_record = replaced(run.entries, 5, b'.000000Z"', b'.500000Z"')[5]
    forged = run.entries[:12] + [forged_record] + run.entries[12:-1]
    rewrite_leaves(url, run.entries, forged)


def _truncated(url: str, run: GateRun) -> None:
    roll_back(url, run.entries, 15)


def _forked_same_size(url: str, run: GateRun) -> None:
    forged = replaced(run.entries, 11, b'"send_money"', b'"read_money"')
    rebuild_tree(url, run.entries, forged)


def _forked_larger(url: str, run: GateRun) -> None:
    forged = replaced(run.entries, 16, b'"reason":"rotated"', b'"reason":"retired"')
    rebuild_tree(url, run.entries, forged)


CHANGED = Tampering("changed", _changed, 5)
CHANGED_BYTES_ONLY = Tampering("changed-bytes-only", _changed_bytes_only, 7)
DELETED = Tampering("deleted", _deleted, 9)
REORDERED = Tampering("reordered", _reordered, 14)
INSERTED = Tampering("inserted", _inserted, 12)
TRUNCATED = Tampering("truncated", _truncated, 15, appended=0, offline=True)
FORKED_SAME_SIZE = Tampering(
    "forked-same-size", _forked_same_size, 11, appended=0, offline=True
)
FORKED_LARGER = Tampering("forked-larger", _forked_larger, 16, offline=True)
