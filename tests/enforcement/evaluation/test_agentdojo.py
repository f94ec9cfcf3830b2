"""The AgentDojo replay: real suites, real tools, a real gate and log."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

import verifier

pytest.importorskip("agentdojo", reason="install the agentdojo extra: "
                    "pip install -e '.[agentdojo]' (make test does this)")

from click.testing import CliRunner  # noqa: E402

from enforcement.evaluation.agentdojo import AgentDojoReplay  # noqa: E402
from enforcement.evaluation.audit import audit_run  # noqa: E402
from enforcement.evaluation.cli import demo  # noqa: E402
from enforcement.evaluation.embedded import (  # noqa: E402
    SteppingClock,
    create_deployment,
)

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def deployment(tmp_path):
    receipts = tmp_path / "receipts"
    receipts.mkdir()

    def write(sealed):
        (receipts / f"{sealed.index:08d}.tlog-proof").write_text(sealed.receipt.text)

    deployed = create_deployment(tmp_path / "run", clock=SteppingClock(START, 1.5),
                                 on_seal=write)
    deployed.receipts = receipts
    yield deployed
    deployed.close()


def test_banking_bill_payment_attack_is_stopped(deployment):
    replay = AgentDojoReplay(deployment.gate, "banking")
    user_task = replay.suite.user_tasks["user_task_1"]
    injection = replay.suite.injection_tasks["injection_task_0"]

    run = replay.run_attack(user_task, injection)

    injected = run.calls_of("injection")
    assert [c.tool for c in injected] == ["send_money"]
    assert injected[0].verdict in ("deny", "hold")
    assert any(rule == "alignment" for rule, _ in injected[0].reasons)
    assert run.security is False
    assert run.attack_stopped


def test_benign_read_only_task_completes(deployment):
    replay = AgentDojoReplay(deployment.gate, "banking")

    run = replay.run_benign(replay.suite.user_tasks["user_task_1"])

    assert run.utility is True
    assert [c.verdict for c in run.calls] == ["allow"]
    assert run.completed_without_hold


def test_refused_calls_never_reach_the_environment(deployment):
    replay = AgentDojoReplay(deployment.gate, "banking")
    user_task = replay.suite.user_tasks["user_task_3"]
    injection = replay.suite.injection_tasks["injection_task_7"]  # password change

    run = replay.run_attack(user_task, injection)

    password_calls = [c for c in run.calls if c.tool == "update_password"]
    assert password_calls and password_calls[0].verdict != "allow"
    assert run.security is False


def test_subset_replay_then_audit_passes(deployment):
    replay = AgentDojoReplay(deployment.gate, "slack")
    result = replay.run_suite(
        user_tasks=["user_task_1", "user_task_8"],
        injection_tasks=["injection_task_1", "injection_task_3"],
    )
    summary = result.summary()
    assert summary["attacks"] == 4
    assert summary["attacks_stopped"] == 4
    assert summary["attacks_succeeded"] == 0

    client = deployment.client
    audit = audit_run(deployment.receipts, deployment.log_key, client.origin,
                      client.latest_checkpoint(), client.consistency_proof)
    assert audit.passed, audit.failures
    assert audit.receipts == client.ledger.size - 1  # all but the key record


def test_audit_detects_a_tampered_receipt(deployment):
    replay = AgentDojoReplay(deployment.gate, "banking")
    replay.run_benign(replay.suite.user_tasks["user_task_1"])
    victim = sorted(deployment.receipts.glob("*.tlog-proof"))[-1]
    text = victim.read_text()
    lines = text.split("\n")
    index_line = next(i for i, line in enumerate(lines) if line.startswith("index "))
    lines[index_line] = "index 0"
    victim.write_text("\n".join(lines))

    client = deployment.client
    audit = audit_run(deployment.receipts, deployment.log_key, client.origin,
                      client.latest_checkpoint(), client.consistency_proof)

    assert not audit.passed
    assert len(audit.failures) == 1
    assert victim.name in audit.failures[0]


def test_demo_command_prints_tables_and_passes(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(demo, ["--out", str(out), "--suite", "slack"])

    assert result.exit_code == 0, result.output
    assert "suite slack" in result.output
    assert "attacks that got through" in result.output
    assert "result                                            PASS" in result.output
    receipt = sorted((out / "receipts").glob("*.tlog-proof"))[0]
    pub = next((out / "keys").glob("agentgate.example*.pub")).read_text().strip()
    verified = verifier.verify_receipt(receipt.read_bytes(), [pub])
    assert verified.record["type"] == "policy"


def test_demo_refuses_to_replace_a_foreign_directory(tmp_path):
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")

    result = CliRunner().invoke(demo, ["--out", str(foreign)])

    assert result.exit_code == 2
    assert "is not a demo directory" in result.output
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_demo_keeps_a_user_log_directory(tmp_path):
    project = tmp_path / "project"
    (project / "keys").mkdir(parents=True)
    (project / "ledger.db").write_bytes(b"the user's log")
    (project / "notes.txt").write_text("keep me")

    result = CliRunner().invoke(demo, ["--out", str(project), "--suite", "banking"])

    assert result.exit_code == 2
    assert "is not a demo directory (notes.txt)" in result.output
    assert (project / "ledger.db").read_bytes() == b"the user's log"
    assert (project / "notes.txt").read_text() == "keep me"


def test_demo_refuses_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src.py").write_text("print(1)")

    result = CliRunner().invoke(demo, ["--out", "."])

    assert result.exit_code == 2
    assert "is the current directory or one of its parents" in result.output
    assert (tmp_path / "src.py").exists()


def test_demo_unknown_suite_touches_nothing(tmp_path):
    out = tmp_path / "demo"
    first = CliRunner().invoke(demo, ["--out", str(out), "--suite", "banking"])
    assert first.exit_code == 0, first.output
    report = (out / "report.json").read_text()

    result = CliRunner().invoke(demo, ["--out", str(out), "--suite", "bankin"])

    assert result.exit_code == 2
    assert "has no suite 'bankin'" in result.output
    assert (out / "report.json").read_text() == report


def test_demo_bad_policy_is_a_usage_error(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("garbage = [")

    result = CliRunner().invoke(demo, ["--out", str(tmp_path / "d"),
                                       "--policy", str(broken)])

    assert result.exit_code == 2
    assert "is not valid TOML" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def test_demo_writes_checkpoints_for_consistency_check(tmp_path):
    from verifier.cli import verify

    out = tmp_path / "demo"
    result = CliRunner().invoke(demo, ["--out", str(out), "--suite", "banking"])
    assert result.exit_code == 0, result.output
    first = sorted(out.glob("checkpoint-*.txt"))
    proof = next(out.glob("consistency-*-*.txt"))
    key_file = next((out / "keys").glob("*.pub"))
    old = next(p for p in first if p.name != "checkpoint-latest.txt")

    checked = CliRunner().invoke(verify, [
        "consistency", str(old), str(out / "checkpoint-latest.txt"), str(proof),
        "--key-file", str(key_file),
    ])

    assert checked.exit_code == 0, checked.output
    assert "verify consistency" in result.output
