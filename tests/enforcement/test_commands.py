"""``agentgate approvals list|approve|deny`` and ``agentgate disclose`` against
a real gate's private SQLite file: output, exit codes and the round trip."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from click.testing import CliRunner

from enforcement import jcs
from enforcement.cli import main
from enforcement.errors import ApprovalRequired, Denied
from enforcement.timeutil import format_time
from tests.enforcement.test_approvals import (
    ALICE,
    BOB,
    IBAN,
    LARGE,
    MALLORY,
    RENT,
    Counter,
    approvals_policy,
)


@pytest.fixture
def approving(make_harness):
    return make_harness(policy=approvals_policy())


@pytest.fixture
def keys(tmp_path):
    paths = {}
    for identity in (ALICE, BOB, MALLORY):
        path = tmp_path / f"{identity.name}.key"
        identity.save(path)
        paths[identity.name] = str(path)
    return paths


def run(*arguments: str):
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def held_request(harness, session) -> str:
    with pytest.raises(ApprovalRequired) as caught:
        session.call("send_money", LARGE, Counter())
    return caught.value.request


def vault_path(harness) -> str:
    return str(harness.directory / "vault.db")


def sign(harness, verb, request_id, key, *extra):
    return run("approvals", verb, request_id, "--store", vault_path(harness),
               "--key", key, "--now", format_time(harness.clock()), *extra)


# -- approvals list ----------------------------------------------------------------


def test_list_shows_pending_call(approving):
    with approving.gate.session(RENT) as session:
        request_id = held_request(approving, session)

    result = run("approvals", "list", "--store", vault_path(approving))

    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    listed = json.loads(line)
    assert listed["request"] == request_id
    assert listed["status"] == "pending"
    assert listed["call"] == {"tool": "send_money", "arguments": LARGE}
    assert listed["rules"] == ["value.large-amount"]
    assert listed["approvers"] == [ALICE.verifier_key, BOB.verifier_key]


def test_list_by_status(approving, keys):
    with approving.gate.session(RENT) as session:
        request_id = held_request(approving, session)
        sign(approving, "approve", request_id, keys["alice.approver"])
        session.call("send_money", LARGE, Counter())

    pending = run("approvals", "list", "--store", vault_path(approving))
    used = run("approvals", "list", "--store", vault_path(approving),
               "--status", "used")

    assert pending.output == ""
    assert json.loads(used.output)["request"] == request_id


def test_list_missing_store_exits_2(tmp_path):
    result = run("approvals", "list", "--store", str(tmp_path / "absent.db"))

    assert result.exit_code == 2
    assert "does not exist" in result.output


# -- approve and deny ----------------------------------------------------------------


def test_cli_approval_lets_call_run(approving, keys):
    tool = Counter()
    with approving.gate.session(RENT) as session:
        request_id = held_request(approving, session)
        result = sign(approving, "approve", request_id, keys["alice.approver"])
        assert session.call("send_money", LARGE, tool) == "paid"

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["approval"]["verdict"] == "approve"
    assert printed["approval"]["approver"] == ALICE.verifier_key
    assert printed["approval"]["request"] == request_id
    assert tool.runs == 1
    assert approving.records_of("approval")[-1]["signature"] == printed["signature"]


def test_cli_denial_denies(approving, keys):
    with approving.gate.session(RENT) as session:
        request_id = held_request(approving, session)
        result = sign(approving, "deny", request_id, keys["bob.approver"])
        with pytest.raises(Denied) as caught:
            session.call("send_money", LARGE, Counter())

    assert result.exit_code == 0, result.output
    assert caught.value.reasons[-1].text == (
        f"request {request_id} denied by {BOB.key_id}")


def test_cli_stranger_key_exits_1(approving, keys):
    with approving.gate.session(RENT) as session:
        request_id = held_request(approving, session)

    result = sign(approving, "approve", request_id, keys["mallory.approver"])

    assert result.exit_code == 1
    assert result.output == (
        f"Error: approval by {MALLORY.key_id}: the key is not one of the policy's "
        "approvers\n")


def test_cli_unknown_request_exits_1(approving, keys):
    result = sign(approving, "approve", "q-" + "0" * 32, keys["alice.approver"])

    assert result.exit_code == 1
    assert result.output == (
        f"Error: no approval request 'q-{'0' * 32}' in this store\n")


def test_cli_expiry_past_request_exits_1(approving, keys):
    with approving.gate.session(RENT) as session:
        request_id = held_request(approving, session)

    result = sign(approving, "approve", request_id, keys["alice.approver"],
                  "--expiry-seconds", "601")

    assert result.exit_code == 1
    assert "must lie after now" in result.output
    assert "not after the request's expiry 2026-12-04T10:10:00.000000Z" in (
        result.output)


def test_cli_readable_key_file_exits_2(approving, keys):
    with approving.gate.session(RENT) as session:
        request_id = held_request(approving, session)
    path = keys["alice.approver"]
    os.chmod(path, 0o644)

    result = sign(approving, "approve", request_id, path)

    assert result.exit_code == 2
    assert f"key file {path} has mode 644; others can read it. Run: chmod 600" in (
        result.output)


def test_cli_bad_now_exits_2(approving, keys):
    result = run("approvals", "approve", "q-1", "--store", vault_path(approving),
                 "--key", keys["alice.approver"], "--now", "yesterday")

    assert result.exit_code == 2
    assert "--now: expected an RFC 3339 UTC time" in result.output


# -- disclose ------------------------------------------------------------------------


@pytest.fixture
def sealed_payment(harness):
    with harness.gate.session(RENT) as session:
        session.call("send_money", {"recipient": IBAN, "amount": 900}, Counter())
    return harness.records_of("decision")[-1]


def recomputed(opening: dict) -> str:
    salt = bytes.fromhex(opening["salt"])
    return hashlib.sha256(salt + jcs.canonical(opening["value"])).hexdigest()


def test_disclose_by_commitment_round_trip(harness, sealed_payment):
    commitment = sealed_payment["arguments"]["recipient"]

    result = run("disclose", "--vault", vault_path(harness),
                 "--commitment", commitment)

    assert result.exit_code == 0, result.output
    opening = json.loads(result.output)
    assert opening["value"] == IBAN
    assert opening["argument"] == "recipient"
    assert opening["record"] == sealed_payment["id"]
    assert opening["commitment"] == commitment
    assert recomputed(opening) == commitment


def test_disclose_by_record_and_argument(harness, sealed_payment):
    result = run("disclose", "--vault", vault_path(harness),
                 "--record", sealed_payment["id"], "--argument", "amount")

    assert result.exit_code == 0, result.output
    opening = json.loads(result.output)
    assert opening["value"] == 900
    assert recomputed(opening) == sealed_payment["arguments"]["amount"]


def test_disclose_outcome_result(harness, sealed_payment):
    outcome = harness.records_of("outcome")[-1]

    result = run("disclose", "--vault", vault_path(harness),
                 "--record", outcome["id"], "--argument", "result")

    assert json.loads(result.output)["value"] == "paid"
    assert recomputed(json.loads(result.output)) == outcome["result"]


def test_disclose_unknown_commitment_exits_1(harness):
    result = run("disclose", "--vault", vault_path(harness),
                 "--commitment", "ab" * 32)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: no opening for {'ab' * 32} in ")


@pytest.mark.parametrize(("options", "message"), [
    ([], "pass either --commitment or --record with --argument"),
    (["--commitment", "ab", "--record", "d-1"],
     "pass either --commitment or --record with --argument"),
    (["--record", "d-1"], "--record needs --argument NAME"),
    (["--commitment", "ab", "--argument", "x"],
     "--argument goes with --record, not --commitment"),
])
def test_disclose_usage_errors_exit_2(harness, options, message):
    result = run("disclose", "--vault", vault_path(harness), *options)

    assert result.exit_code == 2
    assert message in result.output


def test_disclose_request_arguments(approving):
    with approving.gate.session(RENT) as session:
        held_request(approving, session)
    request = approving.records_of("approval-request")[-1]

    result = run("disclose", "--vault", vault_path(approving),
                 "--record", request["id"], "--argument", "arguments")

    opening = json.loads(result.output)
    assert opening["value"] == LARGE
    assert recomputed(opening) == request["arguments"]



# -- approvals serve ------------------------------------------------------------------


def test_serve_without_token_exits_2(approving, monkeypatch):
    monkeypatch.delenv("AGENTGATE_APPROVALS_TOKEN", raising=False)

    result = run("approvals", "serve", "--store", vault_path(approving))

    assert result.exit_code == 2
    assert result.output == (
        "Error: no approvers' token: pass its file (mode 0600) or set "
        "AGENTGATE_APPROVALS_TOKEN\n")


def test_serve_short_token_exits_2(approving, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    token_file.chmod(0o600)

    result = run("approvals", "serve", "--store", vault_path(approving),
                 "--token-file", str(token_file))

    assert result.exit_code == 2
    assert "write token is 5 characters; expected 16 to 1024" in result.output
