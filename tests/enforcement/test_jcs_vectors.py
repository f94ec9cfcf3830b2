"""RFC 8785 reference data through the gate's canonical JSON.

The cyberphone inputs are parsed with ``parse_strict`` and canonicalized with
``canonical``; the output must equal the reference bytes. The crafted cases
of the project's vector file are checked the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enforcement import jcs
from enforcement.errors import InvalidRequest

VECTORS = Path(__file__).parent.parent / "vectors"
CYBERPHONE = VECTORS / "cyberphone-jcs" / "testdata"
RFC8785 = json.loads((VECTORS / "rfc8785" / "rfc8785-vectors.json").read_text("utf-8"))
NAMES = sorted(path.stem for path in (CYBERPHONE / "input").glob("*.json"))
# The gate keeps integers within +-(2^53 - 1) so that every reader agrees on
# them, which is stricter than RFC 8785 itself.
BEYOND_SAFE_INTEGERS = {"integer-beyond-2^53"}


def test_cyberphone_files_present():
    assert NAMES == ["arrays", "french", "structures", "unicode", "values", "weird"]


@pytest.mark.parametrize("name", NAMES)
def test_cyberphone_vector(name):
    source = (CYBERPHONE / "input" / f"{name}.json").read_bytes()
    expected = (CYBERPHONE / "output" / f"{name}.json").read_bytes()

    assert jcs.canonical(jcs.parse_strict(source)) == expected


@pytest.mark.parametrize("case", RFC8785["crafted_cases"], ids=lambda c: c["id"])
def test_crafted_case(case):
    if case["id"] in BEYOND_SAFE_INTEGERS:
        with pytest.raises(InvalidRequest, match="outside"):
            jcs.parse_strict(case["input_json"])
        return
    canonical = jcs.canonical(jcs.parse_strict(case["input_json"]))
    assert canonical.hex() == case["expected_canonical_utf8_hex"]


@pytest.mark.parametrize("case", RFC8785["error_cases"], ids=lambda c: c["id"])
def test_error_case(case):
    if case["expected"] != "error":
        value = jcs.parse_strict(case["input_json"])
        assert jcs.canonical(value)
        return
    with pytest.raises(InvalidRequest):
        jcs.parse_strict(case["input_json"])
