"""The worked examples in specs/vectors verify with the independent verifier."""

from pathlib import Path

import pytest

from verifier import (
    is_canonical,
    parse_proof_text,
    parse_verifier_key,
    verify_checkpoint,
    verify_consistency,
    verify_receipt,
)

SPEC_VECTORS = Path(__file__).parent.parent.parent / "specs" / "vectors"


def read(name: str) -> bytes:
    path = SPEC_VECTORS / name
    if not path.exists():
        pytest.skip(f"{path} is missing; run specs/vectors/generate.py to write it")
    return path.read_bytes()


def example_key() -> str:
    return read("example-log.pub").decode("utf-8").strip()


def test_example_key_parses():
    assert parse_verifier_key(example_key()).public_key


def test_checkpoint_example_verifies():
    checkpoint = verify_checkpoint(read("checkpoint-example.txt"), example_key())
    assert checkpoint.size > 0


def test_receipt_example_verifies():
    receipt = verify_receipt(read("receipt-example.tlog-proof"), example_key())
    assert receipt.record["type"] == "decision"


def test_receipt_example_carries_decision_example():
    receipt = verify_receipt(read("receipt-example.tlog-proof"), example_key())
    decision = read("decision-example.json")

    assert is_canonical(decision)
    assert receipt.entry == decision


def test_consistency_example_verifies():
    # The file contains the old checkpoint, the new checkpoint and the proof
    # text, separated by blank lines. Each checkpoint has one blank line inside.
    text = read("consistency-example.txt").decode("utf-8")
    old_text, old_signatures, new_text, new_signatures, proof_text = text.split("\n\n")
    key = example_key()

    old = verify_checkpoint(old_text + "\n\n" + old_signatures + "\n", key)
    new = verify_checkpoint(new_text + "\n\n" + new_signatures + "\n", key, old.origin)
    proof = parse_proof_text(proof_text)

    assert (old.size, new.size) == (3, 7)
    verify_consistency(old.size, new.size, proof, old.root, new.root)
