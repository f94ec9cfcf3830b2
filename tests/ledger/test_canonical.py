"""check_entry and canonical_bytes on their own."""

import pytest

from ledger import InvalidEntry
from ledger.canonical import MAX_ENTRY_BYTES, canonical_bytes, check_entry


def test_check_entry_returns_object():
    assert check_entry(b'{"a":[1,"x",null,true],"b":{"c":0.5}}') == {
        "a": [1, "x", None, True],
        "b": {"c": 0.5},
    }


def test_check_entry_accepts_bytearray():
    assert check_entry(bytearray(b'{"a":1}')) == {"a": 1}


def test_non_canonical_message_shows_both_sides():
    with pytest.raises(InvalidEntry) as caught:
        check_entry(b'{"b":1,"a":2}')
    message = str(caught.value)
    assert "at offset 2" in message
    assert 'entry has b\'b":1,"a":2}\'' in message
    assert 'canonical has b\'a":2,"b":1}\'' in message
    assert "send the canonical bytes" in message


def test_deep_nesting_rejected():
    entry = b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"
    assert len(entry) <= MAX_ENTRY_BYTES
    with pytest.raises(InvalidEntry, match="nested too deeply"):
        check_entry(entry)


def test_canonical_bytes_sorts_by_utf16():
    assert canonical_bytes({"\ufb33": 1, "\U0001f600": 2}) == (
        '{"\U0001f600":2,"\ufb33":1}'.encode()
    )
