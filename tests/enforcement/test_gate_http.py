"""The gate's HTTP API on a real gate and log: sessions, idempotent decisions,
outcomes, tokens, strict bodies, sealing failures and the approval routes."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="install the server extra")

from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from enforcement.cli import main  # noqa: E402
from enforcement.delegation import issue_certificate  # noqa: E402
from enforcement.errors import ConfigError  # noqa: E402
from enforcement.gate_config import load_gate_config  # noqa: E402
from enforcement.gate_http import create_app, openapi_document  # noqa: E402
from enforcement.gate_service import GateService  # noqa: E402
from enforcement.identity import Identity  # noqa: E402
from ledger import LedgerUnavailable, Signer, open_ledger, write_key_pair  # noqa: E402
from tests.enforcement.conftest import ORIGIN, seeded_identity, verify  # noqa: E402
from tests.enforcement.test_approvals import (  # noqa: E402
    ALICE,
    IBAN,
    LARGE,
    approvals_policy,
)

TOKEN = "agent-token-0123456789abcdef"
APPROVERS = "approver-token-0123456789abcdef"
RENT = f"pay the rent of 900 to {IBAN}"
SPEC = Path(__file__).resolve().parents[2] / "specs" / "gate-openapi.json"


def client_for(harness, token: str = TOKEN, **options) -> TestClient:
    app = create_app(GateService(harness.gate), TOKEN, **options)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def client(harness) -> TestClient:
    return client_for(harness)


def start(client: TestClient, purpose: str = RENT) -> str:
    response = client.post("/v1/sessions", json={"purpose": purpose})
    assert response.status_code == 201, response.text
    return response.json()["session"]


def decide(client: TestClient, session: str, call_id: str, tool: str = "read_balance",
           arguments: dict | None = None):
    return client.post(f"/v1/sessions/{session}/decisions", json={
        "call_id": call_id, "tool": tool, "arguments": arguments or {}})


def test_session_started_with_default_chain(client, harness):
    response = client.post("/v1/sessions", json={"purpose": RENT})

    assert response.status_code == 201
    body = response.json()
    assert body["session"].startswith("s-")
    assert body["chain"] == [harness.certificate.hash]


def test_decision_allow_carries_verified_receipt(client, harness):
    session = start(client)

    response = decide(client, session, "call-1")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "allow"
    assert body["call_id"] == "call-1"
    assert body["reasons"] == []
    verified = verify(type("R", (), {"text": body["receipt"]})())
    assert verified.index == body["index"]
    assert verified.record["id"] == body["decision"]
    assert verified.record["session"] == session
    assert verified.record["tool"] == "read_balance"


def test_decision_retry_returns_first_decision(client, harness):
    session = start(client)
    first = decide(client, session, "call-1").json()
    size = harness.ledger.size

    again = decide(client, session, "call-1")

    assert again.status_code == 200
    assert again.json() == first
    assert harness.ledger.size == size


def test_decision_call_id_reused_for_other_call(client):
    session = start(client)
    decide(client, session, "call-1", arguments={"account": "a"})

    response = decide(client, session, "call-1", arguments={"account": "b"})

    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_conflict"
    assert "call 'call-1' was first sent with another request" in (
        response.json()["detail"])


def test_parallel_calls_get_own_decisions(client, harness):
    session = start(client)
    results: dict[str, dict] = {}

    def call(call_id: str) -> None:
        results[call_id] = decide(client, session, call_id).json()

    threads = [threading.Thread(target=call, args=(f"call-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    decisions = {body["decision"] for body in results.values()}
    indexes = {body["index"] for body in results.values()}
    assert len(decisions) == 3
    assert len(indexes) == 3
    for body in results.values():
        assert verify(type("R", (), {"text": body["receipt"]})()).record[
            "verdict"] == "allow"


def test_denied_call_returns_reasons(make_harness):
    harness = make_harness(scope={"capabilities": [{"tool": "read_*"}]})
    client = client_for(harness)
    session = start(client)

    response = decide(client, session, "call-1", "send_money",
                      {"recipient": IBAN, "amount": 10})

    body = response.json()
    assert response.status_code == 200
    assert body["verdict"] == "deny"
    assert [reason["rule"] for reason in body["reasons"]] == ["delegation.scope"]
    assert verify(type("R", (), {"text": body["receipt"]})()).record[
        "verdict"] == "deny"


def test_outcome_sealed_and_linked(client, harness):
    session = start(client)
    decision = decide(client, session, "call-1").json()

    response = client.post(f"/v1/sessions/{session}/outcomes", json={
        "decision": decision["decision"], "status": "ok",
        "result": {"balance": 1200}, "duration_ms": 12.5})

    assert response.status_code == 200, response.text
    body = response.json()
    record = verify(type("R", (), {"text": body["receipt"]})()).record
    assert record["type"] == "outcome"
    assert record["id"] == body["outcome"]
    assert record["decision"] == decision["decision"]
    assert record["decision_index"] == decision["index"]
    assert record["status"] == "ok"
    assert record["duration_ms"] == 12.5
    assert record["previous"] == decision["leaf_hash"]


def test_outcome_with_result_digest(client, harness):
    session = start(client)
    decision = decide(client, session, "call-1").json()

    response = client.post(f"/v1/sessions/{session}/outcomes", json={
        "decision": decision["decision"], "status": "ok",
        "result_sha256": "ab" * 32})

    assert response.status_code == 200
    record = harness.records()[-1]
    name, _salt, value = harness.vault.open(record["result"])
    assert name == "result"
    assert value == {"sha256": "ab" * 32}


def test_outcome_error_names_error(client, harness):
    session = start(client)
    decision = decide(client, session, "call-1").json()

    response = client.post(f"/v1/sessions/{session}/outcomes", json={
        "decision": decision["decision"], "status": "error", "error": "TimeoutError"})

    assert response.status_code == 200
    record = harness.records()[-1]
    assert record["status"] == "error"
    assert record["error"] == "TimeoutError"


def test_outcome_retry_and_conflict(client, harness):
    session = start(client)
    decision = decide(client, session, "call-1").json()
    report = {"decision": decision["decision"], "status": "ok", "result": 1}
    first = client.post(f"/v1/sessions/{session}/outcomes", json=report).json()
    size = harness.ledger.size

    again = client.post(f"/v1/sessions/{session}/outcomes", json=report)
    other = client.post(f"/v1/sessions/{session}/outcomes",
                        json={**report, "result": 2})

    assert again.json() == first
    assert harness.ledger.size == size
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"


def test_outcome_of_denied_call_rejected(make_harness):
    harness = make_harness(scope={"capabilities": [{"tool": "read_*"}]})
    client = client_for(harness)
    session = start(client)
    decision = decide(client, session, "call-1", "send_money",
                      {"recipient": IBAN, "amount": 10}).json()

    response = client.post(f"/v1/sessions/{session}/outcomes", json={
        "decision": decision["decision"], "status": "ok", "result": "paid"})

    assert response.status_code == 404
    assert response.json()["error"] == "decision_not_found"
    assert decision["decision"] in response.json()["detail"]


@pytest.mark.parametrize("report, message", [
    ({"status": "ok"}, "exactly one of result and result_sha256"),
    ({"status": "ok", "result": 1, "result_sha256": "00" * 32},
     "exactly one of result and result_sha256"),
    ({"status": "error"}, "an error outcome needs error"),
    ({"status": "error", "error": "bad name!"}, "got 'bad name!'"),
    ({"status": "error", "error": "OSError", "result": 1}, "carries no result"),
    ({"status": "ok", "error": "OSError", "result": 1}, "only for status error"),
])
def test_outcome_malformed_rejected(client, report, message):
    session = start(client)
    decision = decide(client, session, "call-1").json()

    response = client.post(f"/v1/sessions/{session}/outcomes",
                           json={"decision": decision["decision"], **report})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert message in response.json()["detail"]


def test_sealing_failure_is_unavailable(make_harness):
    harness = make_harness(tampering=True)
    client = client_for(harness)
    session = start(client)
    harness.client.fail_with = LedgerUnavailable("connection refused")

    failed = decide(client, session, "call-1")
    harness.client.fail_with = None
    retried = decide(client, session, "call-1")

    assert failed.status_code == 503
    assert failed.json()["error"] == "unavailable"
    assert "do not run the tool" in failed.json()["detail"]
    assert retried.status_code == 200
    assert retried.json()["verdict"] == "allow"


def test_missing_token_rejected(harness):
    client = TestClient(create_app(GateService(harness.gate), TOKEN))

    response = client.post("/v1/sessions", json={"purpose": RENT})

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == 'Bearer realm="agentgate"'


def test_wrong_token_rejected(harness):
    client = client_for(harness, token="another-token-0123456789")

    response = client.post("/v1/sessions", json={"purpose": RENT})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_unknown_session_not_found(client):
    response = decide(client, "s-0000000000000000", "call-1")

    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"
    assert "'s-0000000000000000'" in response.json()["detail"]


def test_ended_session_not_found(client):
    session = start(client)

    ended = client.delete(f"/v1/sessions/{session}")
    response = decide(client, session, "call-1")

    assert ended.status_code == 204
    assert response.status_code == 404


def test_duplicate_member_names_rejected(client):
    session = start(client)
    body = ('{"call_id":"c","tool":"read_balance","arguments":'
            '{"account":"a","account":"b"}}')

    response = client.post(f"/v1/sessions/{session}/decisions", content=body,
                           headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert "not strict JSON" in response.json()["detail"]
    assert "account" in response.json()["detail"]


def test_body_that_is_not_json_named(client):
    # Found by a new user: the answer read "0: JSON decode error, got {}".
    response = client.post("/v1/sessions", content="not json",
                           headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("the body is not JSON (")
    assert "got {}" not in detail


def test_missing_field_named(client):
    session = start(client)

    response = client.post(f"/v1/sessions/{session}/decisions",
                           json={"tool": "read_balance"})

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request",
                               "detail": "call_id is required"}


def test_body_over_limit_rejected(harness):
    client = client_for(harness, max_body_bytes=1000)
    session = start(client)

    response = decide(client, session, "call-1", arguments={"text": "x" * 2000})

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_session_limit_reached(harness):
    client = TestClient(create_app(GateService(harness.gate, max_sessions=1), TOKEN),
                        headers={"Authorization": f"Bearer {TOKEN}"})
    start(client)

    response = client.post("/v1/sessions", json={"purpose": RENT})

    assert response.status_code == 429
    assert response.json()["error"] == "too_many_sessions"


def test_invalid_chain_rejected(client):
    response = client.post("/v1/sessions", json={
        "purpose": RENT, "chain": [{"certificate": {}, "signature": "AA=="}]})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_chain"


def test_held_call_approved_over_http(make_harness):
    harness = make_harness(policy=approvals_policy(quorum=1))
    client = client_for(harness, approvals_token=APPROVERS, approver=ALICE,
                        clock=harness.clock)
    approvers = {"Authorization": f"Bearer {APPROVERS}"}
    session = start(client)

    held = decide(client, session, "call-1", "send_money", LARGE).json()
    as_agent = client.post(f"/v1/approvals/{held['request']}/approve")
    approved = client.post(f"/v1/approvals/{held['request']}/approve",
                           headers=approvers)
    retried = client.post(f"/v1/sessions/{session}/decisions", json={
        "call_id": "call-2", "tool": "send_money", "arguments": LARGE,
        "approval": held["request"]})

    assert held["verdict"] == "hold"
    assert held["request"].startswith("q-")
    assert as_agent.status_code == 401
    assert approved.status_code == 200, approved.text
    assert retried.json()["verdict"] == "allow"


def test_approvals_token_must_differ(make_harness):
    harness = make_harness(policy=approvals_policy(quorum=1))

    with pytest.raises(ConfigError, match="equals the agents' token"):
        create_app(GateService(harness.gate), TOKEN, approvals_token=TOKEN)


def test_approvals_routes_need_approvers(harness):
    with pytest.raises(ConfigError, match="names no approvers"):
        create_app(GateService(harness.gate), TOKEN, approvals_token=APPROVERS)


def test_openapi_document_current():
    expected = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"

    assert SPEC.read_text(encoding="utf-8") == expected, (
        "specs/gate-openapi.json is stale; regenerate it with "
        ".venv/bin/python -m enforcement.gate_http > specs/gate-openapi.json")


# -- a gate described in files, for the servers that tests start --------------

@dataclass
class GateFiles:
    """A gate's configuration and the files it names, in one directory."""

    config: Path
    ledger: Path
    log_signer: Signer
    principal: Identity
    agent: Identity

    @property
    def log_key(self) -> str:
        return str(self.log_signer.verifier_key)

    def records(self) -> list[dict]:
        """Return every record of the log, parsed."""
        with open_ledger(self.ledger, self.log_signer) as ledger:
            return [json.loads(entry) for entry in ledger.entries(0, ledger.size)]


