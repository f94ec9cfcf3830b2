"""Receipts and consistency proof text, mutated and random.

The receipts are tlog-proof files the ledger wrote. A mutated receipt that
still verifies must prove the same entry at the same index against the same
checkpoint; a mutated proof text that still parses must hold the same
hashes. Nothing may raise anything but ``VerificationError``.
"""

import base64

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.mutations import FAST, mutated
from tests.fuzz.samples import LOG_KEY, ORIGIN, sample_log
from verifier import (
    VerificationError,
    open_checkpoint,
    parse_proof_text,
    parse_receipt,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)

LOG = sample_log()
RECEIPTS = [receipt.encode() for receipt in LOG.receipts]
ORIGINALS = [verify_receipt(receipt, [LOG_KEY], ORIGIN) for receipt in RECEIPTS]
FIRST, _ = open_checkpoint(LOG.checkpoints[3], [LOG_KEY])
LAST, _ = open_checkpoint(LOG.checkpoints[11], [LOG_KEY])
PROOF = parse_proof_text(LOG.consistency_text)


@st.composite
def mutated_receipts(draw):
    position = draw(st.integers(min_value=0, max_value=len(RECEIPTS) - 1))
    return position, draw(mutated(RECEIPTS[position], max_edits=4))


@FAST
@given(mutated_receipts())
def test_mutated_receipt_verifies_only_unchanged(case):
    position, data = case
    try:
        verified = verify_receipt(data, [LOG_KEY], ORIGIN)
    except VerificationError:
        return
    original = ORIGINALS[position]
    assert verified.index == original.index
    assert verified.entry == original.entry
    assert verified.checkpoint == original.checkpoint


@FAST
@given(st.binary(max_size=500) | st.text(max_size=500))
def test_random_receipt_rejected_cleanly(data):
    for check in (parse_receipt, lambda d: verify_receipt(d, [LOG_KEY])):
        try:
            check(data)
        except VerificationError:
            pass


@FAST
@given(mutated(LOG.consistency_text.encode()))
def test_mutated_proof_text_parses_only_unchanged(data):
    try:
        proof = parse_proof_text(data)
    except VerificationError:
        return
    # One spelling per proof: the canonical text of the hashes it parsed to.
    spelled = "".join(base64.b64encode(digest).decode() + "\n" for digest in proof)
    assert spelled.encode() == data
    try:
        verify_consistency(FIRST.size, LAST.size, proof, FIRST.root, LAST.root)
    except VerificationError:
        return
    assert proof == PROOF


@FAST
@given(
    st.integers(min_value=-2, max_value=2**64),
    st.integers(min_value=-2, max_value=2**64),
    st.lists(st.binary(min_size=0, max_size=40), max_size=70),
    st.binary(max_size=40),
)
def test_proof_checks_reject_bad_arguments_cleanly(first, second, proof, root):
    for check in (
        lambda: verify_consistency(first, second, proof, root, LAST.root),
        lambda: verify_inclusion(root, first, second, proof, LAST.root),
    ):
        try:
            check()
        except VerificationError:
            pass
