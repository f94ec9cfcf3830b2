"""Strict JSON parsing and RFC 8785 serialization, cross-checked with rfc8785."""

import json
import math

import re

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import (
    MalformedInput,
    canonicalize,
    format_number,
    is_canonical,
    parse_strict,
)
from verifier.jcs import MAX_DEPTH, _write_canonical

# Strict parsing.


def test_duplicate_member_names_fail():
    with pytest.raises(
        MalformedInput,
        match="expected unique member names, got 'verdict' twice",
    ):
        parse_strict(b'{"verdict":"deny","verdict":"allow"}')


def test_duplicate_in_nested_object_fails():
    with pytest.raises(MalformedInput, match="got 'a' twice"):
        parse_strict('[{"b": {"a": 1, "a": 1}}]')


def test_escaped_duplicate_member_name_fails():
    with pytest.raises(MalformedInput, match="got 'a' twice"):
        parse_strict('{"a": 1, "\\u0061": 2}')


def test_lone_high_surrogate_fails():
    with pytest.raises(MalformedInput, match="lone surrogate U\\+D800"):
        parse_strict('"\\ud800"')


def test_lone_low_surrogate_in_member_name_fails():
    with pytest.raises(MalformedInput, match="lone surrogate U\\+DC00"):
        parse_strict('{"\\udc00": 1}')


def test_reversed_surrogate_pair_fails():
    with pytest.raises(MalformedInput, match="lone surrogate"):
        parse_strict('"\\ude00\\ud83d"')


def test_surrogate_pair_is_one_character():
    assert parse_strict('"\\ud83d\\ude00"') == "\U0001f600"


def test_encoded_surrogate_bytes_fail():
    with pytest.raises(MalformedInput, match="expected UTF-8 text, got invalid byte"):
        parse_strict(b'"\xed\xa0\x80"')


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_fail(literal):
    with pytest.raises(
        MalformedInput,
        match=f"got {literal}, which JSON does not allow",
    ):
        parse_strict(f"[{literal}]")


@pytest.mark.parametrize(
    "literal", ["1e400", "-1e400", "1" + "0" * 309, "-" + "9" * 400]
)
def test_numbers_beyond_double_range_fail(literal):
    with pytest.raises(MalformedInput, match="within the IEEE 754 double range"):
        parse_strict(f"[{literal}]")


def test_large_integer_literal_parses_only_in_canonical_form():
    # 1e20 is written 100000000000000000000; its exact 309-digit value is
    # not how RFC 8785 writes the largest double, and 2^53 + 1 is no double.
    assert parse_strict("100000000000000000000") == 1e20
    assert parse_strict("-42849981437514450") == -42849981437514450.0
    for literal in (str(int(1.7976931348623157e308)), "9007199254740993",
                    "42849981437514448"):
        with pytest.raises(MalformedInput, match="not the RFC 8785 form"):
            parse_strict(literal)


def test_tiny_numbers_parse_to_zero():
    assert parse_strict("1e-400") == 0.0


@pytest.mark.parametrize(
    "text",
    ["01", "+1", ".5", "1.", "[1,]", "{'a':1}", "\ufeff{}", "[\uff18]", "", "[1] 2"],
)
def test_invalid_json_fails(text):
    with pytest.raises(MalformedInput, match="JSON: invalid at line 1 column"):
        parse_strict(text)


def test_raw_control_character_in_string_fails():
    with pytest.raises(MalformedInput, match="Invalid control character"):
        parse_strict('"a\nb"')


def test_nesting_at_limit_parses():
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert canonicalize(parse_strict(text)) == text.encode()


def test_nesting_over_limit_fails():
    text = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(MalformedInput, match="expected at most 64 levels of nesting"):
        parse_strict(text)


def test_extreme_nesting_fails_without_recursion_error():
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(MalformedInput, match="expected at most 64 levels of nesting"):
        parse_strict(text)


def test_non_text_input_fails():
    with pytest.raises(MalformedInput, match="JSON: expected bytes or str, got int"):
        parse_strict(5)


def test_small_integers_stay_integers():
    value = parse_strict("[9007199254740991, -9007199254740991, 0, -0]")
    assert value == [9007199254740991, -9007199254740991, 0, 0]
    assert all(isinstance(item, int) for item in value)


