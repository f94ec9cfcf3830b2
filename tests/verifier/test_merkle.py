"""Merkle hashing, preconditions, named proof mutations and proof text."""

import base64
import hashlib

import pytest

from tests.verifier.reference import ReferenceTree
from verifier import (
    EMPTY_ROOT,
    MalformedInput,
    ProofMismatch,
    compute_root_from_inclusion,
    compute_roots_from_consistency,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    parse_proof_text,
    verify_consistency,
    verify_inclusion,
)

TREE = ReferenceTree([f"entry {n}".encode() for n in range(16)])
ZERO = bytes(32)


def leaf(index: int) -> bytes:
    return leaf_hash(TREE.entries[index])


def flip(digest: bytes) -> bytes:
    return digest[:-1] + bytes([digest[-1] ^ 1])


def test_leaf_hash_prefixes_zero_byte():
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()


def test_node_hash_prefixes_one_byte():
    assert node_hash(b"L", b"R") == hashlib.sha256(b"\x01LR").digest()


def test_empty_root_is_sha256_of_nothing():
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert EMPTY_ROOT.hex() == expected


def test_leaf_hash_rejects_str():
    with pytest.raises(MalformedInput, match="leaf entry: expected bytes, got str"):
        leaf_hash("abc")


# Inclusion: one named case per mutation of a valid proof for index 5 of 11.

INDEX, SIZE = 5, 11
PROOF = TREE.path(INDEX, SIZE)
ROOT = TREE.root(SIZE)


def test_inclusion_valid_proof_passes():
    verify_inclusion(leaf(INDEX), INDEX, SIZE, PROOF, ROOT)


def test_inclusion_index_plus_one_fails():
    with pytest.raises(ProofMismatch, match="index 6 in a tree of size 11"):
        verify_inclusion(leaf(INDEX), INDEX + 1, SIZE, PROOF, ROOT)


def test_inclusion_index_minus_one_fails():
    with pytest.raises(ProofMismatch, match="index 4 in a tree of size 11"):
        verify_inclusion(leaf(INDEX), INDEX - 1, SIZE, PROOF, ROOT)


def test_inclusion_extra_proof_hash_fails():
    with pytest.raises(MalformedInput, match="expected 4 hashes, got 5"):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, PROOF + [ZERO], ROOT)


def test_inclusion_truncated_proof_fails():
    with pytest.raises(MalformedInput, match="expected 4 hashes, got 3"):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, PROOF[:-1], ROOT)


def test_inclusion_reordered_proof_fails():
    reordered = [PROOF[1], PROOF[0], *PROOF[2:]]
    with pytest.raises(ProofMismatch, match="expected root"):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, reordered, ROOT)


def test_inclusion_flipped_proof_byte_fails():
    mutated = [PROOF[0], flip(PROOF[1]), *PROOF[2:]]
    with pytest.raises(ProofMismatch, match="expected root"):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, mutated, ROOT)


def test_inclusion_wrong_leaf_fails():
    with pytest.raises(ProofMismatch, match="expected root"):
        verify_inclusion(leaf(INDEX + 1), INDEX, SIZE, PROOF, ROOT)


def test_inclusion_wrong_root_names_both_roots():
    computed = base64.b64encode(ROOT).decode()
    wrong = base64.b64encode(flip(ROOT)).decode()
    message = f"expected root {wrong}, computed {computed}"

    with pytest.raises(ProofMismatch, match=message.replace("+", r"\+")):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, PROOF, flip(ROOT))


def test_inclusion_index_equal_to_size_fails():
    with pytest.raises(
        MalformedInput,
        match="less than the tree size 11, got index 11",
    ):
        verify_inclusion(leaf(INDEX), SIZE, SIZE, PROOF, ROOT)


def test_inclusion_size_zero_fails():
    with pytest.raises(MalformedInput, match="less than the tree size 0, got index 0"):
        verify_inclusion(leaf(0), 0, 0, [], EMPTY_ROOT)


