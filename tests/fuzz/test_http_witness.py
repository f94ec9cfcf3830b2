"""The witness's HTTP server, on 127.0.0.1, sent fuzzed requests over a socket.

``verifier.witness.make_server`` parses the request line, the headers and
the body length itself (it is the standard library's ``http.server``), so
the requests are written byte by byte. Every request gets a status line
with one of the statuses of specs/witness.md, never a dropped connection,
and the server keeps serving. The witness sends its errors in plain text, as
the C2SP tlog-witness protocol specifies, not in JSON.
"""

import functools
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.mutations import FAST, mutated
from tests.fuzz.samples import LOG_KEY, ORIGIN, scratch_directory
from tests.fuzz.test_witness import BODY, COSIGNER, FIRST
from verifier import Witness, WitnessState, parse_verifier_key
from verifier.witness import LogState, make_server

STATUSES = {200, 400, 403, 404, 405, 409, 411, 413, 422}


@functools.cache
def served() -> tuple[str, int]:
    """Start a witness that cosigned the sample log at size 3; return its address."""
    state = WitnessState(scratch_directory() / "http-witness.json")
    state.put(ORIGIN, LogState(FIRST.size, FIRST.root))
    witness = Witness(
        COSIGNER, {ORIGIN: [parse_verifier_key(LOG_KEY)]}, state, lambda: 10**9
    )
    server = make_server(witness, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[:2]


def exchange(request: bytes) -> int:
    """Send ``request`` on a new connection; return the response's status code."""
    with socket.create_connection(served(), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        response = b""
        while chunk := connection.recv(4096):
            response += chunk
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), (request[:200], response[:200])
    return int(status_line.split()[1])


REQUEST_LINE = b"POST /add-checkpoint HTTP/1.1\r\n"


def headers_and_body(body: bytes, length: bytes | None = None) -> bytes:
    declared = str(len(body)).encode() if length is None else length
    return b"Host: 127.0.0.1\r\nContent-Length: " + declared + b"\r\n\r\n" + body


def post(body: bytes, length: bytes | None = None) -> bytes:
    return REQUEST_LINE + headers_and_body(body, length)


def test_valid_body_cosigned_over_http():
    assert exchange(post(BODY)) in {200, 409}


@pytest.mark.parametrize(
    "length",
    [
        # Found by fuzzing: "\xb2" is read as "²", which passed str.isdigit()
        # and made int() raise inside the handler, so the connection dropped.
        b"\xb2",
        b"\xd9\xa1",
        b"\xef\xbc\x91",
        b"1 2",
        b"-1",
        b"+1",
        b"",
    ],
)
def test_invalid_content_length_is_411(length):
    assert exchange(post(b"old 3\n\n", length)) == 411


@pytest.mark.parametrize("length", [b"65537", b"9" * 40, b"9" * 5000])
def test_large_content_length_is_413(length):
    assert exchange(post(b"old 3\n\n", length)) == 413


@FAST
@given(mutated(headers_and_body(BODY), max_edits=3))
def test_mutated_headers_and_body_get_a_status(rest):
    assert exchange(REQUEST_LINE + rest) in STATUSES | {400, 431}


@FAST
@given(st.binary(max_size=300))
def test_random_body_gets_a_status(body):
    assert exchange(post(body)) in STATUSES - {200}
