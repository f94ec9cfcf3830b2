"""The fast Merkle verifier against the literal RFC 9162 definitions in reference.py."""

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.verifier import reference
from tests.verifier.reference import ReferenceTree
from verifier import (
    MalformedInput,
    ProofMismatch,
    VerificationError,
    compute_root_from_inclusion,
    compute_roots_from_consistency,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

MAX_INCLUSION_SIZE = 300
MAX_CONSISTENCY_SIZE = 130
MAX_MUTATED_SIZE = 20

REFERENCE_VECTORS = (
    Path(__file__).parent.parent / "vectors" / "rfc6962" / "rfc6962-reference-tree.json"
)
TREE = ReferenceTree([n.to_bytes(4, "big") for n in range(MAX_INCLUSION_SIZE)])


def flip(digest: bytes, bit: int = 0) -> bytes:
    return bytes([digest[0] ^ (1 << bit)]) + digest[1:]


def test_reference_reproduces_rfc6962_vectors():
    vectors = json.loads(REFERENCE_VECTORS.read_text())
    tree = ReferenceTree([bytes.fromhex(item) for item in vectors["leaf_inputs_hex"]])

    for size, root in vectors["roots_by_tree_size"].items():
        assert tree.root(int(size)).hex() == root
    for case in vectors["inclusion_proofs"]:
        proof = tree.path(case["leaf_index"], case["tree_size"])
        assert [item.hex() for item in proof] == case["proof"]
    for case in vectors["consistency_proofs"]:
        proof = tree.proof(case["size1"], case["size2"])
        assert [item.hex() for item in proof] == case["proof"]


def test_inclusion_every_size_and_index():
    for size in range(1, MAX_INCLUSION_SIZE + 1):
        root = TREE.root(size)
        for index in range(size):
            proof = TREE.path(index, size)
            leaf = leaf_hash(TREE.entries[index])
            assert inclusion_proof_length(index, size) == len(proof), (index, size)
            verify_inclusion(leaf, index, size, proof, root)


def test_consistency_every_pair_of_sizes():
    for size2 in range(1, MAX_CONSISTENCY_SIZE + 1):
        root2 = TREE.root(size2)
        for size1 in range(1, size2 + 1):
            proof = TREE.proof(size1, size2)
            assert consistency_proof_length(size1, size2) == len(proof), (
                size1,
                size2,
            )
            verify_consistency(size1, size2, proof, TREE.root(size1), root2)


def test_inclusion_rejects_every_flipped_proof_hash():
    for size in range(2, MAX_MUTATED_SIZE + 1):
        root = TREE.root(size)
        for index in range(size):
            proof = TREE.path(index, size)
            leaf = leaf_hash(TREE.entries[index])
            for position in range(len(proof)):
                mutated = list(proof)
                mutated[position] = flip(mutated[position])
                try:
                    verify_inclusion(leaf, index, size, mutated, root)
                except ProofMismatch:
                    continue
                raise AssertionError(f"accepted: index {index}, size {size}")


def test_inclusion_rejects_every_other_index_and_size():
    # Each claim is checked against the real root for the claimed size, as a
    # signed checkpoint binds the size to its root.
    for size in range(1, MAX_MUTATED_SIZE + 1):
        for index in range(size):
            proof = TREE.path(index, size)
            leaf = leaf_hash(TREE.entries[index])
            for other_index in range(size + 2):
                for other_size in range(1, MAX_MUTATED_SIZE + 2):
                    if (other_index, other_size) == (index, size):
                        continue
                    root = TREE.root(other_size)
                    try:
                        verify_inclusion(leaf, other_index, other_size, proof, root)
                    except VerificationError:
                        continue
                    raise AssertionError(
                        f"proof for {index}/{size} accepted as "
                        f"{other_index}/{other_size}"
                    )


def test_consistency_rejects_every_flipped_hash():
    for size2 in range(2, MAX_MUTATED_SIZE + 1):
        for size1 in range(1, size2):
            proof = TREE.proof(size1, size2)
            root1, root2 = TREE.root(size1), TREE.root(size2)
            candidates = [(proof[:p] + [flip(proof[p])] + proof[p + 1 :], root1, root2)
                          for p in range(len(proof))]
            candidates += [(proof, flip(root1), root2), (proof, root1, flip(root2))]
            for mutated, first, second in candidates:
                try:
                    verify_consistency(size1, size2, mutated, first, second)
                except ProofMismatch:
                    continue
                raise AssertionError(f"accepted: {size1} -> {size2}")


def test_consistency_rejects_every_other_pair_of_sizes():
    # Each claim is checked against the real roots for the claimed sizes.
    # Equal sizes with an empty proof are true claims for any size.
    for size2 in range(1, MAX_MUTATED_SIZE + 1):
        for size1 in range(1, size2 + 1):
            proof = TREE.proof(size1, size2)
            for other1 in range(MAX_MUTATED_SIZE + 2):
                for other2 in range(MAX_MUTATED_SIZE + 2):
                    if (other1, other2) == (size1, size2):
                        continue
                    if other1 == other2 and not proof:
                        continue
                    root1, root2 = TREE.root(other1), TREE.root(other2)
                    try:
                        verify_consistency(other1, other2, proof, root1, root2)
                    except VerificationError:
                        continue
                    raise AssertionError(
                        f"proof for {size1} -> {size2} accepted as {other1} -> {other2}"
                    )


def hashes(count: int, seed: int) -> list[bytes]:
    return [
        hashlib.sha256(f"{seed}/{n}".encode()).digest() for n in range(count)
    ]


@st.composite
def index_and_size(draw):
    size = draw(st.integers(min_value=1, max_value=2**63 - 1))
    index = draw(st.integers(min_value=0, max_value=size - 1))
    return index, size


@st.composite
def two_sizes(draw):
    size2 = draw(st.integers(min_value=1, max_value=2**63 - 1))
    size1 = draw(st.integers(min_value=1, max_value=size2))
    return size1, size2


@settings(max_examples=300, deadline=None)
@given(index_and_size(), st.integers(min_value=0, max_value=2**32))
def test_inclusion_large_trees_match_reference(position, seed):
    index, size = position
    length = reference.path_length(index, size)
    proof = hashes(length, seed)
    leaf = hashlib.sha256(f"leaf {seed}".encode()).digest()

    assert inclusion_proof_length(index, size) == length
    expected = reference.root_from_path(leaf, index, size, proof)
    assert compute_root_from_inclusion(leaf, index, size, proof) == expected
    verify_inclusion(leaf, index, size, proof, expected)


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.integers(min_value=0, max_value=2**32))
def test_consistency_large_trees_match_reference(sizes, seed):
    size1, size2 = sizes
    length = reference.proof_length(size1, size2)
    proof = hashes(length, seed)
    root1 = hashlib.sha256(f"root {seed}".encode()).digest()

    assert consistency_proof_length(size1, size2) == length
    expected = reference.roots_from_proof(size1, size2, proof, root1)
    assert compute_roots_from_consistency(size1, size2, proof, root1) == expected


@settings(max_examples=100, deadline=None)
@given(index_and_size(), st.integers(min_value=-3, max_value=3).filter(bool))
def test_inclusion_large_trees_reject_wrong_length(position, change):
    index, size = position
    length = reference.path_length(index, size) + change
    assume(length >= 0)
    leaf = hashlib.sha256(b"leaf").digest()

    with pytest.raises(MalformedInput, match=f"expected {length - change} hashes"):
        compute_root_from_inclusion(leaf, index, size, hashes(length, 1))


@settings(max_examples=100, deadline=None)
@given(two_sizes(), st.integers(min_value=-3, max_value=3).filter(bool))
def test_consistency_large_trees_reject_wrong_length(sizes, change):
    size1, size2 = sizes
    length = reference.proof_length(size1, size2) + change
    assume(length >= 0)
    root1 = hashlib.sha256(b"root").digest()

    with pytest.raises(MalformedInput, match=f"expected {length - change} hashes"):
        compute_roots_from_consistency(size1, size2, hashes(length, 1), root1)
