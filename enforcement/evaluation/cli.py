"""``agentgate demo``: replay AgentDojo through a fresh embedded gate."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import click

from enforcement.errors import ConfigError
from enforcement.evaluation.agentdojo import (
    BENCHMARK_VERSION,
    DEFAULT_ATTACK,
    AgentDojoReplay,
    known_suites,
)
from enforcement.evaluation.audit import audit_run
from enforcement.evaluation.embedded import SteppingClock, create_deployment
from enforcement.evaluation.report import audit_table, ledger_table, suite_table
from enforcement.policy import load_policy
from enforcement.timeutil import utc_now
from ledger.keys import key_file_stem

DEFAULT_SUITES = ("banking", "slack")
# A file the demo writes into its output directory. Only a directory holding
# it, and nothing but what the demo writes, is ever replaced.
_MARKER = ".agentgate-demo"
_DEMO_FILES = re.compile(
    r"(\.agentgate-demo|keys|receipts|report\.json|checkpoint-\w+\.txt|"
    r"consistency-\d+-\d+\.txt|(ledger|vault)\.db(-wal|-shm|-journal)?)"
)


def _prepare_output(out_dir: Path) -> None:
    """Make ``out_dir`` empty, removing only an earlier demo's files.

    A directory that holds anything the demo did not write is left alone, and
    so is the current directory or one of its parents.
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} is a file, not a directory",
                                 param_hint="--out")
    resolved = out_dir.resolve()
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise click.BadParameter(
            f"{out_dir} is the current directory or one of its parents; "
            "choose a new directory such as demo-out", param_hint="--out")
    entries = [entry.name for entry in out_dir.iterdir()]
    if not entries:
        return
    foreign = sorted(name for name in entries if not _DEMO_FILES.fullmatch(name))
    if _MARKER not in entries or foreign:
        shown = ", ".join(foreign[:5]) or "no demo marker"
        raise click.BadParameter(
            f"{out_dir} is not a demo directory ({shown}); the demo replaces "
            "only directories it wrote. Choose another --out",
            param_hint="--out",
        )
    shutil.rmtree(out_dir)


def _agentgate_command() -> str:
    """Return how to run ``agentgate`` from here: on PATH, or in this venv."""
    if shutil.which("agentgate"):
        return "agentgate"
    beside = Path(sys.executable).with_name("agentgate")
    if beside.exists():
        try:
            return str(beside.relative_to(Path.cwd()))
        except ValueError:
            return str(beside)
    return "agentgate"


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-out"), show_default=True,
              help="Directory for the log, keys, receipts and report. An "
                   "earlier demo's directory is replaced; any other non-empty "
                   "directory is refused.")
@click.option("--suite", "suites", multiple=True, default=DEFAULT_SUITES,
              show_default=True, help="AgentDojo suite to replay (repeatable).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Policy file (.toml or .json); default: the "
                                 "built-in generic policy.")
@click.option("--step-seconds", type=float, default=1.5, show_default=True,
              help="Simulated seconds per gate step, so that rate windows see "
                   "agent-speed traffic.")
def demo(out_dir: Path, suites: tuple[str, ...], policy_path: Path | None,
         step_seconds: float) -> None:
    """Replay AgentDojo through the gate, then verify every receipt."""
    started = time.perf_counter()
    try:
        policy = load_policy(policy_path) if policy_path else load_policy()
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--policy") from err
    try:
        known = known_suites()
    except RuntimeError as err:
        raise click.ClickException(str(err)) from err
    unknown = [suite for suite in suites if suite not in known]
    if unknown:
        raise click.BadParameter(
            f"AgentDojo {BENCHMARK_VERSION} has no suite {unknown[0]!r}; "
            f"choose from {', '.join(sorted(known))}",
            param_hint="--suite",
        )
    _prepare_output(out_dir)
    receipts = out_dir / "receipts"
    receipts.mkdir(parents=True)
    (out_dir / _MARKER).write_text("written by agentgate demo; safe to replace\n")

    def write_receipt(sealed) -> None:
        (receipts / f"{sealed.index:08d}.tlog-proof").write_text(sealed.receipt.text)

    deployment = create_deployment(
        out_dir, policy=policy, clock=SteppingClock(utc_now(), step_seconds),
        purpose="personal assistant acting for the principal", on_seal=write_receipt,
    )
    click.echo(f"log {deployment.client.origin}, key {deployment.log_key}")
    click.echo(f"principal {deployment.principal.key_id} delegated to agent "
               f"{deployment.agent.key_id}; policy {policy.name} "
               f"({policy.hash[:16]}...)\n")

    report = {"benchmark": f"AgentDojo {BENCHMARK_VERSION}", "attack": DEFAULT_ATTACK,
              "suites": {}}
    for suite in suites:
        try:
            replay = AgentDojoReplay(deployment.gate, suite)
        except (RuntimeError, ValueError) as err:
            raise click.ClickException(str(err)) from err
        result = replay.run_suite()
        click.echo(suite_table(result, BENCHMARK_VERSION, DEFAULT_ATTACK) + "\n")
        report["suites"][suite] = result.summary()

    ledger = deployment.client.ledger
    checkpoint = deployment.client.latest_checkpoint()
    click.echo(ledger_table(ledger.size, checkpoint) + "\n")
    (out_dir / "checkpoint-latest.txt").write_text(checkpoint)

    audit = audit_run(receipts, deployment.log_key, deployment.client.origin,
                      checkpoint, deployment.client.consistency_proof, out_dir)
    click.echo(audit_table(audit))
    report["log"] = {"size": ledger.size, "checkpoint": checkpoint}
    report["verification"] = {
        "receipts": audit.receipts, "receipts_verified": audit.receipts_verified,
        "checkpoints": audit.checkpoints,
        "consistency_verified": audit.consistency_verified,
        "passed": audit.passed, "failures": audit.failures,
    }
    elapsed = time.perf_counter() - started
    report["seconds"] = round(elapsed, 1)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    deployment.close()
    click.echo(f"\nfinished in {elapsed:.1f} s; receipts in {receipts}, "
               f"report in {out_dir / 'report.json'}")
    first_receipt = min(receipts.glob("*.tlog-proof"), default=None)
    public_key = out_dir / "keys" / f"{key_file_stem(deployment.client.origin)}.pub"
    command = _agentgate_command()
    click.echo("check them yourself:")
    click.echo(f"  {command} verify receipt {first_receipt} --key-file {public_key}")
    click.echo(f"  {command} verify consistency "
               f"{out_dir / f'checkpoint-{audit.first_size}.txt'} "
               f"{out_dir / 'checkpoint-latest.txt'} "
               f"{out_dir / f'consistency-{audit.first_size}-{audit.last_size}.txt'} "
               f"--key-file {public_key}")
    if not audit.passed:
        sys.exit(1)
