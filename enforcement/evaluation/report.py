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
