"""Request bodies over each server's limit get 413 before they are read in full.

The requests go over raw sockets to real ``agentgate`` processes, so the
test controls how much of the body is ever sent:

- a declared ``Content-Length`` far above the limit, with only the first
  kilobyte of the body sent: the answer must come while the client still
  owes almost all of it;
- a chunked body that passes the limit and then stops without its final
  chunk: the answer must come while the request is unfinished.

Each request carries the right token, so the limit and not the token check
is what answers.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from .servers import (
    APPROVALS_TOKEN,
    GATE_TOKEN,
    LOG_TOKEN,
    MCP_TOKEN,
    start_approvals_server,
    start_gate_server,
    start_log_server,
    start_mcp_proxy,
    start_witness,
)

# Seconds to wait for the answer to an unfinished request.
ANSWER_TIMEOUT = 20.0
CHUNK = 8192


def _request_head(url: str, path: str, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    lines = [f"POST {parts.path}{path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _status_of(connection: socket.socket) -> int:
    """Read until the status line has arrived; return its status code."""
    connection.settimeout(ANSWER_TIMEOUT)
    received = b""
    while b"\r\n" not in received:
        data = connection.recv(4096)
        if not data:
            break
        received += data
    assert received.startswith(b"HTTP/1."), received[:200]
    return int(received.split(b" ", 2)[1])


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def send_declared(url: str, path: str, headers: dict[str, str], limit: int) -> int:
    """Declare 100 times ``limit`` bytes, send 1 KiB of them, return the status."""
    with _connect(url) as connection:
        head = _request_head(url, path, {**headers,
                                         "Content-Length": str(limit * 100)})
        connection.sendall(head + b"{" + b" " * 1023)
        return _status_of(connection)


def send_chunked(url: str, path: str, headers: dict[str, str], limit: int) -> int:
    """Send chunks until ``limit`` is passed, never finish; return the status."""
    with _connect(url) as connection:
        connection.sendall(_request_head(url, path, {
            **headers, "Transfer-Encoding": "chunked"}))
        sent = 0
        try:
            while sent <= limit + CHUNK:
                connection.sendall(b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n")
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            # The server answered and closed before the limit was passed.
            pass
        return _status_of(connection)


# (name, start function, path, headers, limit in bytes)
SERVERS = [
    ("log", start_log_server, "/v1/entries",
     {"Authorization": f"Bearer {LOG_TOKEN}", "Content-Type": "application/json"},
     65536),
    ("gate", start_gate_server, "/v1/sessions",
     {"Authorization": f"Bearer {GATE_TOKEN}", "Content-Type": "application/json"},
     1 << 20),
    ("gate approvals", start_gate_server, "/v1/approvals/q-0",
     {"Authorization": f"Bearer {APPROVALS_TOKEN}",
      "Content-Type": "application/json"},
     1 << 20),
    ("approvals", start_approvals_server, "/approvals/q-0",
     {"Authorization": f"Bearer {APPROVALS_TOKEN}",
      "Content-Type": "application/json"},
     1 << 20),
    ("witness", start_witness, "/add-checkpoint", {}, 64 * 1024),
    ("mcp-proxy", start_mcp_proxy, "",
     {"Authorization": f"Bearer {MCP_TOKEN}", "Content-Type": "application/json",
      "Accept": "application/json, text/event-stream"},
     4 << 20),
]


@pytest.fixture(scope="module", params=SERVERS, ids=[s[0] for s in SERVERS])
def server(request, tmp_path_factory):
    name, start, path, headers, limit = request.param
    if name == "mcp-proxy":
        pytest.importorskip("mcp", reason="install the mcp extra")
    with start(tmp_path_factory.mktemp(name.replace(" ", "-"))) as running:
        yield running, path, headers, limit


def test_declared_length_over_limit(server):
    running, path, headers, limit = server

    assert send_declared(running.base_url, path, headers, limit) == 413


def test_chunked_body_over_limit(server):
    running, path, headers, limit = server
    status = send_chunked(running.base_url, path, headers, limit)

    if running.process.args[1] == "witness":
        # The witness takes only bodies of a declared length (C2SP
        # tlog-witness requests are small), so it rejects any chunked body.
        assert status == 411
    else:
        assert status == 413


def test_body_at_limit_not_rejected_as_large(server):
    """The control: a body of exactly the limit is read and judged on content."""
    running, path, headers, limit = server
    with _connect(running.base_url) as connection:
        head = _request_head(running.base_url, path, {**headers,
                                                      "Content-Length": str(limit)})
        connection.sendall(head + b" " * limit)
        status = _status_of(connection)

    assert status != 413
