"""An auditor opens one sealed argument: disclose, then verify offline."""

import json
from datetime import UTC, datetime

from click.testing import CliRunner

from enforcement.commands import disclose
from enforcement.evaluation.embedded import SteppingClock, create_deployment
from verifier.cli import verify


def test_disclosed_argument_verifies_against_receipt(tmp_path):
    receipts = {}
    deployment = create_deployment(
        tmp_path / "run", clock=SteppingClock(datetime(2026, 1, 5, tzinfo=UTC), 1.0),
        on_seal=lambda sealed: receipts.__setitem__(sealed.index, sealed.receipt),
    )
    session = deployment.gate.session("Pay 12 to GB29NWBK60161331926819")
    session.call("send_money", {"recipient": "GB29NWBK60161331926819",
                                "amount": 12}, lambda: "ok")
    decision = session.decisions[-1]
    deployment.close()
    receipt_file = tmp_path / "decision.tlog-proof"
    receipt_file.write_text(receipts[decision.index].text)
    key_file = tmp_path / "log.pub"
    key_file.write_text(deployment.log_key + "\n")

    disclosed = CliRunner().invoke(disclose, [
        "--vault", str(tmp_path / "run" / "vault.db"),
        "--record", decision.id, "--argument", "recipient",
    ])
    assert disclosed.exit_code == 0, disclosed.output
    opening_file = tmp_path / "opening.json"
    opening_file.write_text(disclosed.output)

    checked = CliRunner().invoke(verify, [
        "opening", str(opening_file), str(receipt_file), "--key-file", str(key_file),
    ])
    assert checked.exit_code == 0, checked.output
    assert "arguments.recipient" in checked.output

    forged = json.loads(disclosed.output)
    forged["value"] = "DE89370400440532013000"
    opening_file.write_text(json.dumps(forged))
    rejected = CliRunner().invoke(verify, [
        "opening", str(opening_file), str(receipt_file), "--key-file", str(key_file),
    ])
    assert rejected.exit_code == 1
    assert "value and salt give" in rejected.output
