"""Public Merkle proof vectors: transparency-dev/merkle testdata and RFC 6962 tree."""

import base64
import json
from pathlib import Path

import pytest

from verifier import (
    EMPTY_ROOT,
    MalformedInput,
    VerificationError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent.parent / "vectors"
TESTDATA = VECTORS / "transparency-dev-merkle" / "testdata"
REFERENCE_TREE = json.loads(
    (VECTORS / "rfc6962" / "rfc6962-reference-tree.json").read_text()
)

# Cases where the verifier deliberately differs from the vector, with the reason.
DIFFERENT_ON_PURPOSE = {
    # Expects success for equal sizes with 12-byte "roots"; every hash here
    # must be exactly 32 bytes, so the verifier rejects it.
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
}


def vector_files(kind: str) -> list[Path]:
    return sorted((TESTDATA / kind).rglob("*.json"))


def vector_id(path: Path) -> str:
    return str(path.relative_to(TESTDATA))


def decode(text: str) -> bytes:
    return base64.b64decode(text)


def test_vector_counts():
    assert len(vector_files("inclusion")) == 98
    assert len(vector_files("consistency")) == 98


@pytest.mark.parametrize("path", vector_files("inclusion"), ids=vector_id)
def test_inclusion_vector(path):
    case = json.loads(path.read_text())
    proof = [decode(item) for item in case["proof"] or []]
    arguments = (
        decode(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        proof,
        decode(case["root"]),
    )

    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*arguments)
    else:
        verify_inclusion(*arguments)


@pytest.mark.parametrize("path", vector_files("consistency"), ids=vector_id)
def test_consistency_vector(path):
    case = json.loads(path.read_text())
    proof = [decode(item) for item in case["proof"] or []]
    arguments = (
        case["size1"],
        case["size2"],
        proof,
        decode(case["root1"]),
        decode(case["root2"]),
    )

    if case["wantErr"] or vector_id(path) in DIFFERENT_ON_PURPOSE:
        with pytest.raises(VerificationError):
            verify_consistency(*arguments)
    else:
        verify_consistency(*arguments)


def test_twelve_byte_roots_rejected_by_length():
    name = "sizes-are-equal-one-and-proof-is-empty.json"
    path = TESTDATA / "consistency" / "additional" / name
    case = json.loads(path.read_text())

    with pytest.raises(MalformedInput, match="first root: expected a 32-byte"):
        verify_consistency(1, 1, [], decode(case["root1"]), decode(case["root2"]))


def test_reference_tree_leaf_hashes():
    inputs = [bytes.fromhex(item) for item in REFERENCE_TREE["leaf_inputs_hex"]]
    hashes = [leaf_hash(entry).hex() for entry in inputs]
    assert hashes == REFERENCE_TREE["leaf_hashes"]


def test_reference_tree_known_answers():
    answers = REFERENCE_TREE["known_answers"]
    empty_root = answers["empty_tree_root (SHA256 of empty string)"]
    empty_leaf = answers["leaf_hash of empty leaf data (SHA256(0x00))"]
    ascii_leaf = answers["leaf_hash of ascii 'L123456'"]
    ascii_node = answers["node_hash of ascii 'N123' || 'N456' (SHA256(0x01||l||r))"]

    assert EMPTY_ROOT.hex() == empty_root
    assert leaf_hash(b"").hex() == empty_leaf
    assert leaf_hash(b"L123456").hex() == ascii_leaf
    assert node_hash(b"N123", b"N456").hex() == ascii_node


def test_reference_tree_roots():
    leaves = [bytes.fromhex(item) for item in REFERENCE_TREE["leaf_hashes"]]
    for size, root in REFERENCE_TREE["roots_by_tree_size"].items():
        assert fold_root(leaves[: int(size)]).hex() == root, size


def fold_root(leaves: list[bytes]) -> bytes:
    # Level by level, carrying an odd last node up unchanged (RFC 9162 split).
    if not leaves:
        return EMPTY_ROOT
    level = leaves
    while len(level) > 1:
        paired = [node_hash(a, b) for a, b in zip(level[::2], level[1::2])]
        level = paired + level[len(paired) * 2 :]
    return level[0]


def test_reference_tree_proof_counts():
    assert len(REFERENCE_TREE["inclusion_proofs"]) == 36
    assert len(REFERENCE_TREE["consistency_proofs"]) == 36


@pytest.mark.parametrize(
    "case",
    REFERENCE_TREE["inclusion_proofs"],
    ids=lambda case: f"index{case['leaf_index']}-size{case['tree_size']}",
)
def test_reference_tree_inclusion(case):
    verify_inclusion(
        bytes.fromhex(case["leaf_hash"]),
        case["leaf_index"],
        case["tree_size"],
        [bytes.fromhex(item) for item in case["proof"]],
        bytes.fromhex(case["root"]),
    )


@pytest.mark.parametrize(
    "case",
    REFERENCE_TREE["consistency_proofs"],
    ids=lambda case: f"size{case['size1']}-to-{case['size2']}",
)
def test_reference_tree_consistency(case):
    verify_consistency(
        case["size1"],
        case["size2"],
        [bytes.fromhex(item) for item in case["proof"]],
        bytes.fromhex(case["root1"]),
        bytes.fromhex(case["root2"]),
    )
