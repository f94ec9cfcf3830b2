"""Entry checks against the RFC 8785 vectors (cyberphone data, RFC 8785 facts)."""

import json
from pathlib import Path

import pytest

from ledger import InvalidEntry
from ledger.canonical import canonical_bytes, check_entry

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CYBERPHONE = VECTORS / "cyberphone-jcs" / "testdata"
RFC8785 = json.loads((VECTORS / "rfc8785" / "rfc8785-vectors.json").read_text())
NAMES = sorted(path.name for path in (CYBERPHONE / "input").iterdir())


@pytest.mark.parametrize("name", NAMES)
def test_cyberphone_outputs(name):
    value = json.loads((CYBERPHONE / "input" / name).read_text(encoding="utf-8"))
    expected = (CYBERPHONE / "output" / name).read_bytes()
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize("name", NAMES)
def test_cyberphone_objects_accepted_inputs_rejected(name):
    expected = (CYBERPHONE / "output" / name).read_bytes()
    raw_input = (CYBERPHONE / "input" / name).read_bytes()
    if expected.startswith(b"{"):
        assert check_entry(expected) == json.loads(expected)
    else:
        with pytest.raises(InvalidEntry, match="must be a JSON object"):
            check_entry(expected)
    with pytest.raises(InvalidEntry):
        check_entry(raw_input)


def test_sorting_example():
    case = RFC8785["rfc8785_section_3_2_3_sorting_example"]
    expected = case["expected_canonical"].encode("utf-8")
    assert canonical_bytes(json.loads(case["input_json"])) == expected
    check_entry(expected)


# Records keep integers within +-(2^53 - 1) (specs/records.md), so the
# ledger rejects the case that a double would silently round.
REJECTED_CRAFTED = {"integer-beyond-2^53"}


@pytest.mark.parametrize(
    "case",
    [c for c in RFC8785["crafted_cases"] if c["id"] not in REJECTED_CRAFTED],
    ids=lambda c: c["id"],
)
def test_crafted_cases(case):
    expected = case["expected_canonical"].encode("utf-8")
    assert canonical_bytes(json.loads(case["input_json"])) == expected


def test_integer_beyond_double_precision_rejected():
    # The vector integer-beyond-2^53: its literal is no double's RFC 8785
    # form, so a reader would take it for 2^53. 2^53 itself is a double's
    # form and is stored as that double.
    with pytest.raises(InvalidEntry, match="beyond 2\\^53 - 1 and not the RFC 8785 form"):
        check_entry(b'{"n":9007199254740993}')
    assert check_entry(b'{"n":9007199254740992}') == {"n": 9007199254740992.0}
    assert check_entry(b'{"n":9007199254740991}') == {"n": 9007199254740991}


@pytest.mark.parametrize(
    "case",
    [c for c in RFC8785["error_cases"] if c["expected"] == "error"],
    ids=lambda c: c["id"],
)
def test_error_cases_rejected(case):
    with pytest.raises(InvalidEntry):
        check_entry(case["input_json"].encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "case",
    [c for c in RFC8785["error_cases"] if c["expected"] != "error"],
    ids=lambda c: c["id"],
)
def test_non_error_cases_accepted(case):
    expected = case["expected_canonical"].encode("utf-8")
    assert canonical_bytes(json.loads(case["input_json"])) == expected
    check_entry(expected)
