"""HttpLedgerClient against a real server: the same results and errors as local."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import verifier
from ledger import (
    IdempotencyConflict,
    InvalidEntry,
    InvalidRequest,
    LedgerClient,
    LocalLedgerClient,
)
from ledger.errors import LedgerUnavailable
from ledger.http_client import HttpLedgerClient

from .conftest import ORIGIN, TOKEN, record


@pytest.fixture
def remote(server):
    with HttpLedgerClient(server.base_url, TOKEN) as client:
        yield client


@pytest.fixture
def local(server):
    return LocalLedgerClient(server.ledger)


def test_is_a_ledger_client(remote):
    assert isinstance(remote, LedgerClient)
    assert remote.origin == ORIGIN


def test_append_returns_receipt(remote, signer):
    receipt = remote.append(record(1))

    verified = verifier.verify_receipt(receipt.text, [str(signer.verifier_key)])
    assert (receipt.index, verified.index) == (1, 1)
    assert receipt.entry == verified.entry == record(1)
    assert receipt.leaf_hash == verifier.leaf_hash(record(1))
    assert receipt.checkpoint == remote.latest_checkpoint()
    assert receipt.proof == remote.inclusion_proof(1, 2)


def test_answers_match_local_client(remote, local):
    for n in range(1, 6):
        remote.append(record(n), key=f"k{n}")

    assert remote.latest_checkpoint() == local.latest_checkpoint()
    assert remote.entries(0, 6) == local.entries(0, 6)
    assert remote.entries(6, 6) == local.entries(6, 6) == []
    for first, second in [(1, 6), (2, 5), (6, 6)]:
        assert remote.consistency_proof(first, second) == local.consistency_proof(
            first, second
        )
    for index, size in [(0, 1), (3, 6), (5, 6)]:
        assert remote.inclusion_proof(index, size) == local.inclusion_proof(
            index, size
        )


def test_idempotent_append(remote, server):
    first = remote.append(record(1), key="call-1")
    again = remote.append(record(1), key="call-1")

    assert again.index == first.index
    assert again.text == first.text
    assert server.ledger.size == 2


def test_entries_are_paged(remote, server):
    server.ledger.append_batch([(record(n), None) for n in range(1, 2500)])

    entries = remote.entries(0, 2500)

    assert len(entries) == 2500
    assert entries[1] == record(1)
    assert entries[2499] == record(2499)
    assert remote.entries(999, 1001) == [record(999), record(1000)]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.append(b'{"b":1,"a":2}'), InvalidEntry,
         r"not in RFC 8785 canonical form.*\(HTTP 400 invalid_entry from POST "),
        (lambda c: c.append("text"), InvalidEntry, "entry must be bytes, got str"),
        (lambda c: c.inclusion_proof(2, 2), InvalidRequest,
         r"index must be in \[0, 1\] \(HTTP 400 out_of_range from GET "),
        (lambda c: c.inclusion_proof(0, 3), InvalidRequest,
         r"size must be in \[1, 2\]"),
        (lambda c: c.consistency_proof(0, 1), InvalidRequest,
         "first size must be at least 1"),
        (lambda c: c.consistency_proof(1, "2"), InvalidRequest,
         "second must be an integer, got str"),
        (lambda c: c.entries(-1, 1), InvalidRequest,
         "query parameter 'start' must be a decimal integer"),
        (lambda c: c.entries(0, 3), InvalidRequest, r"stop <= 2, the log size"),
        (lambda c: c.append(record(9), key="caf\u00e9"), InvalidRequest,
         "idempotency key must be an ASCII string"),
    ],
)
def test_errors_match_local_client(remote, call, error, message):
    remote.append(record(1), key="k")
    with pytest.raises(error, match=message):
        call(remote)


def test_reused_key_is_idempotency_conflict(remote):
    remote.append(record(1), key="k")
    with pytest.raises(
        IdempotencyConflict, match=r"first used for a different entry.*HTTP 409"
    ) as caught:
        remote.append(record(2), key="k")
    assert isinstance(caught.value, InvalidRequest)


def test_too_large_entry_is_invalid_entry(start_server):
    server = start_server(max_body_bytes=100)
    with HttpLedgerClient(server.base_url, TOKEN) as client:
        with pytest.raises(InvalidEntry, match=r"limit of 100 bytes \(HTTP 413"):
            client.append(json.dumps({"pad": "x" * 200}).encode())


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "appending needs the write token"),
     ("x" * 32, "the bearer token is not the server's write token")],
)
def test_append_without_right_token(server, token, message):
    with HttpLedgerClient(server.base_url, token) as client:
        with pytest.raises(InvalidRequest, match=message + r".*HTTP 401"):
            client.append(record(1))
        assert client.latest_checkpoint()  # reads need no token


def test_stopped_log_is_unavailable(remote, server):
    server.service.stop()
    with pytest.raises(LedgerUnavailable, match=r"the log is not open.*HTTP 503"):
        remote.append(record(1))
    with pytest.raises(LedgerUnavailable, match="HTTP 503"):
        remote.latest_checkpoint()


def test_stopped_server_is_unavailable(remote, server):
    server.stop()
    calls = [
        lambda: remote.append(record(1)),
        remote.latest_checkpoint,
        lambda: remote.consistency_proof(1, 1),
        lambda: remote.inclusion_proof(0, 1),
        lambda: remote.entries(0, 1),
    ]
    for call in calls:
        with pytest.raises(LedgerUnavailable, match="is the log server running"):
            call()


def test_constructor_needs_server_without_origin():
    port = _closed_port()
    with pytest.raises(LedgerUnavailable, match=f"GET http://127.0.0.1:{port}/v1/"):
        HttpLedgerClient(f"http://127.0.0.1:{port}")


def test_constructor_with_origin_makes_no_request():
    client = HttpLedgerClient(f"http://127.0.0.1:{_closed_port()}", origin=ORIGIN)
    assert client.origin == ORIGIN
    client.close()


def test_timeout_is_unavailable():
    """A server that accepts the connection but never responds times out."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = HttpLedgerClient(f"http://127.0.0.1:{port}", timeout=0.2,
                                  origin=ORIGIN)
        with pytest.raises(LedgerUnavailable, match=r"timed out after 0\.2 s"):
            client.latest_checkpoint()
        client.close()


