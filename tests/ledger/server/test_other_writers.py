"""A server whose database another writer appends to serves the grown log."""

import httpx
import pytest

import verifier
from ledger import Ledger

from .conftest import ORIGIN, auth, record


@pytest.fixture
def other_writer(server, signer):
    """A second Ledger on the server's database, as another process would open."""
    ledger = Ledger.open(server.service.settings.database, signer)
    yield ledger
    ledger.close()


def test_checkpoint_includes_other_writer(server, other_writer, signer):
    other_writer.append_batch([(record(n), None) for n in range(1, 4)])
    other_writer.store_checkpoints()

    note = httpx.get(server.base_url + "/checkpoint").text

    checkpoint = verifier.verify_checkpoint(note, [str(signer.verifier_key)], ORIGIN)
    assert checkpoint.size == 4


def test_tiles_and_proofs_of_other_writer(server, other_writer):
    other_writer.append_batch([(record(n), None) for n in range(1, 4)])

    tile = httpx.get(server.base_url + "/tile/0/000.p/4")
    bundle = httpx.get(server.base_url + "/tile/entries/000.p/4")
    proof = httpx.get(
        server.base_url + "/v1/proofs/inclusion",
        params={"leaf_hash": verifier.leaf_hash(record(3)).hex(), "size": 4},
    )

    assert tile.status_code == 200
    assert len(tile.content) == 4 * 32
    assert bundle.status_code == 200
    assert proof.status_code == 200
    assert proof.json()["index"] == 3


def test_append_after_other_writer(server, other_writer):
    other_writer.append(record(1))

    response = httpx.post(
        server.base_url + "/v1/entries", content=record(2), headers=auth()
    )

    assert response.status_code == 200
    assert response.json()["index"] == 2
