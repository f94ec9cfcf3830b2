"""Tokens and private keys never appear in logs, outputs or error messages.

Every server runs at debug level with known tokens and keys, takes requests
with the right token and with wrong ones, and stops; then its whole output
is searched for each token, each private key line and the base64 of each
private seed. The CLI commands that read or write keys and tokens are
searched the same way, and so are the library's log records at debug level
and the texts of the errors it raises about key and token files.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from enforcement.approvals_store import ApprovalStore
from enforcement.errors import ConfigError
from enforcement.identity import Identity
from ledger import KeyFileError, Ledger, Signer, load_signer
from ledger.server import LogService, ServerSettings, load_write_token

from .servers import (
    AGENTGATE,
    APPROVALS_TOKEN,
    APPROVER_SEED,
    GATE_TOKEN,
    LOG_SEED,
    LOG_TOKEN,
    MCP_TOKEN,
    ORIGIN,
    WRONG_TOKEN,
    Secrets,
    Server,
    secret_file,
    start_approvals_server,
    start_gate_server,
    start_log_server,
    start_mcp_proxy,
    start_witness,
)


def assert_no_secret(text: str, secrets: Secrets) -> None:
    """Assert that ``text`` contains none of ``secrets`` in any form."""
    assert text, "nothing was captured, so the check would prove nothing"
    for secret in secrets.every_form():
        assert secret not in text, f"a secret appears in the output: {secret[:12]}..."
    assert "PRIVATE+KEY" not in text


def _exercise(server: Server, token: str, requests) -> None:
    """Send each request with the right token, a wrong one and none."""
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for authorization in (f"Bearer {token}", f"Bearer {WRONG_TOKEN}", None):
            headers = {} if authorization is None else {"Authorization": authorization}
            for method, path, options in requests:
                http.request(method, path, headers={
                    **headers, **options.pop("headers", {})}, **options)


def test_log_server_logs_no_secret(tmp_path):
    with start_log_server(tmp_path) as server:
        _exercise(server, LOG_TOKEN, [
            ("POST", "/v1/entries", {
                "content": b'{"n":1,"type":"decision","version":1}',
                "headers": {"Content-Type": "application/json"}}),
            ("GET", "/v1/checkpoint", {}),
            ("GET", "/metrics", {}),
        ])
    assert " DEBUG " in server.output
    assert_no_secret(server.output, server.secrets)


def test_gate_server_logs_no_secret(tmp_path):
    with start_gate_server(tmp_path) as server:
        _exercise(server, GATE_TOKEN, [
            ("POST", "/v1/sessions", {"json": {"purpose": "read my balance"}}),
            ("POST", "/v1/sessions/s-0/decisions", {"json": {
                "call_id": "c", "tool": "get_balance", "arguments": {}}}),
        ])
        _exercise(server, APPROVALS_TOKEN, [
            ("GET", "/v1/approvals", {}),
            ("POST", "/v1/approvals/q-0/approve", {"json": {}}),
        ])
    assert " DEBUG " in server.output
    assert_no_secret(server.output, server.secrets)


def test_approvals_server_logs_no_secret(tmp_path):
    with start_approvals_server(tmp_path) as server:
        _exercise(server, APPROVALS_TOKEN, [
            ("GET", "/approvals", {}),
            ("POST", "/approvals/q-0/approve", {"json": {}}),
            ("POST", "/approvals/q-0", {"json": {"body": {}}}),
        ])
    assert_no_secret(server.output, server.secrets)


def test_witness_logs_no_secret(tmp_path):
    with start_witness(tmp_path) as server:
        _exercise(server, WRONG_TOKEN, [
            ("POST", "/add-checkpoint", {"content": b"old 0\n\nnot a checkpoint\n"}),
        ])
    assert_no_secret(server.output, server.secrets)


def test_mcp_proxy_logs_no_secret(tmp_path):
    pytest.importorskip("mcp", reason="install the mcp extra")
    with start_mcp_proxy(tmp_path) as server:
        _exercise(server, MCP_TOKEN, [
            ("POST", "", {
                "json": {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                "headers": {"Accept": "application/json, text/event-stream"}}),
        ])
    assert " DEBUG " in server.output
    assert_no_secret(server.output, server.secrets)


# -- commands ---------------------------------------------------------------------


def _run(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [AGENTGATE, *arguments], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )
    return completed.stdout + completed.stderr


def test_keygen_prints_no_private_key(tmp_path):
    output = _run("keygen", "--name", "agentgate.test/keygen", "--out", "keys",
                  cwd=tmp_path)
    key = (tmp_path / "keys" / "agentgate.test_keygen.key").read_text().strip()

    assert_no_secret(output, Secrets((), (key,)))


def test_witness_keygen_prints_no_private_key(tmp_path):
    output = _run("witness", "keygen", "--name", "witness.test/keygen", "--out",
                  "keys", cwd=tmp_path)
    key = (tmp_path / "keys" / "witness.test_keygen.key").read_text().strip()

    assert_no_secret(output, Secrets((), (key,)))


def test_log_commands_print_no_private_key(tmp_path):
    signer = Signer.from_seed(ORIGIN, LOG_SEED)
    key_file = tmp_path / "log.key"
    secret_file(key_file, signer.signer_key())
    entry = tmp_path / "entry.json"
    entry.write_text('{"n":1,"type":"decision","version":1}')

    output = _run("log", "init", "--db", "log.db", "--key", str(key_file), cwd=tmp_path)
    output += _run("log", "append", "--db", "log.db", "--key", str(key_file),
                   str(entry), cwd=tmp_path)

    assert ORIGIN in output, output
    assert_no_secret(output, Secrets((), (signer.signer_key(),)))


def test_approval_commands_print_no_private_key(tmp_path):
    approver = Identity.from_seed("approver.test", APPROVER_SEED)
    key_file = tmp_path / "approver.key"
    approver.save(key_file)
    ApprovalStore.open(str(tmp_path / "vault.db")).close()

    output = _run("approvals", "approve", "q-0", "--store", "vault.db", "--key",
                  str(key_file), cwd=tmp_path)

    assert "q-0" in output, output
    assert_no_secret(output, Secrets((), (approver.signer_key,)))


def test_serve_with_bad_token_prints_no_token(tmp_path):
    """A token that is rejected at start is not shown in the message."""
    signer = Signer.from_seed(ORIGIN, LOG_SEED)
    key_file = tmp_path / "log.key"
    secret_file(key_file, signer.signer_key())
    short = "short secret"

    output = _run("serve", "--db", "log.db", "--key", str(key_file), "--port", "0",
                  cwd=tmp_path, env={"AGENTGATE_WRITE_TOKEN": short})

    assert "write token" in output, output
    assert short not in output


# -- the library ------------------------------------------------------------------


def test_library_debug_records_hold_no_secret(tmp_path, caplog):
    signer = Signer.from_seed(ORIGIN, LOG_SEED)
    approver = Identity.from_seed("approver.test", APPROVER_SEED)
    key_file = secret_file(tmp_path / "log.key", signer.signer_key())
    token_file = secret_file(tmp_path / "write.token", LOG_TOKEN)
    approver_file = tmp_path / "approver.key"
    approver.save(approver_file)

    with caplog.at_level(logging.DEBUG):
        loaded = load_signer(key_file)
        Identity.load(approver_file)
        token = load_write_token(token_file)
        settings = ServerSettings(database=str(tmp_path / "log.db"),
                                  signers=[loaded], write_token=token)
        service = LogService(settings)
        service.start()
        try:
            service.ledger.append(b'{"n":1,"type":"decision","version":1}')
        finally:
            service.stop()
        Ledger.open(str(tmp_path / "log.db"), loaded).close()

    text = "\n".join(record.getMessage() for record in caplog.records)
    text += "\n" + repr(settings) + repr(loaded) + str(loaded)
    assert_no_secret(text, Secrets((LOG_TOKEN,), (signer.signer_key(),
                                                  approver.signer_key)))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_mode_errors_hold_no_secret(tmp_path, mode):
    signer = Signer.from_seed(ORIGIN, LOG_SEED)
    approver = Identity.from_seed("approver.test", APPROVER_SEED)
    files = {
        "log.key": signer.signer_key(),
        "approver.key": approver.signer_key,
        "write.token": LOG_TOKEN,
    }
    messages = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text + "\n")
        path.chmod(mode)
    for load, name in ((load_signer, "log.key"), (Identity.load, "approver.key"),
                       (load_write_token, "write.token")):
        with pytest.raises((KeyFileError, ConfigError)) as caught:
            load(tmp_path / name)
        messages.append(str(caught.value))

    assert all("chmod 600" in message for message in messages), messages
    assert_no_secret("\n".join(messages), Secrets(
        (LOG_TOKEN,), (signer.signer_key(), approver.signer_key)))


def test_signer_key_not_echoed(tmp_path):
    # Found by a new user: a principal's .key file named as a trust anchor
    # printed the whole private key in the configuration error.
    from enforcement.gate_config import _key_text
    from enforcement.identity import parse_verifier_key
    from ledger.keys import VerifierKey

    identity = Identity.generate("principal.example")
    secret = identity.signer_key
    seed = secret.rsplit("+", 1)[-1]
    key_file = tmp_path / "principal.key"
    key_file.write_text(secret + "\n")
    key_file.chmod(0o600)

    messages = []
    for attempt in (lambda: parse_verifier_key(secret),
                    lambda: _key_text("principal.key", tmp_path, "trust_anchors"),
                    lambda: _key_text(secret, tmp_path, "trust_anchors"),
                    lambda: VerifierKey.parse(secret)):
        with pytest.raises(Exception) as caught:
            attempt()
        messages.append(str(caught.value))

    for message in messages:
        assert seed not in message
        assert "pass the public verifier key" in message
