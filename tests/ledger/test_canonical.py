"""check_entry and canonical_bytes on their own."""

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- the fast comparison agrees with rfc8785 ---------------------------------------
#
# check_entry first compares an entry with the C json encoder's output and
# falls back to rfc8785 only when that comparison fails. These tests check
# that it accepts exactly the entries whose rfc8785 serialization they are.


def rfc8785_accepts(entry):
    """Return whether ``entry`` is the rfc8785 serialization of its own parse."""
    try:
        # Integers beyond 2^53 - 1 read as doubles, as in the verifier.
        value = json.loads(entry.decode("utf-8"), parse_int=_read_integer)
        return isinstance(value, dict) and rfc8785.dumps(value) == entry
    except (ValueError, rfc8785.CanonicalizationError, UnicodeEncodeError):
        return False


def _read_integer(token):
    number = int(token)
    return number if abs(number) <= 2**53 - 1 else float(number)


def check_entry_accepts(entry):
    try:
        check_entry(entry)
    except InvalidEntry:
        return False
    return True


# Characters that the two serializations treat differently when mishandled:
# controls and their short escapes, quotes, backslashes, U+2028, characters
# above U+FFFF (UTF-16 key order) and the private use area that sorts
# differently from them.
TRICKY_TEXT = st.text(
    alphabet=st.sampled_from(
        ["a", "Z", "\x00", "\x1f", "\b", "\f", "\n", "\r", "\t", '"', "\\", "/",
         "\x7f", "\u00e9", "\u2028", "\ufb33", "\uffff", "\U0001f600", "\U00010000"]
    ),
    max_size=6,
)
JSON_NUMBERS = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1e21, 1e-7, 1e16, 123e-20, 5e-324, 0.1]),
)
def _containers(children):
    # A named function: hypothesis cannot read a multi-line lambda's source
    # and would warn that it does not recurse.
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(TRICKY_TEXT, children, max_size=4),
    )


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), JSON_NUMBERS, TRICKY_TEXT),
    _containers,
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(TRICKY_TEXT, JSON_VALUES, max_size=5)


def serializations(value):
    """Return byte forms of ``value``: canonical, and near misses of it."""
    forms = []
    try:
        forms.append(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError:
        pass
    for ensure_ascii in (False, True):
        for sort_keys in (False, True):
            text = json.dumps(
                value,
                ensure_ascii=ensure_ascii,
                sort_keys=sort_keys,
                separators=(",", ":"),
            )
            forms.append(text.encode("utf-8", "surrogatepass"))
    return forms


@settings(max_examples=400, deadline=None)
@given(JSON_OBJECTS)
def test_fast_check_agrees_with_rfc8785(value):
    for entry in serializations(value):
        assert check_entry_accepts(entry) == rfc8785_accepts(entry), entry


@pytest.mark.parametrize(
    "entry, accepted",
    [
        (b'{"a":1.0}', False),
        (b'{"a":1}', True),
        (b'{"a":1e-07}', False),
        (b'{"a":1e-7}', True),
        (b'{"a":1e+16}', False),
        (b'{"a":1e+15}', False),
        (b'{"a":1000000000000000}', True),
        (b'{"a":1e+21}', True),
        (b'{"a":-0.0}', False),
        (b'{"a":-0}', False),
        (b'{"a":9007199254740991}', True),
        # Beyond 2^53 - 1, an integer literal is accepted only as the
        # RFC 8785 form of a double: 2^53 and 1e16 are, 2^53 + 1 is not.
        (b'{"a":9007199254740992}', True),
        (b'{"a":9007199254740993}', False),
        (b'{"a":10000000000000000}', True),
        (b'{"a":42849981437514450}', True),
        (b'{"a":42849981437514448}', False),
        (b'{"a":"\\u00e9"}', False),
        ('{"a":"\u00e9"}'.encode(), True),
        (b'{"a":"\\u001f"}', True),
        (b'{"a":"\\u001F"}', False),
        (b'{"a":"\\/"}', False),
        ('{"\U0001f600":2,"\ufb33":1}'.encode(), True),
        ('{"\ufb33":1,"\U0001f600":2}'.encode(), False),
        (b'{"\\ud83d\\ude00":1}', False),
        (b'{"a":"\\ud800"}', False),
    ],
)
def test_fast_check_edge_cases(entry, accepted):
    assert check_entry_accepts(entry) == accepted
    assert rfc8785_accepts(entry) == accepted
