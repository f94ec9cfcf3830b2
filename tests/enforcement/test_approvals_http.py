"""The approval routes served by a real uvicorn on 127.0.0.1: bearer tokens,
listing, approving and denying, and approvals signed elsewhere."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi", reason="install the server extra")

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from enforcement.approvals import sign_approval  # noqa: E402
from enforcement.approvals_http import create_app  # noqa: E402
from enforcement.approvals_store import ApprovalStore  # noqa: E402
from enforcement.errors import ApprovalRequired, ConfigError, Denied  # noqa: E402
from tests.enforcement.test_approvals import (  # noqa: E402
    ALICE,
    BOB,
    LARGE,
    MALLORY,
    RENT,
    Counter,
    approvals_policy,
)

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def approving(make_harness):
    return make_harness(policy=approvals_policy(quorum=2))


def serve(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def server_for(approving):
    """Start a server on the harness's store, signing with ``signer``."""
    started = []

    def _start(signer=ALICE):
        store = ApprovalStore.open(str(approving.directory / "vault.db"))
        app = create_app(store, TOKEN, signer, clock=approving.clock)
        server, thread, url = serve(app)
        started.append((server, thread, store))
        return httpx.Client(base_url=url,
                            headers={"Authorization": f"Bearer {TOKEN}"})

    yield _start
    for server, thread, store in started:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


def held(session) -> str:
    with pytest.raises(ApprovalRequired) as caught:
        session.call("send_money", LARGE, Counter())
    return caught.value.request


def test_missing_token_rejected(approving, server_for):
    client = server_for()

    response = httpx.get(f"{client.base_url}/approvals")

    assert response.status_code == 401
    # The gate's error form, which the standalone server shares.
    assert response.json() == {"error": "unauthorized",
                               "detail": "missing or wrong bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_token_rejected(approving, server_for):
    client = server_for()

    response = client.get("/approvals", headers={"Authorization": "Bearer nope"})

    assert response.status_code == 401


def test_list_shows_raw_call(approving, server_for):
    client = server_for()
    with approving.gate.session(RENT) as session:
        request_id = held(session)

    listed = client.get("/approvals").json()
    shown = client.get(f"/approvals/{request_id}").json()

    assert [r["request"] for r in listed] == [request_id]
    assert shown["call"] == {"tool": "send_money", "arguments": LARGE}
    assert shown["quorum"] == 2


def test_bad_status_rejected(approving, server_for):
    response = server_for().get("/approvals", params={"status": "maybe"})

    assert response.status_code == 422
    assert "status must be one of pending" in response.json()["detail"]


def test_unknown_request_404(approving, server_for):
    response = server_for().post(f"/approvals/q-{'0' * 32}/approve")

    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"no approval request 'q-{'0' * 32}' in this store")


def test_two_servers_reach_quorum(approving, server_for):
    alice, bob = server_for(ALICE), server_for(BOB)
    tool = Counter()
    with approving.gate.session(RENT) as session:
        request_id = held(session)
        first = alice.post(f"/approvals/{request_id}/approve")
        held(session)
        second = bob.post(f"/approvals/{request_id}/approve",
                          json={"expiry_seconds": 60})
        assert session.call("send_money", LARGE, tool) == "paid"

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert second.json()["approval"]["expiry"] == "2026-12-04T10:01:00.000000Z"
    assert tool.runs == 1
    cited = approving.records_of("decision")[-1]["approval"]["approvals"]
    assert len(cited) == 2


def test_same_approver_twice_not_quorum(approving, server_for):
    alice = server_for(ALICE)
    with approving.gate.session(RENT) as session:
        request_id = held(session)
        alice.post(f"/approvals/{request_id}/approve")
        alice.post(f"/approvals/{request_id}/approve")
        again = held(session)

    assert again == request_id


def test_deny_route_denies(approving, server_for):
    bob = server_for(BOB)
    with approving.gate.session(RENT) as session:
        request_id = held(session)
        response = bob.post(f"/approvals/{request_id}/deny")
        with pytest.raises(Denied) as caught:
            session.call("send_money", LARGE, Counter())

    assert response.status_code == 200
    assert caught.value.reasons[-1].rule == "approval.denied"


def test_presigned_approval_stored(approving, server_for):
    client = server_for(signer=None)
    with approving.gate.session(RENT) as session:
        request_id = held(session)
        request = approving.gate.approval_store.request(request_id)
        signed = sign_approval(BOB, request, "approve", approving.clock())
        response = client.post(f"/approvals/{request_id}", json=signed.to_json())
        replayed = client.post(f"/approvals/{request_id}", json=signed.to_json())

    assert response.status_code == 200, response.text
    assert replayed.status_code == 409
    assert "already stored; each approval is used once" in replayed.json()["detail"]


def test_presigned_stranger_rejected(approving, server_for):
    client = server_for(signer=None)
    with approving.gate.session(RENT) as session:
        request_id = held(session)
        request = approving.gate.approval_store.request(request_id)
        signed = sign_approval(MALLORY, request, "approve", approving.clock())
        response = client.post(f"/approvals/{request_id}", json=signed.to_json())

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"approval by {MALLORY.key_id}: the key is not one of the policy's "
        "approvers")


def test_presigned_tampered_rejected(approving, server_for):
    client = server_for(signer=None)
    with approving.gate.session(RENT) as session:
        request_id = held(session)
        request = approving.gate.approval_store.request(request_id)
        signed = sign_approval(BOB, request, "deny", approving.clock()).to_json()
        signed["approval"]["verdict"] = "approve"
        response = client.post(f"/approvals/{request_id}", json=signed)

    assert response.status_code == 422
    assert "the signature does not verify" in response.json()["detail"]


def test_keyless_server_cannot_sign(approving, server_for):
    client = server_for(signer=None)
    with approving.gate.session(RENT) as session:
        request_id = held(session)

    response = client.post(f"/approvals/{request_id}/approve")

    assert response.status_code == 409
    assert response.json()["detail"].startswith("this server holds no approver key")


def test_short_token_refused(approving):
    store = ApprovalStore.open(str(approving.directory / "vault.db"))
    try:
        with pytest.raises(ConfigError, match="the bearer token has 5 characters"):
            create_app(store, "short")
    finally:
        store.close()
