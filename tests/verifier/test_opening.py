"""Disclosed openings checked against sealed records."""

import hashlib
import json

import pytest
import rfc8785

from verifier import MalformedInput, ProofMismatch, parse_opening, verify_opening

SALT = bytes(range(32))
VALUE = {"iban": "GB29NWBK60161331926819"}
COMMITMENT = hashlib.sha256(SALT + rfc8785.dumps(VALUE)).hexdigest()
RECORD = {"type": "decision", "id": "d-" + "0" * 32,
          "arguments": {"recipient": COMMITMENT, "amount": "f" * 64}}


def opening_text(**changes) -> str:
    document = {"commitment": COMMITMENT, "record": RECORD["id"],
                "argument": "recipient", "value": VALUE, "salt": SALT.hex()}
    document.update(changes)
    return json.dumps(document)


def test_opening_matches_sealed_argument():
    location = verify_opening(parse_opening(opening_text()), RECORD)

    assert location == "arguments.recipient"


def test_changed_value_fails():
    opening = parse_opening(opening_text(value={"iban": "DE89370400440532013000"}))

    with pytest.raises(ProofMismatch, match="value and salt give"):
        verify_opening(opening, RECORD)


def test_other_record_fails():
    opening = parse_opening(opening_text(record="d-" + "1" * 32))

    with pytest.raises(ProofMismatch, match="but the receipt proves record"):
        verify_opening(opening, RECORD)


def test_argument_with_other_commitment_fails():
    opening = parse_opening(opening_text(argument="amount"))

    with pytest.raises(ProofMismatch, match="arguments.amount in record"):
        verify_opening(opening, RECORD)


def test_missing_argument_fails():
    opening = parse_opening(opening_text(argument="memo"))

    with pytest.raises(ProofMismatch, match="has no commitment named 'memo'"):
        verify_opening(opening, RECORD)


@pytest.mark.parametrize("changes, message", [
    ({"salt": "00"}, "salt must be 64 lowercase hex digits"),
    ({"commitment": COMMITMENT.upper()}, "commitment must be 64 lowercase hex"),
    ({"record": ""}, "record must be a non-empty string"),
    ({"extra": 1}, "expected an object with"),
])
def test_malformed_opening_rejected(changes, message):
    with pytest.raises(MalformedInput, match=message):
        parse_opening(opening_text(**changes))


def test_duplicate_member_rejected():
    text = opening_text()[:-1] + ', "salt": "' + "0" * 64 + '"}'

    with pytest.raises(MalformedInput, match="got .salt. twice"):
        parse_opening(text)