@pytest.mark.parametrize(
    ("base_url", "timeout", "message"),
    [("127.0.0.1:8080", 1.0, "base URL '127.0.0.1:8080' is invalid"),
     ("ftp://host", 1.0, "base URL 'ftp://host' is invalid"),
     ("http://127.0.0.1:1", 0, "timeout must be positive seconds, got 0")],
)
def test_invalid_arguments(base_url, timeout, message):
    with pytest.raises(InvalidRequest, match=message):
        HttpLedgerClient(base_url, timeout=timeout, origin=ORIGIN)


# -- servers that send malformed responses -------------------------------------


class CannedServer:
    """A real HTTP server on 127.0.0.1 that sends one fixed response to anything."""

    def __init__(self, status, body, content_type="application/json"):
        canned = (status, body, content_type)

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, body, content_type = canned
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()


def _append_response(entry, receipt_text, index=1, leaf_hash=None):
    leaf_hash = leaf_hash or verifier.leaf_hash(entry).hex()
    return json.dumps(
        {"index": index, "leaf_hash": leaf_hash, "receipt": receipt_text}
    ).encode()


def _receipt_text(entry, index=1):
    from ledger.receipt import format_receipt

    note = f"{ORIGIN}\n2\n{'A' * 43}=\n\n\u2014 {ORIGIN} AAAA\n"
    return format_receipt(entry, index, [b"\x01" * 32], note)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "sent a body that is not JSON"),
        (b"[1]", "sent a JSON list, not an object"),
        (b'{"index": "1"}', "whose 'index' is '1'; expected a JSON integer"),
        (_append_response(record(1), _receipt_text(record(2))),
         "a receipt for an entry other than the one sent"),
        (_append_response(record(1), _receipt_text(record(1), index=2)),
         "a receipt whose index line is 'index 2'"),
        (_append_response(record(1), "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nnote\n"),
         "a receipt without its extra line"),
        (_append_response(record(1), "hello"), "not a tlog-proof@v1 file"),
        (_append_response(record(1), _receipt_text(record(1)), leaf_hash="00" * 32),
         "a leaf_hash that is not the hash of the entry sent"),
    ],
)
def test_malformed_append_response(body, message):
    with CannedServer(200, body) as canned:
        client = HttpLedgerClient(canned.base_url, TOKEN, origin=ORIGIN)
        with pytest.raises(LedgerUnavailable, match=message):
            client.append(record(1))
        client.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"proof": ["AAAA"]}', "a proof hash of 3 bytes; expected 32"),
        (b'{"proof": ["not base64!"]}', "not standard base64"),
        (b'{"proof": "AAAA"}', "whose 'proof' is 'AAAA'; expected a JSON array"),
    ],
)
def test_malformed_proof_response(body, message):
    with CannedServer(200, body) as canned:
        client = HttpLedgerClient(canned.base_url, origin=ORIGIN)
        with pytest.raises(LedgerUnavailable, match=message):
            client.consistency_proof(1, 2)
        client.close()


def test_server_error_without_json_body():
    with CannedServer(502, b"bad gateway", "text/plain") as canned:
        client = HttpLedgerClient(canned.base_url, origin=ORIGIN)
        with pytest.raises(LedgerUnavailable, match=r"bad gateway \(HTTP 502 unknown"):
            client.entries(0, 1)
        client.close()


def test_checkpoint_origin_must_be_valid():
    with CannedServer(200, b"bad origin\n1\n\n", "text/plain") as canned:
        with pytest.raises(LedgerUnavailable, match="origin line 'bad origin'"):
            HttpLedgerClient(canned.base_url)


def _closed_port():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]