def write_gate_files(directory: Path, scope: dict | None = None,
                     policy: Path | None = None) -> GateFiles:
    """Write a log, keys, a delegation valid for a day from now, and the
    configuration of a gate over them, for ``agentgate`` subprocesses."""
    keys = directory / "keys"
    keys.mkdir(parents=True)
    log_signer = Signer.from_seed(ORIGIN, hashlib.sha256(
        b"agentgate gate files: log key").digest())
    key_path, _ = write_key_pair(log_signer, keys)
    open_ledger(directory / "ledger.db", log_signer).close()
    principal = seeded_identity("principal.test")
    agent = seeded_identity("agent.test")
    (keys / "principal.pub").write_text(principal.verifier_key + "\n")
    now = datetime.now(UTC)
    certificate = issue_certificate(
        issuer=principal, subject=agent.verifier_key,
        scope=scope or {"capabilities": [{"tool": "*"}]},
        purpose="test delegation", not_before=now - timedelta(hours=1),
        not_after=now + timedelta(days=1), max_depth=1)
    (directory / "agent.cert.json").write_text(json.dumps(certificate.to_json()))
    lines = [
        "[log]", 'database = "ledger.db"', f'key = "keys/{key_path.name}"', "",
        "[gate]", 'trust_anchors = ["keys/principal.pub"]',
        'chain = ["agent.cert.json"]', 'vault = "vault.db"',
    ]
    if policy is not None:
        lines.append(f'policy = "{policy}"')
    config = directory / "gate.toml"
    config.write_text("\n".join(lines) + "\n")
    return GateFiles(config, directory / "ledger.db", log_signer, principal, agent)


