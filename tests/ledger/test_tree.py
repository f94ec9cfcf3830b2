"""StoredTree: stored subtrees, the frontier, the cache and damage detection."""

import sqlite3

import pytest

from ledger import InvalidRequest, StorageError
from ledger.storage import Store
from ledger.tree import EMPTY_ROOT, StoredTree, leaf_hash, subtrees

from .rfc9162 import ReferenceTree


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "tree.db")
    store.create_head("tree.test/log", EMPTY_ROOT)
    yield store
    store.close()


def _leaves(count):
    return [f"leaf {i}".encode() for i in range(count)]


def test_subtrees_split_aligned_ranges():
    assert subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert subtrees(4, 7) == [(1, 2), (0, 6)]
    assert subtrees(8, 16) == [(3, 1)]
    assert subtrees(5, 5) == []


def test_subtrees_rejects_unaligned_range():
    with pytest.raises(
        ValueError, match=r"leaf range \[1, 5\) is not split into aligned"
    ):
        subtrees(1, 5)


def test_empty_tree_root(store):
    tree = StoredTree.open(store)
    assert tree.root() == EMPTY_ROOT
    assert tree.head.size == 0


def test_append_entry_counts_from_one(store):
    tree = StoredTree.open(store)
    assert tree.append_entry(b"a") == 1
    assert tree.append_entry(b"b") == 2
    assert tree.get_leaf(2) == leaf_hash(b"b")


def test_append_entries_is_one_transaction(store, statements):
    tree = StoredTree.open(store)
    statements.start()
    assert tree.append_entries(_leaves(10)) == 10
    recorded = statements.stop()
    assert [s for s, _ in recorded].count("BEGIN IMMEDIATE") == 1


def test_batches_store_same_nodes_as_single_appends(tmp_path):
    leaves = _leaves(37)
    roots = []
    for name, batches in (("one", [leaves]), ("each", [[leaf] for leaf in leaves])):
        store = Store.open(tmp_path / f"{name}.db")
        tree = StoredTree(store, store.create_head("tree.test/log", EMPTY_ROOT))
        for batch in batches:
            tree.append(batch)
        roots.append([tree.root(size) for size in range(38)])
        store.close()
        with sqlite3.connect(tmp_path / f"{name}.db") as connection:
            count = connection.execute("SELECT count(*) FROM nodes").fetchone()[0]
        # A tree of n leaves has n - popcount(n) complete interior subtrees.
        assert count == 37 - bin(37).count("1")
    assert roots[0] == roots[1]


def test_reopened_tree_matches_reference(store):
    leaves = _leaves(100)
    StoredTree.open(store).append(leaves)
    tree = StoredTree.open(store)
    reference = ReferenceTree(leaves)
    assert tree.root() == reference.root(100)
    assert tree.inclusion_path(57, 100) == reference.path(57, 100)


def test_reopen_reads_only_frontier(store, statements):
    StoredTree.open(store).append(_leaves(1000))
    statements.start()
    StoredTree.open(store)
    selects = statements.selects()
    # The head row and the frontier: 1000 = 512 + 256 + 128 + 64 + 32 + 8.
    assert len(selects) == 2
    frontier_read = [p for s, p in statements.stop() if "FROM nodes" in s]
    assert len(frontier_read) == 1
    # Six keys, the last repeated to fill a statement of eight lookups.
    parameters = frontier_read[0]
    assert len(parameters) == 2 * 8
    assert set(zip(parameters[::2], parameters[1::2])) == {
        (9, 0), (8, 2), (7, 6), (6, 14), (5, 30), (3, 124)
    }


def test_new_receipts_come_from_cache(store):
    tree = StoredTree.open(store)
    tree.append(_leaves(64))
    tree.cache_clear()
    tree.append(_leaves(16))
    before = tree.get_cache_info().misses
    for index in range(64, 80):
        tree.inclusion_path(index, 80)
    assert tree.get_cache_info().misses == before


def test_missing_node_detected_on_read(tmp_path):
    path = tmp_path / "damaged.db"
    store = Store.open(path)
    StoredTree(store, store.create_head("tree.test/log", EMPTY_ROOT)).append(
        _leaves(16)
    )
    store.close()
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM nodes WHERE level = 2 AND node_index = 1")
    store = Store.open(path)
    try:
        tree = StoredTree.open(store)
        with pytest.raises(StorageError, match="level 2, index 1 is missing"):
            tree.inclusion_path(0, 16)
    finally:
        store.close()


def test_open_without_head_rejected(tmp_path):
    store = Store.open(tmp_path / "empty.db")
    try:
        with pytest.raises(StorageError, match="contains no log head row"):
            StoredTree.open(store)
    finally:
        store.close()


def test_range_outside_tree_rejected(store):
    tree = StoredTree.open(store)
    tree.append(_leaves(4))
    with pytest.raises(
        InvalidRequest, match=r"leaf range \[2, 5\) is outside the tree of size 4"
    ):
        tree.range_hash(2, 5)


def test_key_count_mismatch_rejected(store):
    tree = StoredTree.open(store)
    with pytest.raises(InvalidRequest, match="got 2 entries but 1 idempotency keys"):
        tree.append([b"a", b"b"], ["k"])


def test_catch_up_loads_new_frontier(store):
    writer = StoredTree.open(store)
    reader = StoredTree.open(store)
    writer.append(_leaves(13))
    reader.catch_up(store.read_head(), store.read_hashes)
    reference = ReferenceTree(_leaves(13))
    assert reader.head == writer.head
    assert reader.root() == reference.root(13)
    assert reader.inclusion_path(12, 13) == reference.path(12, 13)
    reader.append(_leaves(3))
    assert writer.head.size == 13


def test_catch_up_rejects_smaller_head(store):
    tree = StoredTree.open(store)
    earlier = tree.head
    tree.append(_leaves(4))
    with pytest.raises(
        StorageError, match=r"at size 0, but this process already saw size 4"
    ):
        tree.catch_up(earlier, store.read_hashes)


def test_stale_writer_cannot_append(store):
    writer = StoredTree.open(store)
    stale = StoredTree.open(store)
    writer.append(_leaves(2))
    with pytest.raises(
        StorageError, match="changed under this writer: expected size 0, found size 2"
    ):
        stale.append(_leaves(1))
    assert stale.head.size == 0
    plan = stale.plan_append(_leaves(1))
    stale.catch_up(store.read_head(), store.read_hashes)
    with pytest.raises(
        StorageError, match="an append planned at size 0 was committed, but the tree"
    ):
        stale.apply(plan)
