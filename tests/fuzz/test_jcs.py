"""The strict JSON parsers and RFC 8785 serializers of all three packages.

The verifier, the gate and the ledger each parse and canonicalize JSON on
their own. They must agree: on which bytes are a canonical entry, on which
texts are strict JSON and what they mean, and on the canonical bytes of
any value. Each raises only its own error type.
"""

from pathlib import Path

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from enforcement import jcs as gate_jcs
from enforcement.errors import GateError
from ledger.canonical import canonical_bytes, check_entry
from ledger.errors import LedgerError
from tests.fuzz.mutations import FAST, json_values, mutated
from verifier import VerificationError, canonicalize, is_canonical, parse_strict

DECISION = (
    Path(__file__).resolve().parents[2] / "specs" / "vectors" / "decision-example.json"
).read_bytes()
# Numbers, escapes and non-ASCII text, in canonical form.
TRICKY = rfc8785.dumps(
    {
        "big": 9007199254740991,
        "floats": [0.1, 1e21, 1e-7, -0.0, 5e-324, 1.7976931348623157e308],
        "text": "\u00e9\u20ac\U0001f600\u2028\t\"\\/\x1f",
        "\u00e9": {"": [None, True, False, {}]},
    }
)
entries = mutated(DECISION, max_edits=2) | mutated(TRICKY, max_edits=2)


def verifier_parse(data):
    try:
        return True, parse_strict(data)
    except VerificationError:
        return False, None


def gate_parse(data):
    try:
        return True, gate_jcs.parse_strict(data)
    except GateError:
        return False, None


def ledger_accepts(data):
    try:
        check_entry(data)
    except LedgerError:
        return False
    return True


@FAST
@given(entries)
def test_parsers_agree_on_canonical_entries(data):
    parsed, value = verifier_parse(data)
    canonical = parsed and isinstance(value, dict) and is_canonical(data)

    assert ledger_accepts(data) == canonical, data


@FAST
@given(entries | st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_strict_parsers_agree(data):
    ours_ok, ours = verifier_parse(data)
    theirs_ok, theirs = gate_parse(data)

    assert ours_ok == theirs_ok, data
    if ours_ok:
        assert canonicalize(ours) == gate_jcs.canonical(theirs)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 64 + "]" * 64,
        "[" * 65 + "]" * 65,
        '{"a":' * 64 + "1" + "}" * 64,
        '{"a":' * 65 + "1" + "}" * 65,
        '{"n":9007199254740991}',
        '{"n":9007199254740992}',
        '{"n":9007199254740993}',
        '{"n":-9007199254740993}',
        '{"n":100000000000000000000}',
        '{"n":42849981437514450}',
        '{"n":42849981437514448}',
        '{"n":1' + "0" * 309 + "}",
    ],
)
def test_parsers_agree_on_limits(text):
    """Nesting depth and integers beyond 2^53.

    The test above found the parsers disagreeing on both.
    """
    data = text.encode()
    accepted, value = verifier_parse(data)

    assert gate_parse(data)[0] == accepted
    entry = accepted and isinstance(value, dict) and is_canonical(data)
    assert ledger_accepts(data) == entry


@FAST
@given(json_values)
def test_serializers_agree(value):
    results = []
    for serialize, error in (
        (canonicalize, VerificationError),
        (gate_jcs.canonical, GateError),
        (canonical_bytes, LedgerError),
    ):
        try:
            results.append(serialize(value))
        except error:
            results.append(None)

    assert results[0] == results[1] == results[2], value
    if results[0] is not None:
        assert results[0] == rfc8785.dumps(value)
        assert parse_strict(results[0]) == value