# Serialization.


def test_negative_zero_is_zero():
    assert canonicalize(-0.0) == b"0"


def test_integral_float_has_no_fraction():
    assert canonicalize([1.0, 100.0, 1e21, 1e-7]) == b"[1,100,1e+21,1e-7]"


def test_python_int_beyond_2_53_fails():
    with pytest.raises(
        MalformedInput,
        match="expected an integer within ±\\(2\\^53 - 1\\)",
    ):
        canonicalize({"n": 2**53})


def test_nan_fails():
    with pytest.raises(MalformedInput, match="expected a finite number, got nan"):
        canonicalize([math.nan])


def test_lone_surrogate_in_value_fails():
    with pytest.raises(MalformedInput, match="lone surrogate U\\+DFFF"):
        canonicalize({"a": "x\udfff"})


def test_lone_surrogate_in_member_name_fails():
    with pytest.raises(MalformedInput, match="lone surrogate U\\+D800"):
        canonicalize({"\ud800": 1, "\U0001f600": 2})


def test_non_string_member_name_fails():
    with pytest.raises(MalformedInput, match="expected str member names, got int 1"):
        canonicalize({1: "one"})


def test_unsupported_type_fails():
    with pytest.raises(MalformedInput, match="got set"):
        canonicalize({"a": {1, 2}})


def test_tuple_is_an_array():
    assert canonicalize(("a", True, None)) == b'["a",true,null]'


def test_deep_value_fails():
    value: list = []
    for _ in range(MAX_DEPTH):
        value = [value]
    with pytest.raises(MalformedInput, match="expected at most 64 levels of nesting"):
        canonicalize(value)


def test_escapes_are_minimal():
    value = "\"\\/\b\f\n\r\t\x00\x1f\x7f\u2028é"
    expected = '"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\u2028é"'.encode()
    assert canonicalize(value) == expected


def test_is_canonical_examples():
    assert is_canonical(b'{"a":1,"b":[true,null]}')
    assert not is_canonical(b'{"b":1,"a":2}')
    assert not is_canonical(b'{"a": 1}')
    assert not is_canonical(b'{"a":1.0}')
    assert not is_canonical(b'"\\u00e9"')
    assert not is_canonical(b'{"a":1,"a":1}')
    assert not is_canonical(b"\xff")


def test_is_canonical_rejects_str():
    with pytest.raises(MalformedInput, match="JSON: expected bytes, got str"):
        is_canonical("{}")


# Cross-checks with the rfc8785 package.

SAFE_INTEGERS = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
FINITE_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
def _containers(children):
    # A named function: hypothesis cannot read a multi-line lambda's source
    # and would warn that it does not recurse.
    return st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | SAFE_INTEGERS | FINITE_FLOATS | TEXT,
    _containers,
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(FINITE_FLOATS)
def test_number_format_matches_rfc8785(value):
    text = format_number(value)

    assert text == rfc8785.dumps(value).decode()
    assert float(text) == value


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_canonical_form_matches_rfc8785(value):
    assert canonicalize(value) == rfc8785.dumps(value)


# Values where Python's encoder and RFC 8785 differ: astral member names
# (sort order), floats such as 1.0, 1e-07 and 1e+16, and 2^53.
DIVERGING = st.recursive(
    st.sampled_from([1.0, 1e-7, 1e16, 1e21, 0.1, -0.0, 2**53, "\U0001f600", "\u2028"])
    | SAFE_INTEGERS | FINITE_FLOATS | TEXT,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "\U0001f600", "\ufb33", "\x7f"]) | TEXT,
                      children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(DIVERGING)
def test_fast_path_agrees_with_full_writer(value):
    # canonicalize takes the C encoder's output only where it is canonical.
    try:
        expected = _write_canonical(value)
    except MalformedInput as err:
        with pytest.raises(MalformedInput, match=re.escape(str(err))):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_canonical_form_round_trips(value):
    canonical = canonicalize(value)

    assert parse_strict(canonical) == value
    assert is_canonical(canonical)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_any_spelling_reaches_the_same_form(value):
    spelled = json.dumps(value, indent=2, ensure_ascii=True).encode()
    assert canonicalize(parse_strict(spelled)) == rfc8785.dumps(value)
