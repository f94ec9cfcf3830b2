"""The JSON read API: checkpoint, inclusion and consistency proofs, entries."""

import base64

import httpx
import pytest

import verifier

from ..rfc9162 import ReferenceTree
from .conftest import ORIGIN, record, start

SIZE = 9  # the key record and eight test records


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """One server for the module, never written to by its tests."""
    server = start(tmp_path_factory.mktemp("reads"))
    server.ledger.append_batch([(record(n), None) for n in range(1, SIZE)])
    yield server
    server.stop()


@pytest.fixture
def http(filled):
    with httpx.Client(base_url=filled.base_url, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def reference(filled):
    return ReferenceTree(filled.ledger.entries(0, SIZE))


def decode(hashes):
    return [base64.b64decode(item) for item in hashes]


def checkpoint_of(http, signer):
    note = http.get("/v1/checkpoint").text
    return verifier.verify_checkpoint(note, [str(signer.verifier_key)], ORIGIN)


def test_checkpoint_is_signed_note(http, filled, signer):
    response = http.get("/v1/checkpoint")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.text == filled.ledger.latest_checkpoint()
    checkpoint = checkpoint_of(http, signer)
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, SIZE)


def test_tiles_checkpoint_matches_v1(http, filled):
    assert http.get("/checkpoint").text == http.get("/v1/checkpoint").text


@pytest.mark.parametrize(("index", "size"), [(0, 1), (3, 9), (8, 9), (4, 5)])
def test_inclusion_proof_by_index(http, reference, index, size):
    response = http.get("/v1/proofs/inclusion", params={"index": index, "size": size})

    assert response.status_code == 200
    body = response.json()
    assert (body["index"], body["size"]) == (index, size)
    proof = decode(body["proof"])
    assert proof == reference.path(index, size)
    leaf_hash = verifier.leaf_hash(reference.leaves[index])
    verifier.verify_inclusion(leaf_hash, index, size, proof, reference.root(size))


def test_inclusion_proof_by_leaf_hash(http, reference):
    leaf_hash = verifier.leaf_hash(reference.leaves[5]).hex()
    response = http.get(
        "/v1/proofs/inclusion", params={"leaf_hash": leaf_hash, "size": SIZE}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["index"] == 5
    assert decode(body["proof"]) == reference.path(5, SIZE)


def test_leaf_hash_lookup_takes_first_duplicate(start_server):
    server = start_server()
    server.ledger.append_batch([(record(1), None), (record(2), None)] * 2)
    leaf_hash = verifier.leaf_hash(record(2)).hex().upper()
    response = httpx.get(
        server.base_url + "/v1/proofs/inclusion",
        params={"leaf_hash": leaf_hash, "size": 5},
    )
    assert response.json()["index"] == 2


def test_leaf_hash_outside_tree_size(http, filled):
    """A leaf past ``size`` is not in the tree of that size: 404."""
    leaf_hash = verifier.leaf_hash(record(8)).hex()
    response = http.get(
        "/v1/proofs/inclusion", params={"leaf_hash": leaf_hash, "size": 8}
    )

    assert response.status_code == 404
    assert response.json() == {
        "error": "leaf_not_found",
        "detail": f"no leaf with hash {leaf_hash} in the tree of size 8",
    }


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"index": 9, "size": 9}, "index 9 in size 9: index must be in [0, 8]"),
        ({"index": 0, "size": 10}, "size must be in [1, 9]"),
        ({"index": 0, "size": 0}, "size must be in [1, 9]"),
    ],
)
def test_inclusion_out_of_range(http, filled, params, detail):
    response = http.get("/v1/proofs/inclusion", params=params)

    assert response.status_code == 400
    assert response.json()["error"] == "out_of_range"
    assert detail in response.json()["detail"]


