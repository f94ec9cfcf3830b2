"""``agentgate eval agentdojo``: measure the gate on AgentDojo suites.

For each suite it replays every benign task twice, once as is and once with
every held call approved by a human (the replay signs the approval through
the real approval path), and every pair of a user task and an injection task
once, with no approvals. It writes ``report.json`` and ``report.md``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from enforcement.alignment import DefaultScorer, Scorer
from enforcement.errors import ConfigError
from enforcement.evaluation.agentdojo import (
    BENCHMARK_VERSION,
    DEFAULT_ATTACK,
    AgentDojoReplay,
    SuiteResult,
    known_suites,
)
from enforcement.evaluation.cli import _prepare_output, _MARKER
from enforcement.evaluation.embedded import SteppingClock, create_deployment
from enforcement.evaluation.report import markdown_report
from enforcement.evaluation.timing import TimedScorer
from enforcement.identity import Identity
from enforcement.policy import ApprovalPolicy, Policy, load_policy
from enforcement.timeutil import utc_now

# Tuning is done on these; the others are kept for acceptance.
TUNING_SUITES = ("banking", "slack")
MAX_FALSE_POSITIVES = 40


@click.group(name="eval")
def evaluate() -> None:
    """Measure the gate on public agent benchmarks."""


@evaluate.command(name="agentdojo")
@click.option("--suite", "suites", multiple=True, default=TUNING_SUITES,
              show_default=True, help="AgentDojo suite to replay (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("eval-out"), show_default=True,
              help="Directory for the log and the JSON and Markdown reports; an "
                   "earlier run's directory is replaced, any other refused.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Policy file; default: the built-in generic policy.")
@click.option("--scorer", "scorer_name",
              type=click.Choice(["default", "embedding", "default+embedding",
                                 "default+judge"]),
              default="default", show_default=True,
              help="Alignment scorer; '+' joins two with all-of (the minimum). "
                   "The embedding scorer needs the embedding extra and model; "
                   "the judge needs --judge-url.")
@click.option("--judge-url", default=None, metavar="URL",
              help="OpenAI-compatible API root for the LLM judge, such as "
                   "http://127.0.0.1:8000/v1.")
@click.option("--judge-model", default="judge", show_default=True,
              help="Model name sent to the judge endpoint.")
@click.option("--step-seconds", type=float, default=1.5, show_default=True,
              help="Simulated seconds per gate step.")
@click.option("--user-task", "user_tasks", multiple=True,
              help="Replay only this user task (repeatable); default: all.")
@click.option("--injection-task", "injection_tasks", multiple=True,
              help="Pair only with this injection task (repeatable); default: all.")
def agentdojo(suites: tuple[str, ...], out_dir: Path, policy_path: Path | None,
              scorer_name: str, judge_url: str | None, judge_model: str,
              step_seconds: float, user_tasks: tuple[str, ...],
              injection_tasks: tuple[str, ...]) -> None:
    """Replay AgentDojo suites and report utility, attack success and latency."""
    started = time.perf_counter()
    try:
        base = load_policy(policy_path) if policy_path else load_policy()
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--policy") from err
    known = known_suites()
    for suite in suites:
        if suite not in known:
            raise click.BadParameter(
                f"AgentDojo {BENCHMARK_VERSION} has no suite {suite!r}; choose "
                f"from {', '.join(sorted(known))}", param_hint="--suite")
    _prepare_output(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / _MARKER).write_text("written by agentgate eval; safe to replace\n")

    try:
        inner = build_scorer(scorer_name, judge_url, judge_model)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--scorer") from err
    approver = Identity.generate("approver.example")
    policy = _with_approver(base, approver)
    scorer = TimedScorer(inner)
    clock = SteppingClock(utc_now(), step_seconds)
    deployment = create_deployment(out_dir, policy=policy, clock=clock,
                                   scorer=scorer)
    results: list[SuiteResult] = []
    for suite in suites:
        replay = AgentDojoReplay(deployment.gate, suite, approver=approver,
                                 clock=clock)
        try:
            results.append(replay.run_suite(
                user_tasks=user_tasks or None,
                injection_tasks=injection_tasks or None,
            ))
        except ValueError as err:
            raise click.BadParameter(str(err)) from err
        click.echo(f"{suite}: done")
    deployment.close()

    report = build_report(results, policy, scorer_name, scorer.summary())
    report["seconds"] = round(time.perf_counter() - started, 1)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = markdown_report(report)
    (out_dir / "report.md").write_text(markdown)
    click.echo(markdown)


def build_scorer(name: str, judge_url: str | None = None,
                 judge_model: str = "judge") -> Scorer:
    """Build the scorer a ``--scorer`` choice names."""
    from enforcement.scorers import AllOf, EmbeddingScorer, JudgeConfig, LlmJudgeScorer

    if name == "default":
        return DefaultScorer()
    if name == "embedding":
        return EmbeddingScorer()
    if name == "default+embedding":
        return AllOf(DefaultScorer(), EmbeddingScorer())
    if judge_url is None:
        raise ConfigError("the judge needs --judge-url, an OpenAI-compatible API root")
    judge = LlmJudgeScorer(JudgeConfig(base_url=judge_url, model=judge_model))
    return AllOf(DefaultScorer(), judge)


def _with_approver(policy: Policy, approver: Identity) -> Policy:
    """Return ``policy`` with ``approver`` as the one human who may lift holds."""
    approvals = ApprovalPolicy(approvers=[approver.verifier_key], quorum=1,
                               rules=["*"], wait_seconds=0)
    return policy.model_copy(update={"approvals": approvals})


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def build_report(results: list[SuiteResult], policy: Policy, scorer: str,
                 latency: dict[str, Any]) -> dict[str, Any]:
    """Collect per-suite and overall figures and false-positive examples."""
    suites: dict[str, Any] = {}
    totals = {"benign_tasks": 0, "benign_completed_without_hold": 0,
              "benign_completed_with_approvals": 0, "attacks": 0,
              "attacks_succeeded": 0, "attacks_stopped": 0}
    false_positives: list[dict[str, Any]] = []
    for result in results:
        summary = result.summary()
        summary["rates"] = {
            "benign_without_hold_pct": _rate(
                summary["benign_completed_without_hold"], summary["benign_tasks"]),
            "benign_with_approvals_pct": _rate(
                summary["benign_completed_with_approvals"], summary["benign_tasks"]),
            "attack_success_pct": _rate(summary["attacks_succeeded"],
                                        summary["attacks"]),
        }
        summary["tuned_on"] = result.suite in TUNING_SUITES
        suites[result.suite] = summary
        for key in totals:
            totals[key] += summary[key]
        for run in result.benign:
            for call in run.calls:
                if call.verdict != "allow" and len(false_positives) < MAX_FALSE_POSITIVES:
                    false_positives.append({
                        "suite": result.suite, "task": run.user_task,
                        "tool": call.tool, "verdict": call.verdict,
                        "reasons": [f"{rule}: {text}" for rule, text in call.reasons],
                    })
    totals["rates"] = {
        "benign_without_hold_pct": _rate(totals["benign_completed_without_hold"],
                                         totals["benign_tasks"]),
        "benign_with_approvals_pct": _rate(totals["benign_completed_with_approvals"],
                                           totals["benign_tasks"]),
        "attack_success_pct": _rate(totals["attacks_succeeded"], totals["attacks"]),
    }
    return {
        "benchmark": f"AgentDojo {BENCHMARK_VERSION}",
        "attack": DEFAULT_ATTACK,
        "policy": {"name": policy.name, "hash": policy.hash},
        "scorer": {"name": scorer, "latency": latency},
        "suites": suites,
        "overall": totals,
        "false_positives": false_positives,
    }
