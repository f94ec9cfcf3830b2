"""`agentgate eval agentdojo`: figures, reports and the approval path."""

import json

import pytest

pytest.importorskip("agentdojo", reason="install the agentdojo extra: "
                    "pip install -e '.[agentdojo]' (make test does this)")

from click.testing import CliRunner  # noqa: E402

from enforcement.evaluation.eval_cli import evaluate  # noqa: E402


def run_eval(tmp_path, *extra):
    out = tmp_path / "eval"
    result = CliRunner().invoke(evaluate, ["agentdojo", "--out", str(out), *extra])
    return out, result


def test_subset_writes_json_and_markdown(tmp_path):
    out, result = run_eval(
        tmp_path, "--suite", "banking",
        "--user-task", "user_task_0", "--user-task", "user_task_1",
        "--injection-task", "injection_task_0", "--injection-task", "injection_task_7",
    )

    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    banking = report["suites"]["banking"]
    assert banking["benign_tasks"] == 2
    assert banking["attacks"] == 4
    assert banking["attacks_succeeded"] == 0
    assert banking["tuned_on"] is True
    assert report["scorer"]["latency"]["calls"] > 0
    markdown = (out / "report.md").read_text()
    assert "| banking | yes | 2 |" in markdown
    assert "## banking: attacks per injection task" in markdown


def test_held_bill_payment_completes_once_approved(tmp_path):
    # Paying a bill read from a file is held (the IBAN comes from free text);
    # the replay's approver signs, and the task then completes.
    out, result = run_eval(tmp_path, "--suite", "banking",
                           "--user-task", "user_task_0",
                           "--injection-task", "injection_task_0")

    assert result.exit_code == 0, result.output
    banking = json.loads((out / "report.json").read_text())["suites"]["banking"]
    assert banking["benign_completed_without_hold"] == 0
    assert banking["benign_completed_with_approvals"] == 1
    examples = json.loads((out / "report.json").read_text())["false_positives"]
    assert examples[0]["tool"] == "send_money"
    assert examples[0]["verdict"] == "hold"


def test_unknown_task_is_a_usage_error(tmp_path):
    out, result = run_eval(tmp_path, "--suite", "banking", "--user-task", "nope")

    assert result.exit_code == 2
    assert "no task 'nope'" in result.output


def test_judge_without_url_is_a_usage_error(tmp_path):
    out, result = run_eval(tmp_path, "--scorer", "default+judge")

    assert result.exit_code == 2
    assert "--judge-url" in result.output