def test_config_opens_gate(tmp_path):
    files = write_gate_files(tmp_path, scope={"capabilities": [{"tool": "read_*"}]})

    with load_gate_config(files.config).open() as opened:
        session = opened.gate.session("read the balance")
        decision = session.decide("read_balance", {})

    assert decision.verdict == "allow"
    assert [record["type"] for record in files.records()] == [
        "key", "policy", "decision"]


@pytest.mark.parametrize("text, message", [
    ("[gate]\n", "[log] needs exactly one of database"),
    ('[log]\ndatabase = "x.db"\n', "[log] database needs key"),
    ('[log]\nurl = "http://127.0.0.1:1"\n', "[log] url needs verifier_key"),
    ('[log]\ndatabase = "x.db"\nkey = "k"\nsize = 1\n', "unknown keys in [log]"),
    ('[logs]\n', "unknown sections ['logs']"),
    ('[log]\ndatabase = "x.db"\nkey = "k"\n[gate]\ntrust_anchors = []\n',
     "trust_anchors must name at least one"),
    ('[log]\ndatabase = "x.db"\nkey = "k"\n[gate]\n'
     'trust_anchors = ["missing.pub"]\n', "'missing.pub' is neither a verifier key"),
    ("[log\n", "is not valid TOML"),
])
def test_config_invalid_rejected(tmp_path, text, message):
    path = tmp_path / "gate.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_gate_config(path)

    assert message in str(caught.value)


def test_config_bad_certificate_rejected(tmp_path):
    files = write_gate_files(tmp_path)
    (tmp_path / "agent.cert.json").write_text('{"certificate": {}}')

    with pytest.raises(ConfigError, match="certificate .*agent.cert.json is invalid"):
        load_gate_config(files.config)


def test_serve_unreadable_config_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGATE_GATE_TOKEN", TOKEN)

    result = CliRunner().invoke(main, ["gate", "serve", "--config",
                                       str(tmp_path / "missing.toml")])

    assert result.exit_code == 2
    assert "cannot read gate configuration" in result.output


def test_serve_without_token_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTGATE_GATE_TOKEN", raising=False)
    files = write_gate_files(tmp_path)

    result = CliRunner().invoke(main, ["gate", "serve", "--config", str(files.config)])

    assert result.exit_code == 2
    assert "no agent token" in result.output
    assert "AGENTGATE_GATE_TOKEN" in result.output
