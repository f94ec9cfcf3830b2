"""Every write endpoint of every HTTP server rejects a missing or wrong token.

Each server runs as a real ``agentgate`` process on 127.0.0.1. For every
route that changes state, a request without ``Authorization``, with another
scheme, with a wrong token and with another role's token gets 401, and the
state it would change is checked to be unchanged. The witness is the one
server without a bearer token: C2SP tlog-witness authenticates a request by
the log's signature on the checkpoint, so an unsigned or foreign checkpoint
gets 403 there and changes nothing.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from ledger import Signer, open_ledger
from ledger.note import sign_checkpoint

from .servers import (
    APPROVALS_TOKEN,
    GATE_TOKEN,
    LOG_SEED,
    LOG_TOKEN,
    MCP_TOKEN,
    ORIGIN,
    WRONG_TOKEN,
    start_approvals_server,
    start_gate_server,
    start_log_server,
    start_mcp_proxy,
    start_witness,
)

def bad_authorizations(token: str) -> list[str | None]:
    """Return Authorization values that must all be rejected (None: no header)."""
    return [
        None,
        "",
        "Bearer",
        f"Basic {base64.b64encode(b'user:' + token.encode()).decode()}",
        f"Bearer {WRONG_TOKEN}",
        f"Bearer {token[:-1]}",
        f"Bearer {token}x",
        f"Bearer {token.upper()}",
        f"bearer-{token}",
        token,
    ]


def _headers(authorization: str | None, **others: str) -> dict[str, str]:
    headers = dict(others)
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


def _assert_rejected(response: httpx.Response, offered: str | None) -> None:
    assert response.status_code == 401, response.text
    assert "www-authenticate" in response.headers
    credential = offered.split()[-1] if offered and offered.split() else ""
    if len(credential) >= 16:
        # A rejection never echoes the credential that was offered.
        assert credential not in response.text


@pytest.fixture(scope="module")
def log_server(tmp_path_factory):
    with start_log_server(tmp_path_factory.mktemp("log")) as server:
        yield server


@pytest.mark.parametrize("authorization", bad_authorizations(LOG_TOKEN))
def test_log_append_rejected(log_server, authorization):
    entry = b'{"n":1,"type":"decision","version":1}'
    with httpx.Client(base_url=log_server.base_url) as http:
        size_before = _log_size(http)
        response = http.post("/v1/entries", content=entry, headers=_headers(
            authorization, **{"Content-Type": "application/json"}))

        _assert_rejected(response, authorization)
        assert _log_size(http) == size_before


def test_log_append_other_role_token_rejected(log_server):
    with httpx.Client(base_url=log_server.base_url) as http:
        response = http.post(
            "/v1/entries", content=b'{"n":1,"type":"decision","version":1}',
            headers={"Authorization": f"Bearer {GATE_TOKEN}",
                     "Content-Type": "application/json"})

    _assert_rejected(response, GATE_TOKEN)


def test_log_append_with_token_accepted(log_server):
    """The control: the same request with the write token is appended."""
    with httpx.Client(base_url=log_server.base_url) as http:
        size_before = _log_size(http)
        response = http.post(
            "/v1/entries", content=b'{"n":2,"type":"decision","version":1}',
            headers={"Authorization": f"Bearer {LOG_TOKEN}",
                     "Content-Type": "application/json"})

        assert response.status_code == 200, response.text
        assert _log_size(http) == size_before + 1


def _log_size(http: httpx.Client) -> int:
    return int(http.get("/v1/checkpoint").text.split("\n")[1])


# -- the gate and its approval routes -------------------------------------------


@pytest.fixture(scope="module")
def gate_server(tmp_path_factory):
    with start_gate_server(tmp_path_factory.mktemp("gate")) as server:
        yield server


@pytest.fixture(scope="module")
def gate_session(gate_server):
    """A session started with the agents' token, for the routes that need one."""
    with httpx.Client(base_url=gate_server.base_url,
                      headers={"Authorization": f"Bearer {GATE_TOKEN}"}) as http:
        response = http.post("/v1/sessions", json={"purpose": "read my balance"})
    assert response.status_code == 201, response.text
    return response.json()["session"]


def _gate_writes(session: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("POST", "/v1/sessions", {"purpose": "read my balance"}),
        ("POST", f"/v1/sessions/{session}/decisions",
         {"call_id": "c1", "tool": "get_balance", "arguments": {}}),
        ("POST", f"/v1/sessions/{session}/outcomes",
         {"decision": "d-0", "status": "ok", "result": {}, "duration_ms": 1.0}),
        ("DELETE", f"/v1/sessions/{session}", None),
    ]


def _approval_writes() -> list[tuple[str, str, dict | None]]:
    return [
        ("POST", "/v1/approvals/q-0", {"body": {}, "signature": ""}),
        ("POST", "/v1/approvals/q-0/approve", {}),
        ("POST", "/v1/approvals/q-0/deny", {}),
    ]


