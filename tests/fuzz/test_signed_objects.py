"""Delegation certificates and signed approvals, mutated and random.

The gate (``enforcement``) and the auditor (``verifier``) parse certificates
on their own. A mutated certificate may pass only if both read it the same
way, and one whose signature still verifies must be the original. Signed
approvals are parsed by the gate alone; a mutated approval that still
passes the gate's check must be the original.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enforcement.approvals import SignedApproval, check_approval
from enforcement.delegation import Certificate as GateCertificate
from enforcement.errors import GateError
from tests.fuzz.mutations import FAST, json_values, mutated, mutated_json
from tests.fuzz.samples import (
    APPROVER,
    NOW,
    PRINCIPAL,
    approval,
    approval_request,
    certificate,
)
from verifier import VerificationError, parse_certificate, parse_strict, verify_chain

SIGNED = certificate().to_json()
SIGNED_BYTES = json.dumps(SIGNED).encode()
APPROVAL = approval().to_json()
APPROVAL_BYTES = json.dumps(APPROVAL).encode()


def parsed_by_gate(data: bytes):
    try:
        return GateCertificate.from_bytes(data)
    except GateError:
        return None


def parsed_by_verifier(document):
    try:
        return parse_certificate(document)
    except VerificationError:
        return None


def loads(data: bytes):
    try:
        return parse_strict(data)
    except VerificationError:
        return None


certificates = (
    mutated_json(SIGNED).map(lambda d: json.dumps(d).encode())
    | mutated(SIGNED_BYTES, max_edits=2)
    | json_values.map(lambda d: json.dumps(d).encode())
)


@FAST
@given(certificates)
def test_certificate_parsers_agree(data):
    ours = parsed_by_gate(data)
    raw = parsed_by_verifier(loads(data))
    if raw is not None:
        assert ours is not None, data
        assert ours.hash == raw.hash
    if ours is None:
        return

    # The gate keeps what it parsed in canonical JSON; the auditor reads that.
    # It has no IDNA tables, so it may reject a host name outside ASCII.
    try:
        theirs = parse_certificate(ours.to_json())
    except VerificationError as err:
        assert "is not ASCII; write it as A-labels" in str(err), data
        return
    assert theirs.hash == ours.hash
    if theirs.signature_valid():
        assert ours.hash == certificate().hash


@FAST
@given(certificates)
def test_mutated_certificate_chain_only_unchanged(data):
    document = loads(data)
    parsed = parsed_by_verifier(document)
    if parsed is None:
        return
    try:
        verify_chain([parsed], [PRINCIPAL.verifier_key])
    except VerificationError:
        return
    assert parsed.hash == certificate().hash


approvals = (
    mutated_json(APPROVAL).map(lambda d: json.dumps(d).encode())
    | mutated(APPROVAL_BYTES, max_edits=2)
    | st.binary(max_size=200)
)


@FAST
@given(approvals)
def test_mutated_approval_counts_only_unchanged(data):
    try:
        signed = SignedApproval.from_bytes(data)
        check_approval(signed, approval_request(), [APPROVER.verifier_key], NOW)
    except GateError:
        return
    assert signed.body == APPROVAL["approval"]
    assert signed.signature == approval().signature


def test_max_depth_above_fifteen_rejected_by_both():
    # Found by fuzzing: the verifier took max_depth 16, which the gate
    # rejects (a chain has at most 16 links).
    document = json.loads(SIGNED_BYTES)
    document["certificate"]["max_depth"] = 16
    data = json.dumps(document).encode()

    assert parsed_by_gate(data) is None
    assert parsed_by_verifier(loads(data)) is None


def test_command_entry_with_bang_rejected_by_both():
    # Found by atheris: the verifier took the command entry 'git!status',
    # which the gate rejects ('!' is history expansion).
    data = SIGNED_BYTES.replace(b'"git status"', b'"git!status"')
    assert data != SIGNED_BYTES

    assert parsed_by_gate(data) is None
    assert parsed_by_verifier(loads(data)) is None


def respelled(encoded: str) -> str:
    """Return ``encoded`` with the unused low bits of its last character set."""
    stripped = encoded.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    unused = {1: 0b11, 2: 0b1111}[len(encoded) - len(stripped)]
    last = alphabet[alphabet.index(stripped[-1]) | unused]
    return stripped[:-1] + last + encoded[len(stripped):]


def test_respelled_certificate_signature_rejected_by_both():
    # Found by atheris: the gate decoded a signature whose last base64
    # character had its unused bits set. The bytes and so the signature are
    # the same, but the certificate's hash is not, and the gate checks
    # revocations by certificate hash.
    document = json.loads(SIGNED_BYTES)
    document["signature"] = respelled(document["signature"])
    data = json.dumps(document).encode()

    assert parsed_by_gate(data) is None
    assert parsed_by_verifier(loads(data)) is None


def test_respelled_approval_signature_rejected():
    document = json.loads(APPROVAL_BYTES)
    document["signature"] = respelled(document["signature"])

    with pytest.raises(GateError, match="not in canonical base64"):
        SignedApproval.from_bytes(json.dumps(document).encode())