def test_inclusion_negative_index_fails():
    with pytest.raises(
        MalformedInput,
        match=r"index: expected an integer in \[0, 2\^64\), got -1",
    ):
        verify_inclusion(leaf(0), -1, SIZE, PROOF, ROOT)


def test_inclusion_bool_index_fails():
    with pytest.raises(MalformedInput, match="index: expected an integer, got bool"):
        verify_inclusion(leaf(1), True, SIZE, PROOF, ROOT)


def test_inclusion_short_proof_hash_fails():
    mutated = [PROOF[0][:31], *PROOF[1:]]
    with pytest.raises(
        MalformedInput,
        match="inclusion proof hash 0: expected a 32-byte",
    ):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, mutated, ROOT)


def test_inclusion_long_leaf_hash_fails():
    with pytest.raises(
        MalformedInput,
        match="leaf hash: expected a 32-byte SHA-256 hash, got 33",
    ):
        verify_inclusion(leaf(INDEX) + b"\x00", INDEX, SIZE, PROOF, ROOT)


def test_inclusion_empty_root_fails():
    with pytest.raises(
        MalformedInput,
        match="root: expected a 32-byte SHA-256 hash, got 0",
    ):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, PROOF, b"")


def test_inclusion_proof_as_bytes_fails():
    with pytest.raises(
        MalformedInput,
        match="expected a sequence of hashes, got bytes",
    ):
        verify_inclusion(leaf(INDEX), INDEX, SIZE, b"".join(PROOF), ROOT)


def test_inclusion_single_leaf_tree_has_empty_proof():
    assert compute_root_from_inclusion(leaf(0), 0, 1, []) == leaf(0)


def test_inclusion_proof_length_examples():
    assert inclusion_proof_length(0, 1) == 0
    assert inclusion_proof_length(0, 8) == 3
    assert inclusion_proof_length(6, 7) == 2
    assert inclusion_proof_length(2**63 - 1, 2**63) == 63


# Consistency: one named case per mutation of a valid proof from 6 to 13.

SIZE1, SIZE2 = 6, 13
CONSISTENCY = TREE.proof(SIZE1, SIZE2)
ROOT1, ROOT2 = TREE.root(SIZE1), TREE.root(SIZE2)


def test_consistency_valid_proof_passes():
    verify_consistency(SIZE1, SIZE2, CONSISTENCY, ROOT1, ROOT2)


def test_consistency_power_of_two_first_size_passes():
    proof = TREE.proof(8, 13)
    assert len(proof) == 1
    verify_consistency(8, 13, proof, TREE.root(8), ROOT2)


def test_consistency_equal_sizes_need_empty_proof():
    verify_consistency(SIZE1, SIZE1, [], ROOT1, ROOT1)
    with pytest.raises(MalformedInput, match="sizes 6 -> 6: expected 0 hashes, got 1"):
        verify_consistency(SIZE1, SIZE1, [ROOT1], ROOT1, ROOT1)


def test_consistency_equal_sizes_different_roots_fail():
    with pytest.raises(ProofMismatch, match="sizes 6 -> 6: expected second root"):
        verify_consistency(SIZE1, SIZE1, [], ROOT1, ROOT2)


def test_consistency_first_size_zero_fails():
    with pytest.raises(
        MalformedInput,
        match="sizes 0 -> 13: the first size must be at least 1",
    ):
        verify_consistency(0, SIZE2, [], EMPTY_ROOT, ROOT2)


def test_consistency_zero_to_zero_fails():
    with pytest.raises(
        MalformedInput,
        match="sizes 0 -> 0: the first size must be at least 1",
    ):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)


def test_consistency_first_size_above_second_fails():
    with pytest.raises(
        MalformedInput,
        match="sizes 13 -> 6: the first size must not exceed",
    ):
        verify_consistency(SIZE2, SIZE1, CONSISTENCY, ROOT2, ROOT1)


