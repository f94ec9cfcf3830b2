"""Receipts, checkpoints and proofs from the ledger pass the independent verifier."""

import pytest

from .conftest import ORIGIN, record

verifier = pytest.importorskip(
    "verifier", reason="the verifier package is not importable"
)

try:
    from verifier import (
        ProofMismatch,
        verify_checkpoint,
        parse_proof_text,
        verify_consistency,
        verify_inclusion,
        verify_receipt,
    )
except ImportError as err:  # pragma: no cover - depends on the verifier's progress
    pytest.skip(f"verifier lacks a needed function: {err}", allow_module_level=True)

from ledger import format_proof_text


def test_every_receipt_verifies(open_log, signer):
    ledger = open_log()
    receipts = [ledger.append(record(0))]
    receipts += ledger.append_batch([(record(i), None) for i in range(1, 20)])
    key = str(signer.verifier_key)
    for receipt in receipts:
        verified = verify_receipt(receipt.text, [key], origin=ORIGIN)
        assert verified.index == receipt.index
        assert verified.entry == receipt.entry
        assert verified.checkpoint.size == int(receipt.checkpoint.split("\n")[1])


def test_key_record_receipt_verifies(open_log, signer):
    ledger = open_log()
    receipt = ledger.append(record(1), key="again")
    repeated = ledger.append(record(1), key="again")
    verified = verify_receipt(repeated.text, [str(signer.verifier_key)], origin=ORIGIN)
    assert verified.index == receipt.index == 1
    assert verified.record["n"] == 1


def test_tampered_receipt_rejected(open_log, signer):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(6)])
    receipt = ledger.append(record(99))
    lines = receipt.text.split("\n")
    lines[2] = "index 5"
    with pytest.raises(verifier.VerificationError):
        verify_receipt("\n".join(lines), [str(signer.verifier_key)], origin=ORIGIN)


def test_proofs_verify(open_log, signer):
    ledger = open_log()
    ledger.append_batch([(record(i), None) for i in range(30)])
    size = ledger.size
    checkpoint = verify_checkpoint(
        ledger.latest_checkpoint(), [str(signer.verifier_key)], origin=ORIGIN
    )
    assert checkpoint.size == size
    for first in range(1, size + 1):
        proof = parse_proof_text(
            format_proof_text(ledger.consistency_proof(first, size))
        )
        verify_consistency(first, size, proof, ledger.root(first), checkpoint.root)
    for index in range(size):
        leaf = ledger.entries(index, index + 1)[0]
        verify_inclusion(
            verifier.leaf_hash(leaf),
            index,
            size,
            ledger.inclusion_proof(index, size),
            ledger.root(size),
        )
    with pytest.raises(ProofMismatch):
        verify_consistency(
            3, size, ledger.consistency_proof(3, size), ledger.root(4), ledger.root()
        )
