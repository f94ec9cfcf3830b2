"""A decision-sized receipt in a tree of a million entries.

The gate verifies such a receipt before every tool call, and
``bench/bench_audit.py`` measures its cost per receipt. These tests check
only that it verifies, once by ``verify_receipt`` and once by the steps
without the signature, which the benchmark times apart.
"""

import hashlib

import rfc8785

from tests.verifier import reference
from tests.verifier.signing import TestSigner, checkpoint_text, receipt_text, sign_note
from verifier import (
    canonicalize,
    leaf_hash,
    parse_checkpoint,
    parse_note,
    parse_receipt,
    parse_strict,
    verify_inclusion,
    verify_receipt,
)

ORIGIN = "agentgate.example/timing"
INDEX = 777_777
SIZE = 1_000_003


def decision_record() -> dict:
    digest = "ab" * 32
    return {
        "type": "decision",
        "version": 1,
        "id": "d-" + "0" * 32,
        "time": "2026-12-04T10:00:00.000000Z",
        "agent": "agent.example+01234567",
        "session": "s-" + "1" * 32,
        "tool": "send_money",
        "arguments": {f"argument_{n}": digest for n in range(4)},
        "delegation": {
            "chain": [digest, digest],
            "root": "principal.example+89abcdef+" + "A" * 44,
            "scope": {"capabilities": [{"tool": "send_money",
                                        "constraints": {"amount": {"max": 500}}}]},
        },
        "alignment": {"scorer": "default", "version": "1", "score": 0.125,
                      "label": "aligned", "thresholds": {"hold": 0.5, "deny": 0.8},
                      "reasons": ["the tool serves the declared purpose"]},
        "sequence": {"previous": digest, "before": digest, "after": digest,
                     "fired": [], "counters": {"calls": 3, "sends": 1}},
        "policy": digest,
        "verdict": "allow",
        "reasons": [],
    }


def large_tree_receipt() -> tuple[str, bytes, TestSigner]:
    signer = TestSigner.from_seed_text(ORIGIN, "timing tests: log")
    entry = rfc8785.dumps(decision_record())
    proof = [
        hashlib.sha256(bytes([n])).digest()
        for n in range(reference.path_length(INDEX, SIZE))
    ]
    root = reference.root_from_path(leaf_hash(entry), INDEX, SIZE, proof)
    checkpoint = sign_note(checkpoint_text(ORIGIN, SIZE, root), signer)
    return receipt_text(INDEX, entry, proof, checkpoint), entry, signer


def test_large_tree_receipt_verifies():
    text, entry, signer = large_tree_receipt()

    verified = verify_receipt(text, signer.verifier_key, ORIGIN)

    assert verified.index == INDEX
    assert verified.checkpoint.size == SIZE
    assert verified.entry == entry


def test_large_tree_receipt_steps_pass():
    text, entry, _ = large_tree_receipt()

    receipt = parse_receipt(text)
    checkpoint = parse_checkpoint(parse_note(receipt.checkpoint).text)
    verify_inclusion(
        leaf_hash(receipt.entry),
        receipt.index,
        checkpoint.size,
        receipt.proof,
        checkpoint.root,
    )

    assert len(receipt.proof) == reference.path_length(INDEX, SIZE)
    assert canonicalize(parse_strict(receipt.entry)) == entry
