"""RFC 8785 vectors: cyberphone reference data and the rfc8785 vector file.

Each expected output is also checked against the ``rfc8785`` package, an
independent implementation, wherever that package accepts the input.
"""

import json
import struct
from pathlib import Path

import pytest
import rfc8785

from verifier import (
    MalformedInput,
    canonicalize,
    format_number,
    is_canonical,
    parse_strict,
)

VECTORS = Path(__file__).parent.parent / "vectors"
CYBERPHONE = VECTORS / "cyberphone-jcs" / "testdata"
RFC8785 = json.loads((VECTORS / "rfc8785" / "rfc8785-vectors.json").read_text("utf-8"))
CYBERPHONE_NAMES = sorted(path.stem for path in (CYBERPHONE / "input").glob("*.json"))


def double(ieee754_hex: str) -> float:
    return struct.unpack(">d", bytes.fromhex(ieee754_hex))[0]


def by_id(items, key="id"):
    return [pytest.param(item, id=str(item[key])) for item in items]


def test_cyberphone_file_count():
    assert CYBERPHONE_NAMES == [
        "arrays", "french", "structures", "unicode", "values", "weird"
    ]


@pytest.mark.parametrize("name", CYBERPHONE_NAMES)
def test_cyberphone_output(name):
    source = (CYBERPHONE / "input" / f"{name}.json").read_bytes()
    expected = (CYBERPHONE / "output" / f"{name}.json").read_bytes()

    assert canonicalize(parse_strict(source)) == expected
    assert is_canonical(expected)


@pytest.mark.parametrize("name", CYBERPHONE_NAMES)
def test_cyberphone_outhex(name):
    source = (CYBERPHONE / "input" / f"{name}.json").read_bytes()
    expected = bytes.fromhex((CYBERPHONE / "outhex" / f"{name}.txt").read_text())

    assert canonicalize(parse_strict(source)) == expected


@pytest.mark.parametrize("name", CYBERPHONE_NAMES)
def test_cyberphone_output_matches_rfc8785_package(name):
    source = (CYBERPHONE / "input" / f"{name}.json").read_bytes()
    value = parse_strict(source)

    assert canonicalize(value) == rfc8785.dumps(value)


NUMBERS = [
    *RFC8785["rfc8785_appendix_b_numbers"],
    *RFC8785["cyberphone_readme_sample_lines"],
]


@pytest.mark.parametrize("row", by_id(NUMBERS, "ieee754_hex"))
def test_appendix_b_number(row):
    value = double(row["ieee754_hex"])

    if row.get("expected") == "error":
        with pytest.raises(MalformedInput, match="expected a finite number"):
            format_number(value)
        with pytest.raises(MalformedInput, match="expected a finite number"):
            canonicalize([value])
        return

    assert format_number(value) == row["json"]
    assert rfc8785.dumps(value).decode() == row["json"]
    assert float(row["json"]) == value


def test_section_3_2_2_sample_is_cyberphone_values():
    example = RFC8785["rfc8785_section_3_2_2_example"]
    source = (VECTORS / example["input_file"]).read_bytes()
    expected = bytes.fromhex((VECTORS / example["expected_utf8_hex_file"]).read_text())

    assert canonicalize(parse_strict(source)) == expected


def test_section_3_2_3_sorting_example():
    example = RFC8785["rfc8785_section_3_2_3_sorting_example"]
    output = canonicalize(parse_strict(example["input_json"]))

    assert output == example["expected_canonical"].encode("utf-8")
    assert output.hex() == example["expected_canonical_utf8_hex"]


@pytest.mark.parametrize("case", by_id(RFC8785["crafted_cases"]))
def test_crafted_case(case):
    if case["id"] == "integer-beyond-2^53":
        # The vector's advice for a signing layer: reject the literal.
        with pytest.raises(MalformedInput, match="not the RFC 8785 form"):
            parse_strict(case["input_json"])
        output = canonicalize([9007199254740992.0])
    else:
        output = canonicalize(parse_strict(case["input_json"]))

    assert output == case["expected_canonical"].encode("utf-8")
    assert output.hex() == case["expected_canonical_utf8_hex"]


@pytest.mark.parametrize(
    "case",
    by_id([c for c in RFC8785["crafted_cases"] if c["id"] != "integer-beyond-2^53"]),
)
def test_crafted_case_matches_rfc8785_package(case):
    value = json.loads(case["input_json"])
    assert rfc8785.dumps(value) == case["expected_canonical"].encode("utf-8")


def test_integer_beyond_2_53_is_refused_unless_canonical():
    # JSON numbers are doubles: the literal 9007199254740993 denotes
    # 9007199254740992, so a reader that rounds would sign another number.
    # The strict parser refuses it, as the rfc8785 package refuses the int;
    # 9007199254740992 is that double's own RFC 8785 form and reads as it.
    with pytest.raises(MalformedInput, match="not the RFC 8785 form"):
        parse_strict("[9007199254740993]")
    assert not is_canonical(b"[9007199254740993]")
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps([9007199254740993])

    value = parse_strict("[9007199254740992]")
    assert value == [9007199254740992.0]
    assert isinstance(value[0], float)
    assert is_canonical(b"[9007199254740992]")


ERROR_CASES = [c for c in RFC8785["error_cases"] if c["expected"] == "error"]
OK_CASES = [c for c in RFC8785["error_cases"] if c["expected"] != "error"]


@pytest.mark.parametrize("case", by_id(ERROR_CASES))
def test_error_case(case):
    with pytest.raises(MalformedInput):
        parse_strict(case["input_json"])
    assert not is_canonical(case["input_json"].encode("utf-8"))


@pytest.mark.parametrize("case", by_id(OK_CASES))
def test_error_file_case_that_is_valid(case):
    output = canonicalize(parse_strict(case["input_json"]))
    assert output == case["expected_canonical"].encode("utf-8")
