"""The gate's canonical JSON: the strict parser and the pre-canonicalization check."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcement import jcs
from enforcement.errors import InvalidRequest

MIXED = {
    "z": 1.5,
    "a": {"nested": {"deeper": [1, 2.25, -0.0, 1e21, 1e-7]}, "b": None},
    "\u20ac": "Euro \u00e9 \U0001f600",
    "\U0001f600": "astral key",
    "\ufb33": "dalet",
    "flags": [True, False],
    "control": "\u0000\u001f\t\n",
}


def test_canonical_matches_rfc8785_package():
    assert jcs.canonical(MIXED) == rfc8785.dumps(MIXED)


def test_canonical_sorts_by_utf16_code_units():
    text = jcs.canonical({"\ufb33": 1, "\U0001f600": 2}).decode()
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB33.
    assert text == '{"\U0001f600":2,"\ufb33":1}'


def test_canonical_number_forms():
    assert jcs.canonical([1.0, 100, 1e21, 1e-7, -0.0, 0.1]) == \
        b"[1,100,1e+21,1e-7,0,0.1]"


def test_digest_is_sha256_of_canonical():
    assert jcs.digest(MIXED) == hashlib.sha256(rfc8785.dumps(MIXED)).hexdigest()


def test_parse_strict_round_trip():
    assert jcs.parse_strict(jcs.canonical(MIXED)) == MIXED


@pytest.mark.parametrize(("text", "message"), [
    ('{"decision":"deny","decision":"allow"}',
     "duplicate member name 'decision' in JSON object"),
    ('{"outer":{"k":1,"k":2}}', "duplicate member name 'k'"),
    ('[{"a":1},{"b":1,"b":1}]', "duplicate member name 'b'"),
    ('[NaN]', "NaN is not valid JSON; numbers must be finite"),
    ('[Infinity]', "Infinity is not valid JSON"),
    ('[-Infinity]', "-Infinity is not valid JSON"),
    ('[1e400]', r"\$\[0\]: inf is not a finite number"),
    ('"\\udead"', r"\$: string holds a lone surrogate at position 0"),
    ('{"\\ud800":1}', r"\$ key: string holds a lone surrogate"),
    ('[9007199254740993]', r"integer 9007199254740993 is outside \+-\(2\^53 - 1\)"),
    ('{"a":1', "invalid JSON: Expecting ',' delimiter"),
    ('', "invalid JSON: Expecting value"),
])
def test_parse_strict_rejects(text, message):
    with pytest.raises(InvalidRequest, match=message):
        jcs.parse_strict(text)


def test_parse_strict_rejects_bad_utf8():
    with pytest.raises(InvalidRequest, match="JSON is not valid UTF-8"):
        jcs.parse_strict(b'"\xff"')


def test_case_variant_keys_are_distinct():
    assert jcs.parse_strict('{"run":1,"Run":2}') == {"run": 1, "Run": 2}


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), r"\$: nan is not a finite number"),
    ({"a": [1, float("-inf")]}, r"\$\.a\[1\]: -inf is not a finite number"),
    (2**53, r"\$: integer 9007199254740992 is outside"),
    (-(2**53), r"integer -9007199254740992 is outside"),
    ({1: "x"}, r"\$: object key 1 is a int, expected a string"),
    ({(1, 2): "x"}, r"object key \(1, 2\) is a tuple"),
    ({"a", "b"}, r"\$: a set is not a JSON value; pass str, int, float, bool, "
                 r"None, list or dict"),
    (b"bytes", r"a bytes is not a JSON value"),
    (object(), r"a object is not a JSON value"),
    ("\ud800x", r"\$: string holds a lone surrogate at position 0"),
])
def test_check_json_value_rejects(value, message):
    with pytest.raises(InvalidRequest, match=message):
        jcs.canonical(value)


@pytest.mark.parametrize("value", [2**53 - 1, -(2**53 - 1), 0, "", [], {}, None])
def test_check_json_value_accepts_edges(value):
    jcs.check_json_value(value)


def test_nesting_limit():
    value: list = []
    for _ in range(70):
        value = [value]
    with pytest.raises(InvalidRequest, match="nested deeper than 64 levels"):
        jcs.canonical(value)


# -- the fast path of check_json_value ------------------------------------------------


def _outcome(check, value):
    try:
        check(value)
    except InvalidRequest as err:
        return str(err)
    return None


scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.integers(min_value=-2**54, max_value=2**54),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["\ud800", b"bytes", 1 + 2j, OrderedDict(a=1)]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(
            st.one_of(st.text(max_size=4), st.integers(), st.just("\udfff")),
            children, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_fast_path_agrees_with_full_check(value):
    full = _outcome(lambda v: jcs._check_value(v, "$", 0), value)

    assert _outcome(jcs.check_json_value, value) == full


def test_fast_path_respects_depth_limit():
    nested: list = []
    for _ in range(70):
        nested = [nested]

    with pytest.raises(InvalidRequest, match="nested deeper than 64 levels"):
        jcs.check_json_value(nested)