def test_consistency_extra_proof_hash_fails():
    with pytest.raises(MalformedInput, match="expected 4 hashes, got 5"):
        verify_consistency(SIZE1, SIZE2, CONSISTENCY + [ZERO], ROOT1, ROOT2)


def test_consistency_truncated_proof_fails():
    with pytest.raises(MalformedInput, match="expected 4 hashes, got 3"):
        verify_consistency(SIZE1, SIZE2, CONSISTENCY[:-1], ROOT1, ROOT2)


def test_consistency_flipped_proof_byte_fails():
    mutated = [flip(CONSISTENCY[0]), *CONSISTENCY[1:]]
    with pytest.raises(ProofMismatch, match="expected first root"):
        verify_consistency(SIZE1, SIZE2, mutated, ROOT1, ROOT2)


def test_consistency_swapped_roots_fail():
    with pytest.raises(ProofMismatch, match="expected first root"):
        verify_consistency(SIZE1, SIZE2, CONSISTENCY, ROOT2, ROOT1)


def test_consistency_wrong_second_root_fails():
    with pytest.raises(ProofMismatch, match="expected second root"):
        verify_consistency(SIZE1, SIZE2, CONSISTENCY, ROOT1, flip(ROOT2))


def test_consistency_second_size_plus_one_fails():
    root14 = TREE.root(SIZE2 + 1)
    with pytest.raises(ProofMismatch, match="sizes 6 -> 14: expected second root"):
        verify_consistency(SIZE1, SIZE2 + 1, CONSISTENCY, ROOT1, root14)


def test_consistency_computes_both_roots():
    first, second = compute_roots_from_consistency(SIZE1, SIZE2, CONSISTENCY, ROOT1)
    assert first == ROOT1
    assert second == ROOT2


def test_consistency_proof_length_examples():
    assert consistency_proof_length(1, 1) == 0
    assert consistency_proof_length(3, 7) == 4
    assert consistency_proof_length(4, 8) == 1
    assert consistency_proof_length(1, 2**63) == 63


# Proof text (one base64 hash per line).

SPEC_EXAMPLE = (
    "ApjRIpBtz8EIkstTpzmS/FufST6kybrbJ7eRtBJ6f+c=\n"
    "B1Bqhf2d0vEg62lPhgEeW7RmLlxBWmKRcDPUqWJEh+c=\n"
    "+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=\n"
    "g327FS6bB5AQcX6E6GXaTrwPoZioBtWdMb8VrM7yLQ4=\n"
)
SPEC_ROOT3 = "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
SPEC_ROOT7 = "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"


def test_proof_text_spec_example_verifies():
    proof = parse_proof_text(SPEC_EXAMPLE)
    root3, root7 = bytes.fromhex(SPEC_ROOT3), bytes.fromhex(SPEC_ROOT7)
    verify_consistency(3, 7, proof, root3, root7)


def test_proof_text_empty_is_empty_proof():
    assert parse_proof_text(b"") == []


def test_proof_text_missing_final_newline_fails():
    with pytest.raises(
        MalformedInput,
        match="proof text: expected the last line to end",
    ):
        parse_proof_text(SPEC_EXAMPLE[:-1])


def test_proof_text_blank_line_fails():
    with pytest.raises(MalformedInput, match="proof line 2: expected a 32-byte"):
        parse_proof_text(SPEC_EXAMPLE.replace("\nB1B", "\n\nB1B"))


def test_proof_text_crlf_fails():
    with pytest.raises(
        MalformedInput,
        match="proof line 1: expected standard padded base64",
    ):
        parse_proof_text(SPEC_EXAMPLE.replace("\n", "\r\n"))


def test_proof_text_non_canonical_base64_fails():
    with pytest.raises(
        MalformedInput,
        match="proof line 1: expected the canonical base64",
    ):
        parse_proof_text(SPEC_EXAMPLE.replace("f+c=", "f+d="))
