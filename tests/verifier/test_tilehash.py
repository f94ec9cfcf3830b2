"""Roots and RFC 9162 proofs computed from tiles, against the literal RFC tree."""

import random

import pytest
import rfc8785

from tests.verifier.reference import ReferenceTree
from tests.verifier.tiles_writer import leaf_hash, write_tiles
from verifier.errors import MalformedInput
from verifier.merkle import EMPTY_ROOT, verify_consistency, verify_inclusion
from verifier.tilehash import CompactRange, TileHashReader, leaf_hashes
from verifier.tiles import TiledLog

ENTRIES = [rfc8785.dumps({"leaf": n}) for n in range(700)]
TREE = ReferenceTree(ENTRIES)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """The 700-leaf log written as tiles: full and partial level 0, level 1 tiles."""
    directory = tmp_path_factory.mktemp("tiles")
    write_tiles(directory, ENTRIES, "unused\n")
    return TiledLog(str(directory))


def test_compact_range_roots_every_size():
    compact = CompactRange()
    assert compact.root() == EMPTY_ROOT
    for size, entry in enumerate(ENTRIES[:300], start=1):
        compact.append(leaf_hash(entry))
        assert compact.root() == TREE.root(size), size


def test_compact_range_extend_from_stored_peaks():
    first = CompactRange()
    first.extend(leaf_hash(e) for e in ENTRIES[:77])
    resumed = CompactRange(first.size, first.peaks)
    resumed.extend(leaf_hash(e) for e in ENTRIES[77:700])
    assert resumed.root() == TREE.root(700)


def test_compact_range_rejects_wrong_peak_count():
    with pytest.raises(MalformedInput, match="expected 3 hashes of 32 bytes, got 1"):
        CompactRange(7, [b"\x00" * 32])


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257, 511, 512, 513, 700])
def test_root_from_tiles(tiled, size):
    assert TileHashReader(tiled, size, published=700).root() == TREE.root(size)


def test_leaf_hashes_from_offset(tiled):
    read = [
        h for _, tile in leaf_hashes(tiled, 600, start=250, published=700) for h in tile
    ]
    assert read == [leaf_hash(e) for e in ENTRIES[250:600]]


@pytest.mark.parametrize("size", [1, 2, 5, 8, 13, 256, 300, 513, 700])
def test_inclusion_proofs_every_index(tiled, size):
    reader = TileHashReader(tiled, size, published=700)
    for index in range(size):
        proof = reader.inclusion_proof(index)
        assert proof == TREE.path(index, size), (index, size)
        verify_inclusion(leaf_hash(ENTRIES[index]), index, size, proof, TREE.root(size))


@pytest.mark.parametrize("size", [1, 2, 5, 8, 13, 256, 300, 513, 700])
def test_consistency_proofs_every_first_size(tiled, size):
    reader = TileHashReader(tiled, size, published=700)
    for first in range(1, size + 1):
        proof = reader.consistency_proof(first)
        assert proof == TREE.proof(first, size), (first, size)
        verify_consistency(first, size, proof, TREE.root(first), TREE.root(size))


def test_random_large_proofs(tmp_path):
    count = 66_000
    entries = [n.to_bytes(4, "big") for n in range(count)]
    write_tiles(tmp_path, entries, "unused\n")
    tree = ReferenceTree(entries)
    reader = TileHashReader(TiledLog(str(tmp_path)), count)
    randomness = random.Random(9162)

    assert reader.root() == tree.root(count)
    for _ in range(5):
        first = randomness.randrange(1, count)
        assert reader.consistency_proof(first) == tree.proof(first, count)
        index = randomness.randrange(count)
        assert reader.inclusion_proof(index) == tree.path(index, count)


def test_proof_preconditions(tiled):
    reader = TileHashReader(tiled, 10, published=700)
    with pytest.raises(MalformedInput, match="less than the tree size 10, got 10"):
        reader.inclusion_proof(10)
    with pytest.raises(MalformedInput, match="sizes 0 -> 10: expected 0 < first"):
        reader.consistency_proof(0)
    with pytest.raises(MalformedInput, match="beyond the tree of size 10"):
        reader.subtree_hash(4, 0)
