"""Tables for the AgentDojo replay, as ``agentgate demo`` prints them."""

from __future__ import annotations

from enforcement.evaluation.agentdojo import SuiteResult
from enforcement.evaluation.audit import AuditResult


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)


def suite_table(result: SuiteResult, version: str, attack: str) -> str:
    summary = result.summary()
    calls = summary["benign_calls"]
    benign = summary["benign_tasks"]
    attacks = summary["attacks"]
    rows = [
        ("benign calls allowed / held / denied",
         f"{calls['allow']} / {calls['hold']} / {calls['deny']}"),
        ("benign tasks completed without a hold",
         f"{summary['benign_completed_without_hold']} of {benign}"),
        ("benign tasks with a hold", f"{summary['benign_with_hold']} of {benign}"),
        ("injection attacks stopped (a call denied or held)",
         f"{summary['attacks_stopped']} of {attacks}"),
        ("attacks that got through (AgentDojo security check)",
         f"{summary['attacks_succeeded']} of {attacks}"),
    ]
    title = f"AgentDojo {version}, suite {result.suite}, attack {attack}"
    return _table(title, rows)


def ledger_table(size: int, checkpoint: str) -> str:
    indented = "\n".join("    " + line for line in checkpoint.rstrip("\n").split("\n"))
    return _table("Transparency log", [("tree size", str(size))]) + (
        "\n  final checkpoint:\n" + indented
    )


def audit_table(audit: AuditResult) -> str:
    rows = [
        ("receipts verified", f"{audit.receipts_verified} of {audit.receipts}"),
        ("checkpoints proved consistent with the final one",
         f"{audit.consistency_verified} of {audit.checkpoints}"),
        ("consistency from first to last checkpoint",
         f"sizes {audit.first_size} -> {audit.last_size}: "
         + ("verified" if audit.passed else "FAILED")),
        ("result", "PASS" if audit.passed else "FAIL"),
    ]
    text = _table("Independent verification (verifier package only)", rows)
    for failure in audit.failures[:10]:
        text += f"\n  ! {failure}"
    return text


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def markdown_report(report: dict) -> str:
    """Render the ``agentgate eval agentdojo`` report as Markdown."""
    lines = [
        f"# {report['benchmark']}, attack `{report['attack']}`",
        "",
        f"Policy `{report['policy']['name']}` ({report['policy']['hash'][:16]}...), "
        f"scorer `{report['scorer']['name']}`.",
        "",
        "| suite | tuned on | benign tasks | completed without a hold | "
        "completed once holds are approved | attacks | attacks that succeeded | "
        "attacks stopped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = list(report["suites"].items()) + [("overall", report["overall"])]
    for name, suite in rows:
        rates = suite["rates"]
        tuned = "" if name == "overall" else ("yes" if suite["tuned_on"] else "no")
        lines.append(
            f"| {name} | {tuned} | {suite['benign_tasks']} | "
            f"{suite['benign_completed_without_hold']} "
            f"({_percent(rates['benign_without_hold_pct'])}) | "
            f"{suite['benign_completed_with_approvals']} "
            f"({_percent(rates['benign_with_approvals_pct'])}) | "
            f"{suite['attacks']} | {suite['attacks_succeeded']} "
            f"({_percent(rates['attack_success_pct'])}) | "
            f"{suite['attacks_stopped']} |"
        )
    latency = report["scorer"]["latency"]
    if latency.get("calls"):
        lines += ["", f"Scorer latency over {latency['calls']} calls: p50 "
                      f"{latency['p50_us']} µs, p99 {latency['p99_us']} µs."]
    for name, suite in report["suites"].items():
        lines += ["", f"## {name}: attacks per injection task", "",
                  "| injection task | pairs | stopped | succeeded |", "|---|---|---|---|"]
        for task, row in sorted(suite["per_injection_task"].items(),
                                key=lambda item: int(item[0].rsplit("_", 1)[-1])):
            lines.append(f"| {task} | {row['pairs']} | {row['stopped']} | "
                         f"{row['succeeded']} |")
    if report["false_positives"]:
        lines += ["", "## Benign calls that were held or denied", ""]
        for example in report["false_positives"]:
            reasons = "; ".join(example["reasons"])
            lines.append(f"- {example['suite']} {example['task']} `{example['tool']}` "
                         f"{example['verdict']}: {reasons}")
    return "\n".join(lines) + "\n"
