"""POST /v1/entries: receipts, idempotency, and every refusal with its code."""

import json

import httpx
import pytest

import verifier
from ledger.log import key_record

from ..conftest import FIXED_NOW
from .conftest import ORIGIN, TOKEN, auth, record


def verify(signer, text):
    return verifier.verify_receipt(text, [str(signer.verifier_key)], origin=ORIGIN)


def test_append_returns_verifiable_receipt(http, signer):
    response = http.post("/v1/entries", content=record(1), headers=auth())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"index", "leaf_hash", "receipt"}
    verified = verify(signer, body["receipt"])
    assert verified.index == body["index"] == 1
    assert verified.entry == record(1)
    assert verified.checkpoint.size == 2
    leaf_hash = bytes.fromhex(body["leaf_hash"])
    assert leaf_hash == verifier.leaf_hash(record(1))


def test_append_accepts_charset_parameter(http):
    headers = auth() | {"Content-Type": "application/json; charset=UTF-8"}
    response = http.post("/v1/entries", content=record(1), headers=headers)
    assert response.status_code == 200


def test_idempotency_key_returns_first_receipt(http, server):
    headers = auth() | {"Idempotency-Key": "call-1"}
    first = http.post("/v1/entries", content=record(1), headers=headers).json()
    again = http.post("/v1/entries", content=record(1), headers=headers)

    assert again.status_code == 200
    assert again.json()["index"] == first["index"]
    assert server.ledger.size == 2


def test_idempotency_key_reused_with_other_bytes(http, server):
    headers = auth() | {"Idempotency-Key": "call-1"}
    http.post("/v1/entries", content=record(1), headers=headers)
    response = http.post("/v1/entries", content=record(2), headers=headers)

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "idempotency_conflict"
    assert "idempotency key 'call-1' was first used for a different entry" in (
        body["detail"]
    )
    assert server.ledger.size == 2


def test_conflict_needs_no_second_key_lookup(http, statements):
    headers = auth() | {"Idempotency-Key": "call-1"}
    http.post("/v1/entries", content=record(1), headers=headers)

    statements.start()
    response = http.post("/v1/entries", content=record(2), headers=headers)
    lookups = [s for s in statements.selects() if "idempotency_key IN" in s]
    statements.stop()

    assert response.status_code == 409
    # The lookup under the head lock; none after the conflict.
    assert len(lookups) == 1, lookups


def test_other_method_on_append_path(http):
    response = http.put("/v1/entries", content=record(1), headers=auth())
    assert response.status_code == 405
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": "method PUT is not allowed on /v1/entries",
    }


def test_unexpected_append_failure_is_json_500(http, server, monkeypatch):
    async def broken_append(entry, key):
        raise RuntimeError("simulated fault")

    monkeypatch.setattr(server.service, "append", broken_append)
    response = http.post("/v1/entries", content=record(1), headers=auth())

    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "detail": "the server failed; its log has the details",
    }


@pytest.mark.parametrize("key", [None, "call-1"])
def test_key_record_is_rejected(http, server, signer, key):
    """Only the log writes key records; one sent with a key is no conflict."""
    headers = auth() | ({"Idempotency-Key": key} if key else {})
    response = http.post(
        "/v1/entries", content=key_record(signer, FIXED_NOW), headers=headers
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["detail"].startswith("entry is a key record")
    assert server.ledger.size == 1


@pytest.mark.parametrize("key", ["", "x" * 257, "tab\there"])
def test_invalid_idempotency_key(http, key):
    headers = auth() | {"Idempotency-Key": key}
    response = http.post("/v1/entries", content=record(1), headers=headers)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_idempotency_key"
    assert f"got {len(key)} characters" in body["detail"]


def test_missing_token(http, server):
    response = http.post(
        "/v1/entries", content=record(1), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="agentgate"'
    assert response.json() == {
        "error": "unauthorized",
        "detail": "appending needs the write token: send 'Authorization: Bearer "
        "<token>'",
    }
    assert server.ledger.size == 1


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer wrong-token-wrong-token"],
)
def test_wrong_token(http, server, authorization):
    headers = auth() | {"Authorization": authorization}
    response = http.post("/v1/entries", content=record(1), headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="agentgate", error="invalid_token"'
    )
    assert response.json()["detail"] == (
        "the bearer token is not the server's write token"
    )
    assert server.ledger.size == 1


def test_basic_auth_is_not_a_bearer_token(http):
    headers = auth() | {"Authorization": f"Basic {TOKEN}"}
    response = http.post("/v1/entries", content=record(1), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="agentgate"'


def test_token_checked_before_body(http):
    """An unauthenticated caller learns nothing about its entry."""
    response = http.post(
        "/v1/entries", content=b"not json", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; "
     "charset=latin-1", None],
)
def test_wrong_content_type(http, server, content_type):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = http.post("/v1/entries", content=record(1), headers=headers)

    assert response.status_code == 415
    body = response.json()
    assert body["error"] == "unsupported_media_type"
    assert f"Content-Type must be application/json (UTF-8), got {content_type!r}" in (
        body["detail"]
    )
    assert server.ledger.size == 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (b'{"b":1,"a":2}', "not in RFC 8785 canonical form"),
        (b'{"a":1,"a":2}', "duplicate member name 'a'"),
        (b"[1,2]", "object"),
        (b"", "not JSON"),
    ],
)
def test_invalid_entry(http, server, entry, message):
    response = http.post("/v1/entries", content=entry, headers=auth())

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_entry"
    assert message in body["detail"]
    assert server.ledger.size == 1


def test_body_over_limit_by_content_length(start_server):
    server = start_server(max_body_bytes=1000)
    entry = json.dumps({"pad": "x" * 1200}).encode()
    response = httpx.post(
        server.base_url + "/v1/entries", content=entry, headers=auth()
    )

    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "detail": f"the entry is {len(entry)} bytes, larger than this server's "
        "limit of 1000 bytes",
    }
    assert server.ledger.size == 1


def test_body_over_limit_while_streaming(start_server):
    """Without Content-Length the limit is enforced while the body is read."""
    server = start_server(max_body_bytes=1000)

    def chunks():
        yield b'{"pad":"'
        for _ in range(5):
            yield b"x" * 400
        yield b'"}'

    response = httpx.post(
        server.base_url + "/v1/entries", content=chunks(), headers=auth()
    )

    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "detail": "the entry is larger than this server's limit of 1000 bytes",
    }
    assert server.ledger.size == 1


def test_body_at_limit_is_accepted(start_server):
    entry = json.dumps({"pad": "x" * 100}, separators=(",", ":")).encode()
    server = start_server(max_body_bytes=len(entry))
    response = httpx.post(
        server.base_url + "/v1/entries", content=entry, headers=auth()
    )
    assert response.status_code == 200


def test_default_limit_is_one_mebibyte(http, server):
    entry = b'{"pad":"' + b"x" * (1 << 20) + b'"}'
    response = http.post("/v1/entries", content=entry, headers=auth())

    assert response.status_code == 413
    assert "limit of 1048576 bytes" in response.json()["detail"]
    assert server.ledger.size == 1
