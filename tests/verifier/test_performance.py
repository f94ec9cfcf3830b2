"""Time budget: the gate verifies a receipt before every tool call.

Everything but the Ed25519 verification must take well under 1 ms for a
decision-sized record in a tree of a million entries. The test takes the best
of several batches, which shows the cost of the code rather than the load of
the machine.
"""

import hashlib
import time

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
BUDGET_SECONDS = 0.001


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


def large_tree_receipt() -> tuple[str, TestSigner]:
    signer = TestSigner.from_seed_text(ORIGIN, "timing tests: log")
    entry = rfc8785.dumps(decision_record())
    index, size = 777_777, 1_000_003
    proof = [
        hashlib.sha256(bytes([n])).digest()
        for n in range(reference.path_length(index, size))
    ]
    root = reference.root_from_path(leaf_hash(entry), index, size, proof)
    checkpoint = sign_note(checkpoint_text(ORIGIN, size, root), signer)
    return receipt_text(index, entry, proof, checkpoint), signer


def best_time(function, batches: int = 10, repeats: int = 20) -> float:
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def test_receipt_checks_besides_ed25519_fit_budget():
    text, signer = large_tree_receipt()
    verified = verify_receipt(text, signer.verifier_key, ORIGIN)
    assert verified.checkpoint.size == 1_000_003

    def checks_besides_signature():
        receipt = parse_receipt(text)
        checkpoint = parse_checkpoint(parse_note(receipt.checkpoint).text)
        verify_inclusion(
            leaf_hash(receipt.entry),
            receipt.index,
            checkpoint.size,
            receipt.proof,
            checkpoint.root,
        )
        assert canonicalize(parse_strict(receipt.entry)) == receipt.entry

    seconds = best_time(checks_besides_signature)
    assert seconds < BUDGET_SECONDS, f"{seconds * 1e6:.0f} us per receipt"
