"""StoredTree against published RFC 6962/9162 vectors over raw leaf inputs.

The eight-leaf reference tree (tests/vectors/rfc6962) holds raw leaf inputs
that are not JSON records, so these tests drive ``StoredTree`` directly
instead of a ``Ledger``.
"""

import base64
import json
from pathlib import Path

import pytest

from ledger.proofs import consistency_proof
from ledger.storage import Store
from ledger.tree import EMPTY_ROOT, StoredTree, leaf_hash

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
REFERENCE = json.loads(
    (VECTORS / "rfc6962" / "rfc6962-reference-tree.json").read_text()
)
TRANSPARENCY_DEV = VECTORS / "transparency-dev-merkle" / "testdata"


def _hex_list(values):
    return [bytes.fromhex(value) for value in values]


def _b64_list(values):
    return [base64.b64decode(value) for value in values or []]


@pytest.fixture(scope="module")
def reference_tree(tmp_path_factory):
    """A StoredTree holding the eight reference leaves, appended one by one."""
    store = Store.open(tmp_path_factory.mktemp("rfc6962") / "reference.db")
    head = store.create_head("reference", EMPTY_ROOT)
    tree = StoredTree(store, head)
    for leaf in REFERENCE["leaf_inputs_hex"]:
        tree.append_entry(bytes.fromhex(leaf))
    yield tree
    store.close()


def test_leaf_hashes(reference_tree):
    expected = _hex_list(REFERENCE["leaf_hashes"])
    for index, leaf in enumerate(REFERENCE["leaf_inputs_hex"]):
        assert leaf_hash(bytes.fromhex(leaf)) == expected[index]
        assert reference_tree.get_leaf(index + 1) == expected[index]


def test_stored_node_hashes_by_level(reference_tree):
    levels = REFERENCE["node_hashes_by_level"]
    for level, hashes in enumerate(levels):
        for index, expected in enumerate(hashes):
            width = 1 << level
            assert reference_tree.range_hash(index * width, (index + 1) * width) == (
                bytes.fromhex(expected)
            ), f"level {level} node {index}"


@pytest.mark.parametrize("size", range(9))
def test_roots_by_tree_size(reference_tree, size):
    expected = bytes.fromhex(REFERENCE["roots_by_tree_size"][str(size)])
    assert reference_tree.root(size) == expected


@pytest.mark.parametrize(
    "vector",
    REFERENCE["inclusion_proofs"],
    ids=lambda v: f"index{v['leaf_index']}-size{v['tree_size']}",
)
def test_inclusion_proofs(reference_tree, vector):
    index, size = vector["leaf_index"], vector["tree_size"]
    assert reference_tree.inclusion_path(index, size) == _hex_list(vector["proof"])
    assert reference_tree.root(size) == bytes.fromhex(vector["root"])


@pytest.mark.parametrize(
    "vector",
    REFERENCE["inclusion_proofs"],
    ids=lambda v: f"index{v['leaf_index']}-size{v['tree_size']}",
)
def test_pymerkle_path_is_leaf_then_audit_path(reference_tree, vector):
    index, size = vector["leaf_index"], vector["tree_size"]
    path = reference_tree.prove_inclusion(index + 1, size).path
    assert path[0] == bytes.fromhex(vector["leaf_hash"])
    assert list(path[1:]) == _hex_list(vector["proof"])


@pytest.mark.parametrize(
    "vector",
    REFERENCE["consistency_proofs"],
    ids=lambda v: f"size{v['size1']}-to-{v['size2']}",
)
def test_consistency_proofs(reference_tree, vector):
    proof = consistency_proof(reference_tree, vector["size1"], vector["size2"])
    assert proof == _hex_list(vector["proof"])


@pytest.mark.parametrize("folder", ["0", "1", "2", "3", "4"])
def test_transparency_dev_inclusion_happy_paths(reference_tree, folder):
    vector = json.loads(
        (TRANSPARENCY_DEV / "inclusion" / folder / "happy-path.json").read_text()
    )
    index, size = vector["leafIdx"], vector["treeSize"]
    assert reference_tree.root(size) == base64.b64decode(vector["root"])
    assert reference_tree.get_leaf(index + 1) == base64.b64decode(vector["leafHash"])
    assert reference_tree.inclusion_path(index, size) == _b64_list(vector["proof"])


@pytest.mark.parametrize("folder", ["0", "1", "2", "3", "4"])
def test_transparency_dev_consistency_happy_paths(reference_tree, folder):
    path = TRANSPARENCY_DEV / "consistency" / folder / "happy-path.json"
    vector = json.loads(path.read_text())
    first, second = vector["size1"], vector["size2"]
    assert reference_tree.root(first) == base64.b64decode(vector["root1"])
    assert reference_tree.root(second) == base64.b64decode(vector["root2"])
    proof = consistency_proof(reference_tree, first, second)
    assert proof == _b64_list(vector["proof"])


def test_merkle_spec_example_proof(reference_tree):
    """The 3 -> 7 proof printed in specs/merkle.md is the ledger's proof."""
    proof = consistency_proof(reference_tree, 3, 7)
    assert [base64.b64encode(h).decode() for h in proof] == [
        "ApjRIpBtz8EIkstTpzmS/FufST6kybrbJ7eRtBJ6f+c=",
        "B1Bqhf2d0vEg62lPhgEeW7RmLlxBWmKRcDPUqWJEh+c=",
        "+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=",
        "g327FS6bB5AQcX6E6GXaTrwPoZioBtWdMb8VrM7yLQ4=",
    ]
    assert proof[0] == reference_tree.range_hash(2, 3)
    assert proof[1] == reference_tree.range_hash(3, 4)
    assert proof[2] == reference_tree.range_hash(0, 2)
    assert proof[3] == reference_tree.range_hash(4, 7)
    assert reference_tree.root(3).hex() == (
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
    )
    assert reference_tree.root(7).hex() == (
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"
    )
