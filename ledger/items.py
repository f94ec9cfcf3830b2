"""Append items: the checks every entry passes, and leaf index assignment.

An append request is a sequence of ``(entry, idempotency_key)`` pairs.
``check_item`` checks one pair and returns it as a ``CheckedItem``. The
entry must be the RFC 8785 (JCS) bytes of a JSON object and not a ``key``
record, because only key rotation writes those. The idempotency key must be
None or a string of 1 to 256 characters.

The ledger checks every plain pair it is given, and takes a ``CheckedItem``
as it is. A ``Sequencer`` checks each item in its caller's thread, so that a
bad entry fails at once, and hands the ``CheckedItem`` objects to the ledger,
which then does not parse and canonicalize each entry a second time. Only
``check_item`` makes a ``CheckedItem``, and its fields cannot be reassigned
(the entry is ``bytes``, so its content cannot change either).

``assign_indexes`` runs inside the write transaction: it resolves
idempotency keys against the stored ones and gives each new entry the next
leaf index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .canonical import check_entry
from .errors import IdempotencyConflict, InvalidRequest, LedgerError

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "CheckedItem",
    "assign_indexes",
    "check_idempotency_key",
    "check_item",
    "checked_items",
]

# Idempotency keys are opaque strings chosen by the caller.
MAX_IDEMPOTENCY_KEY_LENGTH = 256
# Passed by check_item alone, so that no other code makes a CheckedItem.
_ISSUED = object()


class CheckedItem(tuple):
    """An ``(entry, idempotency key)`` pair that passed ``check_item``.

    A tuple, so it unpacks like the plain pairs it stands for and cannot be
    changed after the check.
    """

    __slots__ = ()

    def __new__(cls, entry: bytes, key: str | None, *, issued: object) -> CheckedItem:
        if issued is not _ISSUED:
            raise TypeError("only ledger.items.check_item makes a CheckedItem")
        return super().__new__(cls, (entry, key))

    @property
    def entry(self) -> bytes:
        """The entry: canonical JCS bytes of a JSON object, not a key record."""
        return self[0]

    @property
    def key(self) -> str | None:
        """The idempotency key, or None."""
        return self[1]

    def __repr__(self) -> str:
        return f"CheckedItem(entry={self[0][:40]!r}, key={self[1]!r})"


class KeyLookup(Protocol):
    """The query ``assign_indexes`` needs: stored idempotency keys."""

    def find_idempotency_keys(
        self, keys: Iterable[str]
    ) -> dict[str, tuple[int, bytes]]: ...


def check_idempotency_key(key: object) -> None:
    """Raise ``InvalidRequest`` unless ``key`` is None or a valid idempotency key."""
    if key is None:
        return
    if not isinstance(key, str) or not key:
        raise InvalidRequest(
            f"idempotency key must be None or a non-empty string, got {key!r}"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequest(
            f"idempotency key is {len(key)} characters; the maximum is "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH}"
        )


def check_item(entry: object, key: object = None) -> CheckedItem:
    """Check one entry and its idempotency key; return them as a ``CheckedItem``.

    Raises ``InvalidEntry`` for an entry that is not canonical JCS bytes of
    a JSON object, and ``InvalidRequest`` for a key record or a bad key.
    """
    record = check_entry(entry)  # type: ignore[arg-type]
    if record.get("type") == "key":
        raise InvalidRequest(
            "entry is a key record; only Ledger.add_key and Ledger.retire_key "
            "(agentgate log add-key, retire-key) write key records, so that the "
            "log tracks which keys sign it"
        )
    check_idempotency_key(key)
    return CheckedItem(bytes(entry), key, issued=_ISSUED)  # type: ignore[arg-type]


def checked_items(
    items: Sequence[object],
) -> list[CheckedItem | LedgerError]:
    """Check each batch item; return its ``CheckedItem`` or the error it raised.

    An item that is already a ``CheckedItem`` is kept without a second check.
    """
    outcomes: list[CheckedItem | LedgerError] = []
    for position, item in enumerate(items):
        if isinstance(item, CheckedItem):
            outcomes.append(item)
            continue
        if not isinstance(item, tuple) or len(item) != 2:
            outcomes.append(
                InvalidRequest(
                    f"batch item {position} must be an (entry, idempotency key) "
                    f"pair, got {type(item).__name__}"
                )
            )
            continue
        try:
            outcomes.append(check_item(*item))
        except LedgerError as err:
            outcomes.append(err)
    return outcomes


def assign_indexes(
    reads: KeyLookup, items: Sequence[tuple[bytes, str | None]], size: int
) -> tuple[list[int | LedgerError], list[bytes], list[str | None]]:
    """Assign leaf indexes from ``size`` on, resolving idempotency keys.

    ``items`` are checked pairs: ``CheckedItem`` objects, or key records
    that the ledger made itself. Returns the index (or
    ``IdempotencyConflict``) of each item, and the entries and keys to
    store. An item whose key was stored before, or used earlier in
    ``items``, stores nothing and gets the first entry's index, if its
    entry is byte for byte that entry.
    """
    previous = reads.find_idempotency_keys(key for _, key in items if key)
    first_in_batch: dict[str, tuple[int, bytes]] = {}
    indexes: list[int | LedgerError] = []
    new_entries: list[bytes] = []
    new_keys: list[str | None] = []
    next_index = size
    for entry, key in items:
        earlier = None
        if key is not None:
            earlier = previous.get(key) or first_in_batch.get(key)
        if earlier is not None:
            index, earlier_entry = earlier
            if earlier_entry != entry:
                indexes.append(
                    IdempotencyConflict(
                        f"idempotency key {key!r} was first used for a different "
                        f"entry (leaf {index}); use a new key for a new entry",
                        key,
                        index,
                    )
                )
            else:
                indexes.append(index)
            continue
        if key is not None:
            first_in_batch[key] = (next_index, entry)
        indexes.append(next_index)
        new_entries.append(entry)
        new_keys.append(key)
        next_index += 1
    return indexes, new_entries, new_keys
