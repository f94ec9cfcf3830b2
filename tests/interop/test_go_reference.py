"""Receipts checked by Go's reference note and tlog packages as well as ours.

The Go program in go/checkreceipt opens the checkpoint with
golang.org/x/mod/sumdb/note and checks inclusion with tlog.CheckRecord. It is
built from the Debian packages golang-go and golang-golang-x-mod-dev, in
GOPATH mode, so the test needs no network.
"""

import base64
import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
import rfc8785

from tests.interop.conftest import run_go
from tests.verifier.signing import TestLog, TestSigner
from verifier import ProofMismatch, UnknownKey, verify_receipt

# The test signer key published in the documentation of Go's note package.
GO_DOC_SIGNER_KEY = (
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
)
LEDGER_ORIGIN = "agentgate.example/interop"
LEDGER_SEED = hashlib.sha256(b"agentgate interop tests: " + LEDGER_ORIGIN.encode())
FIXED_NOW = datetime(2026, 12, 4, 10, 0, 0, tzinfo=timezone.utc)


def flip_proof_byte(receipt: str) -> str:
    lines = receipt.split("\n")
    digest = bytearray(base64.b64decode(lines[3]))
    digest[7] ^= 0x10
    lines[3] = base64.b64encode(bytes(digest)).decode()
    return "\n".join(lines)


@pytest.fixture(scope="module")
def ledger_receipts(tmp_path_factory) -> tuple[str, list[str]]:
    """Return the verifier key and receipts written by the project's ledger."""
    ledger_module = pytest.importorskip("ledger", reason="the ledger is not importable")
    signer = ledger_module.Signer.from_seed(LEDGER_ORIGIN, LEDGER_SEED.digest())
    path = tmp_path_factory.mktemp("ledger") / "interop.db"

    records = [
        rfc8785.dumps({"type": "decision", "version": 1, "n": n, "text": "\u20ac"})
        for n in range(11)
    ]
    with ledger_module.Ledger.open(path, signer, now=FIXED_NOW) as ledger:
        receipts = [ledger.append(records[0]).text]
        batch = ledger.append_batch([(entry, None) for entry in records[1:]])
        receipts += [receipt.text for receipt in batch]
    return str(signer.verifier_key), receipts


def test_go_accepts_ledger_receipts(checkreceipt, ledger_receipts, tmp_path):
    key, receipts = ledger_receipts
    assert len(receipts) == 11

    for receipt in receipts:
        ours = verify_receipt(receipt, [key], LEDGER_ORIGIN)
        result = run_go(checkreceipt, key, receipt, tmp_path)

        assert result.returncode == 0, result.stdout + result.stderr
        expected = (
            f'OK origin="{LEDGER_ORIGIN}" index={ours.index} '
            f"size={ours.checkpoint.size}\n"
        )
        assert result.stdout == expected


def test_go_rejects_flipped_ledger_proof(checkreceipt, ledger_receipts, tmp_path):
    key, receipts = ledger_receipts
    receipt = flip_proof_byte(receipts[5])

    result = run_go(checkreceipt, key, receipt, tmp_path)

    assert result.returncode == 1
    assert result.stdout == "FAIL inclusion proof: invalid transparency proof\n"
    with pytest.raises(ProofMismatch, match="expected root"):
        verify_receipt(receipt, [key], LEDGER_ORIGIN)


def test_go_accepts_go_doc_key_receipt(checkreceipt, tmp_path):
    signer = TestSigner.from_signer_key(GO_DOC_SIGNER_KEY)
    log = TestLog(signer, "example.com/interop", 13)

    for index in (0, 6, 12):
        receipt = log.receipt(index)
        result = run_go(checkreceipt, signer.verifier_key, receipt, tmp_path)

        assert result.returncode == 0, result.stdout + result.stderr
        expected = f'OK origin="example.com/interop" index={index} size=13\n'
        assert result.stdout == expected
        assert verify_receipt(receipt, signer.verifier_key).index == index


def test_go_rejects_flipped_assembled_proof(checkreceipt, tmp_path):
    signer = TestSigner.from_signer_key(GO_DOC_SIGNER_KEY)
    receipt = flip_proof_byte(TestLog(signer, "example.com/interop", 13).receipt(6))

    result = run_go(checkreceipt, signer.verifier_key, receipt, tmp_path)

    assert result.returncode == 1
    assert result.stdout == "FAIL inclusion proof: invalid transparency proof\n"
    with pytest.raises(ProofMismatch):
        verify_receipt(receipt, signer.verifier_key)


def test_go_rejects_other_signing_key(checkreceipt, tmp_path):
    signer = TestSigner.from_signer_key(GO_DOC_SIGNER_KEY)
    other = TestSigner.from_seed_text("PeterNeumann", "interop tests: impostor")
    receipt = TestLog(other, "example.com/interop", 4).receipt(1)

    result = run_go(checkreceipt, signer.verifier_key, receipt, tmp_path)

    assert result.returncode == 1
    assert result.stdout.startswith("FAIL opening checkpoint note:")
    with pytest.raises(UnknownKey):
        verify_receipt(receipt, signer.verifier_key)