@pytest.mark.parametrize("authorization", [
    *bad_authorizations(GATE_TOKEN),
    # The approvers' token is not an agent token.
    f"Bearer {APPROVALS_TOKEN}",
])
def test_gate_writes_rejected(gate_server, gate_session, authorization):
    with httpx.Client(base_url=gate_server.base_url) as http:
        for method, path, body in _gate_writes(gate_session):
            response = http.request(method, path, json=body,
                                    headers=_headers(authorization))
            _assert_rejected(response, authorization)

    assert _decision_count(gate_server, gate_session) == 0


@pytest.mark.parametrize("authorization", [
    *bad_authorizations(APPROVALS_TOKEN),
    # An agent must not approve its own held calls.
    f"Bearer {GATE_TOKEN}",
])
def test_gate_approval_writes_rejected(gate_server, authorization):
    with httpx.Client(base_url=gate_server.base_url) as http:
        for method, path, body in _approval_writes():
            response = http.request(method, path, json=body,
                                    headers=_headers(authorization))
            _assert_rejected(response, authorization)


def test_gate_approval_with_token_reaches_route(gate_server):
    """The control: with the approvers' token the route runs (no such request)."""
    with httpx.Client(base_url=gate_server.base_url) as http:
        response = http.post("/v1/approvals/q-0/approve", json={},
                             headers={"Authorization": f"Bearer {APPROVALS_TOKEN}"})

    assert response.status_code == 404, response.text


def _decision_count(server, session: str) -> int:
    """Count the decisions the gate sealed for ``session``, from the log file."""
    with open_ledger(_argument_path(server, "--config").parent / "ledger.db") as ledger:
        records = [json.loads(entry) for entry in ledger.entries(0, ledger.size)]
    return sum(1 for record in records
               if record["type"] == "decision" and record.get("session") == session)


def _argument_path(server, option: str) -> Path:
    """Return the path that ``server`` was started with after ``option``."""
    return Path(server.process.args[server.process.args.index(option) + 1])


# -- the approvals server ---------------------------------------------------------


@pytest.fixture(scope="module")
def approvals_server(tmp_path_factory):
    with start_approvals_server(tmp_path_factory.mktemp("approvals")) as server:
        yield server


@pytest.mark.parametrize("authorization", bad_authorizations(APPROVALS_TOKEN))
def test_approvals_writes_rejected(approvals_server, authorization):
    with httpx.Client(base_url=approvals_server.base_url) as http:
        for method, path, body in _approval_writes():
            response = http.request(method, path.removeprefix("/v1"), json=body,
                                    headers=_headers(authorization))
            _assert_rejected(response, authorization)


def test_approvals_with_token_reaches_route(approvals_server):
    with httpx.Client(base_url=approvals_server.base_url) as http:
        response = http.post("/approvals/q-0/approve", json={},
                             headers={"Authorization": f"Bearer {APPROVALS_TOKEN}"})

    assert response.status_code == 404, response.text


# -- the MCP proxy over streamable HTTP --------------------------------------------


@pytest.fixture(scope="module")
def mcp_proxy(tmp_path_factory):
    pytest.importorskip("mcp", reason="install the mcp extra")
    with start_mcp_proxy(tmp_path_factory.mktemp("mcp")) as server:
        yield server


MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get_balance", "arguments": {}}}


@pytest.mark.parametrize("authorization",
                         [*bad_authorizations(MCP_TOKEN), f"Bearer {GATE_TOKEN}"])
def test_mcp_proxy_rejected(mcp_proxy, authorization):
    response = httpx.post(mcp_proxy.base_url, json=MCP_CALL, headers=_headers(
        authorization, Accept="application/json, text/event-stream"))

    _assert_rejected(response, authorization)


def test_mcp_proxy_with_token_reaches_server(mcp_proxy):
    """The control: with the token the MCP server answers (a session is needed)."""
    response = httpx.post(mcp_proxy.base_url, json=MCP_CALL, headers={
        "Authorization": f"Bearer {MCP_TOKEN}",
        "Accept": "application/json, text/event-stream"})

    assert response.status_code != 401, response.text


# -- the witness --------------------------------------------------------------------


@pytest.fixture(scope="module")
def witness(tmp_path_factory):
    with start_witness(tmp_path_factory.mktemp("witness")) as server:
        yield server


def _checkpoint_request(signer: Signer) -> bytes:
    """Return an add-checkpoint body: from size 0 to a checkpoint of size 1."""
    checkpoint = sign_checkpoint(ORIGIN, 1, bytes(32), [signer])
    return f"old 0\n\n{checkpoint.note}".encode()


def test_witness_foreign_signature_rejected(witness):
    intruder = Signer.from_seed(ORIGIN, bytes(32))
    response = httpx.post(witness.base_url + "/add-checkpoint",
                          content=_checkpoint_request(intruder),
                          headers={"Authorization": f"Bearer {WRONG_TOKEN}"})

    assert response.status_code == 403, response.text
    assert not _argument_path(witness, "--state").exists()


def test_witness_log_signature_accepted(witness):
    """The control: the log's own key is what authenticates a request."""
    log_signer = Signer.from_seed(ORIGIN, LOG_SEED)
    response = httpx.post(witness.base_url + "/add-checkpoint",
                          content=_checkpoint_request(log_signer))

    assert response.status_code == 200, response.text
    assert _argument_path(witness, "--state").exists()