def test_leaf_hash_lookup_size_out_of_range(http, filled):
    params = {"leaf_hash": "00" * 32, "size": 10}
    response = http.get("/v1/proofs/inclusion", params=params)

    assert response.status_code == 400
    assert response.json() == {
        "error": "out_of_range",
        "detail": "query parameter 'size' is 10; expected 1 to 9, the non-empty "
        "sizes of this log",
    }


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("size=9", "give exactly one of the query parameters 'index' and "
         "'leaf_hash', got neither"),
        (f"index=1&leaf_hash={'00' * 32}&size=9", "got both"),
        ("index=1", "query parameter 'size' is required"),
        ("index=-1&size=9", "query parameter 'index' must be a decimal integer "
         "(digits only, no sign or leading zeros, below 10^19), got '-1'"),
        ("index=01&size=9", "got '01'"),
        ("index=1_0&size=9", "got '1_0'"),
        ("index=%201&size=9", "got ' 1'"),
        ("index=1&size=1e3", "query parameter 'size' must be a decimal integer"),
        ("leaf_hash=abc&size=9", "query parameter 'leaf_hash' must be a SHA-256 "
         "hash as 64 hex digits, got 'abc'"),
    ],
)
def test_inclusion_bad_parameters(http, filled, query, detail):
    response = http.get("/v1/proofs/inclusion?" + query)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_parameter"
    assert detail in body["detail"]


@pytest.mark.parametrize(("first", "second"), [(1, 9), (3, 7), (8, 9), (9, 9)])
def test_consistency_proof_json(http, reference, first, second):
    response = http.get(
        "/v1/proofs/consistency", params={"first": first, "second": second}
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["first"], body["second"]) == (first, second)
    proof = decode(body["proof"])
    assert proof == reference.proof(first, second)
    verifier.verify_consistency(
        first, second, proof, reference.root(first), reference.root(second)
    )


@pytest.mark.parametrize(
    "accept", ["text/plain", "text/*", "application/json;q=0.5, text/plain"]
)
def test_consistency_proof_text(http, reference, accept):
    response = http.get(
        "/v1/proofs/consistency?first=3&second=7", headers={"Accept": accept}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    expected = "".join(
        base64.b64encode(digest).decode() + "\n"
        for digest in reference.proof(3, 7)
    )
    assert response.text == expected


@pytest.mark.parametrize(
    "accept", ["*/*", "application/json", "text/plain;q=0.2, application/json",
               "text/plain;q=0", "text/html"]
)
def test_consistency_proof_defaults_to_json(http, filled, accept):
    response = http.get(
        "/v1/proofs/consistency?first=3&second=7", headers={"Accept": accept}
    )
    assert response.headers["content-type"] == "application/json"


def test_consistency_empty_proof_text(http, filled):
    response = http.get(
        "/v1/proofs/consistency?first=9&second=9", headers={"Accept": "text/plain"}
    )
    assert response.status_code == 200
    assert response.text == ""


@pytest.mark.parametrize(
    ("first", "second", "detail"),
    [
        (0, 5, "first size must be at least 1"),
        (6, 5, "first size must not exceed second"),
        (1, 10, "second size exceeds the log size 9"),
    ],
)
def test_consistency_out_of_range(http, filled, first, second, detail):
    response = http.get(
        "/v1/proofs/consistency", params={"first": first, "second": second}
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "out_of_range"
    assert f"consistency proof for sizes {first} -> {second}: {detail}" in (
        body["detail"]
    )


def test_consistency_bad_parameter(http, filled):
    response = http.get("/v1/proofs/consistency?first=one&second=5")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "query parameter 'first' must be a decimal integer"
    )


def test_entries(http, filled):
    response = http.get("/v1/entries", params={"start": 2, "end": 5})

    assert response.status_code == 200
    body = response.json()
    assert (body["start"], body["end"]) == (2, 5)
    assert decode(body["entries"]) == [record(2), record(3), record(4)]


def test_entries_empty_range(http, filled):
    body = http.get("/v1/entries", params={"start": 9, "end": 9}).json()
    assert body["entries"] == []


@pytest.mark.parametrize(
    ("start", "end", "detail"),
    [
        (0, 10, "entries [0, 10): need 0 <= start <= stop <= 9, the log size"),
        (5, 4, "entries [5, 4): need 0 <= start <= stop <= 9, the log size"),
        (0, 1001, "entries [0, 1001) are 1001 entries; at most 1000 per request, "
         "so request [0, 1000) and continue from there"),
    ],
)
def test_entries_out_of_range(http, filled, start, end, detail):
    response = http.get("/v1/entries", params={"start": start, "end": end})

    assert response.status_code == 400
    assert response.json() == {"error": "out_of_range", "detail": detail}


def test_unknown_path_is_json_404(http):
    response = http.get("/v2/entries")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no endpoint at /v2/entries; see specs/http-api.md",
    }


def test_wrong_method_is_json_405(http):
    response = http.delete("/v1/entries")

    assert response.status_code == 405
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": "method DELETE is not allowed on /v1/entries",
    }
