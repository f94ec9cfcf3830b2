"""Roots, inclusion proofs and consistency proofs against the RFC 9162 reference.

The logs here live on SQLite and on PostgreSQL (see conftest.py).
"""

import hashlib
import random

import pytest

from ledger import InvalidRequest, Ledger
from ledger.proofs import (
    audit_paths,
    consistency_proof,
    consistency_ranges,
    format_proof_text,
)
from ledger.storage import Store
from ledger.tree import EMPTY_ROOT, StoredTree

from .conftest import FIXED_NOW, record
from .rfc9162 import ReferenceTree

EXHAUSTIVE_SIZE = 200


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def full_log(tmp_path_factory, request):
    """A ledger of EXHAUSTIVE_SIZE entries, appended in batches of varied size."""
    from ledger import Signer

    from .conftest import ORIGIN, TEST_SEED

    signer = Signer.from_seed(ORIGIN, TEST_SEED)
    schema = None
    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("exhaustive") / "log.db")
    else:
        server = request.getfixturevalue("postgres_server")
        schema, url = server.create_schema()
    ledger = Ledger.open(url, signer, now=FIXED_NOW)
    number = 0
    batch_sizes = [1, 2, 3, 5, 8, 13, 1, 1, 4, 16, 7]
    while ledger.size < EXHAUSTIVE_SIZE:
        batch = batch_sizes[number % len(batch_sizes)]
        batch = min(batch, EXHAUSTIVE_SIZE - ledger.size)
        ledger.append_batch([(record(number * 100 + i), None) for i in range(batch)])
        number += 1
    reference = ReferenceTree(ledger.entries(0, ledger.size))
    yield ledger, reference
    ledger.close()
    if schema is not None:
        server.drop_schema(schema)


def test_roots_every_size(full_log):
    ledger, reference = full_log
    for size in range(EXHAUSTIVE_SIZE + 1):
        assert ledger.root(size) == reference.root(size), f"size {size}"


def test_inclusion_every_index_and_size(full_log):
    ledger, reference = full_log
    for size in range(1, EXHAUSTIVE_SIZE + 1):
        for index in range(size):
            assert ledger.inclusion_proof(index, size) == reference.path(
                index, size
            ), f"index {index} size {size}"


def test_consistency_every_pair(full_log):
    ledger, reference = full_log
    for second in range(1, EXHAUSTIVE_SIZE + 1):
        for first in range(1, second + 1):
            assert ledger.consistency_proof(first, second) == reference.proof(
                first, second
            ), f"sizes {first} -> {second}"


def test_proofs_read_from_store_with_small_cache(db_url, signer, statements):
    """With room for about 50 hashes, most proofs read the database."""
    with Ledger.open(db_url, signer, now=FIXED_NOW) as ledger:
        ledger.append_batch([(record(i), None) for i in range(69)])
    with Ledger.open(db_url, signer, cache_bytes=16 * 1024) as ledger:
        reference = ReferenceTree(ledger.entries(0, ledger.size))
        statements.start()
        for second in range(1, ledger.size + 1):
            assert ledger.root(second) == reference.root(second)
            for first in range(1, second + 1):
                assert ledger.inclusion_proof(first - 1, second) == reference.path(
                    first - 1, second
                )
                assert ledger.consistency_proof(first, second) == reference.proof(
                    first, second
                )
        assert len(statements.selects()) > 1000


def test_random_pairs_in_large_tree(db_url):
    store = Store.open(db_url)
    tree = StoredTree(store, store.create_head("large", EMPTY_ROOT))
    leaves = [i.to_bytes(4, "big") for i in range(5000)]
    for start in range(0, len(leaves), 1000):
        tree.append(leaves[start : start + 1000])
    reference = ReferenceTree(leaves)
    rng = random.Random(9162)
    for _ in range(300):
        second = rng.randint(1, len(leaves))
        first = rng.randint(1, second)
        index = rng.randrange(second)
        assert tree.root(second) == reference.root(second)
        assert tree.inclusion_path(index, second) == reference.path(index, second)
        assert consistency_proof(tree, first, second) == reference.proof(first, second)
    store.close()


def test_consistency_ranges_of_spec_example():
    assert consistency_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]


def test_consistency_equal_sizes_is_empty(full_log):
    ledger, _ = full_log
    assert ledger.consistency_proof(37, 37) == []


def test_consistency_first_size_zero_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(
        InvalidRequest, match=r"sizes 0 -> 5: first size must be at least 1"
    ):
        ledger.consistency_proof(0, 5)


def test_consistency_first_exceeds_second_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(
        InvalidRequest, match=r"sizes 8 -> 5: first size must not exceed second"
    ):
        ledger.consistency_proof(8, 5)


