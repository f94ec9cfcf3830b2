"""Append items: CheckedItem, the single check per entry, idempotency conflicts."""

import pytest

import ledger.items
from ledger import (
    IdempotencyConflict,
    InvalidEntry,
    InvalidRequest,
    key_record,
)
from ledger.items import CheckedItem, check_item, checked_items

from .conftest import FIXED_NOW, record


@pytest.fixture
def entry_checks(monkeypatch):
    """Count the calls of check_entry made through ledger.items."""
    calls = []
    original = ledger.items.check_entry

    def counting(entry):
        calls.append(entry)
        return original(entry)

    monkeypatch.setattr(ledger.items, "check_entry", counting)
    return calls


def test_check_item_returns_checked_pair():
    item = check_item(bytearray(record(1)), "k")
    assert isinstance(item, CheckedItem)
    assert item.entry == record(1)
    assert type(item.entry) is bytes
    assert item.key == "k"
    entry, key = item
    assert (entry, key) == (record(1), "k")


def test_checked_item_made_only_by_check_item():
    with pytest.raises(TypeError, match="only ledger.items.check_item makes"):
        CheckedItem(b"not checked", None, issued=object())


def test_checked_item_is_read_only():
    item = check_item(record(1))
    with pytest.raises(AttributeError):
        item.entry = b"{}"


def test_check_item_rejects_key_record(signer):
    with pytest.raises(InvalidRequest, match="entry is a key record"):
        check_item(key_record(signer, FIXED_NOW))


def test_check_item_rejects_bad_entry_and_key():
    with pytest.raises(InvalidEntry, match="duplicate member name 'a'"):
        check_item(b'{"a":1,"a":2}')
    with pytest.raises(InvalidRequest, match="idempotency key is 257 characters"):
        check_item(record(1), "k" * 257)


def test_checked_items_reports_each_item():
    outcomes = checked_items([(record(1), None), "not a pair", (b"[]", None)])
    assert isinstance(outcomes[0], CheckedItem)
    assert str(outcomes[1]) == (
        "batch item 1 must be an (entry, idempotency key) pair, got str"
    )
    assert str(outcomes[2]) == "entry must be a JSON object, got a JSON array"


def test_checked_items_are_not_checked_again(open_log, entry_checks):
    ledger = open_log()
    items = [check_item(record(i)) for i in range(5)]
    assert len(entry_checks) == 5

    ledger.append_batch(items)
    ledger.append_each([check_item(record(9))])

    assert len(entry_checks) == 6


def test_plain_pairs_checked_once(open_log, entry_checks):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(4)])
    ledger.append_each([(record(9), None)])
    assert len(entry_checks) == 5


def test_reused_key_raises_idempotency_conflict(open_log):
    ledger = open_log()
    ledger.append(record(1), key="call-1")
    with pytest.raises(IdempotencyConflict) as caught:
        ledger.append(record(2), key="call-1")
    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.key == "call-1"
    assert caught.value.first_index == 1
    assert str(caught.value) == (
        "idempotency key 'call-1' was first used for a different entry (leaf 1); "
        "use a new key for a new entry"
    )


def test_append_each_returns_conflict_in_place(open_log):
    ledger = open_log()
    outcomes = ledger.append_each(
        [(record(1), "k"), (record(2), "k"), (record(3), None)]
    )
    assert outcomes[0].index == 1
    assert isinstance(outcomes[1], IdempotencyConflict)
    assert outcomes[1].first_index == 1
    assert outcomes[2].index == 2
    assert ledger.size == 3