def test_consistency_second_beyond_log_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(
        InvalidRequest, match=r"sizes 5 -> 201: second size exceeds the log size 200"
    ):
        ledger.consistency_proof(5, 201)


def test_consistency_non_integer_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(InvalidRequest, match=r"first size must be an integer, got str"):
        ledger.consistency_proof("1", 5)


def test_inclusion_index_past_size_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(
        InvalidRequest, match=r"index 7 in size 7: index must be in \[0, 6\]"
    ):
        ledger.inclusion_proof(7, 7)


def test_inclusion_size_beyond_log_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(InvalidRequest, match=r"size 201: size must be in \[1, 200\]"):
        ledger.inclusion_proof(0, 201)


def test_inclusion_size_zero_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(InvalidRequest, match=r"size 0: size must be in \[1, 200\]"):
        ledger.inclusion_proof(0, 0)


def test_root_size_beyond_log_rejected(full_log):
    ledger, _ = full_log
    with pytest.raises(InvalidRequest, match=r"tree size 201 is outside \[0, 200\]"):
        ledger.root(201)


def test_proof_text_format():
    proof = [bytes(32), bytes([255]) * 32]
    assert format_proof_text(proof) == (
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        "//////////////////////////////////////////8=\n"
    )
    assert format_proof_text([]) == ""


# -- audit paths of many leaves at once ---------------------------------------------


def _reference_subtree_hash(reference):
    def subtree_hash(level, index):
        return reference.mth(index << level, (index + 1) << level)

    return subtree_hash


def test_audit_paths_every_index_and_size():
    reference = ReferenceTree([record(i) for i in range(EXHAUSTIVE_SIZE)])
    subtree_hash = _reference_subtree_hash(reference)
    for size in range(1, EXHAUSTIVE_SIZE + 1):
        paths = audit_paths(range(size), size, subtree_hash)
        for index in range(size):
            assert paths[index] == reference.path(index, size), f"{index} {size}"


class SyntheticTree(ReferenceTree):
    """The RFC 9162 recursion over made-up hashes of aligned perfect subtrees.

    Trees of 2^40 leaves cannot be hashed leaf by leaf, but a path only
    depends on the hashes of the perfect subtrees it names: this tree gives
    each one a distinct hash and combines the rest as MTH does.
    """

    def __init__(self):
        super().__init__([])

    def _mth(self, start, stop):
        width = stop - start
        if width & (width - 1) == 0 and start % width == 0:
            return hashlib.sha256(f"subtree {start} {stop}".encode()).digest()
        return super()._mth(start, stop)


def test_audit_paths_random_subsets_of_large_trees():
    randomness = random.Random(9162)
    reference = SyntheticTree()
    for _ in range(30):
        size = randomness.randrange(2, 1 << 40)
        indexes = [randomness.randrange(size) for _ in range(5)]
        indexes += list(range(max(0, size - 70), size))
        paths = audit_paths(indexes, size, _reference_subtree_hash(reference))
        for index in indexes:
            assert paths[index] == reference.path(index, size), f"{index} {size}"


def test_batch_receipts_match_reference(db_url, signer, statements):
    """Receipts of a batch are proved from the batch's own hashes, no reads."""
    with Ledger.open(db_url, signer, now=FIXED_NOW) as ledger:
        for batch in (3, 1, 17, 64, 5, 130, 2):
            start = ledger.size
            statements.start()
            receipts = ledger.append_batch(
                [(record(start + i), None) for i in range(batch)]
            )
            selects = statements.selects()
            statements.stop()
            reference = ReferenceTree(ledger.entries(0, ledger.size))
            for receipt in receipts:
                assert receipt.proof == reference.path(receipt.index, ledger.size)
            # The head lock; the idempotency lookup has no keys to look up.
            assert len(selects) == 1, selects


def test_batch_with_replayed_keys_matches_reference(db_url, signer):
    with Ledger.open(db_url, signer, now=FIXED_NOW) as ledger:
        first = ledger.append_batch([(record(i), f"k{i}") for i in range(40)])
    with Ledger.open(db_url, signer, cache_bytes=0) as ledger:
        items = [(record(i), f"k{i}") for i in range(0, 40, 3)]
        items += [(record(100 + i), None) for i in range(9)]
        receipts = ledger.append_batch(items)
        reference = ReferenceTree(ledger.entries(0, ledger.size))
        for receipt in receipts:
            assert receipt.proof == reference.path(receipt.index, ledger.size)
        assert [r.index for r in receipts[:14]] == [r.index for r in first[::3]]
