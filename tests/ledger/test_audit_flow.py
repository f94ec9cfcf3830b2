"""An auditor's whole path through a gated log, every step through the CLI.

A real gate writes decisions into a SQLite log. The operator publishes the
log as tiles with three ``agentgate witness serve`` processes on 127.0.0.1
and a 2-of-3 witness policy. The auditor monitors and audits the published
directory, and a regulator checks an exported bundle with one disclosed
argument. The gate then runs again, and the next publication must be
incremental and must extend the one the monitor saw. Last, with two
witnesses stopped, publication must fail and leave the directory as it was.
"""

import json
import select
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest
from click.testing import CliRunner

from enforcement.cli import main
from enforcement.gate import Gate
from enforcement.vault import ArgumentVault
from ledger import Ledger, open_ledger
from ledger.client import LocalLedgerClient
from tests.enforcement.conftest import (
    LOG_KEY,
    LOG_SIGNER,
    ORIGIN,
    T0,
    FrozenClock,
    issue,
    policy_with,
)
from tests.verifier.gate_log import (
    AGENT,
    AGENT_SCOPE,
    IBAN,
    PRINCIPAL,
    SettableScorer,
    build_gate_log,
)

START_TIMEOUT = 20.0
# The first gate run (tests.verifier.gate_log) seals 22 records from T0 to
# T0 + 6 s. The second run, an hour later, seals enough records to fill the
# first level 0 tile and start the second.
FIRST_SIZE = 22
FIRST_PERIOD = ["--since", "2026-12-04T10:00:00Z", "--until", "2026-12-04T10:00:06Z"]
WHOLE_DAY = ["--since", "2026-12-04T00:00:00Z", "--until", "2026-12-04T23:59:59Z"]
SECOND_RUN_CALLS = 120


def agentgate(*args):
    """Run an agentgate command in-process and return click's result."""
    return CliRunner().invoke(main, [str(arg) for arg in args])


class WitnessProcesses:
    """Runs ``agentgate witness serve`` processes and stops them at the end."""

    def __init__(self, directory):
        self.directory = directory
        self.processes = {}

    def start(self, label, name, log_key):
        """Create the witness's keys with the CLI, start it and return its URL."""
        keys = self.directory / "keys"
        created = agentgate("witness", "keygen", "--name", name, "--out", keys)
        assert created.exit_code == 0, created.output
        stem = name.replace("/", "_")
        config = self.directory / f"{stem}.logs"
        config.write_text(f"log {log_key}\n")
        command = [
            sys.executable, "-c", "from enforcement.cli import main; main()",
            "witness", "serve", "--key", str(keys / f"{stem}.key"),
            "--config", str(config), "--state", str(self.directory / f"{stem}.json"),
            "--port", "0", "--log-level", "warning",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.processes[label] = process
        verifier_key = (keys / f"{stem}.pub").read_text().strip()
        return verifier_key, process

    def url(self, label):
        """Wait for the line a started witness prints and return its URL prefix."""
        process = self.processes[label]
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        assert "serving" in line, f"witness {label} did not start: {line!r}"
        return line.strip().rsplit(" ", 1)[-1].removesuffix("/add-checkpoint")

    def stop(self, label):
        process = self.processes.pop(label)
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()

    def stop_all(self):
        for label in list(self.processes):
            self.stop(label)


@pytest.fixture
def witness_processes(tmp_path):
    directory = tmp_path / "witnesses"
    directory.mkdir()
    started = WitnessProcesses(directory)
    yield started
    started.stop_all()


def run_gate_again(directory, calls):
    """Restart the gate an hour after the first run and seal ``calls`` reads."""
    clock = FrozenClock(T0 + timedelta(hours=1))
    ledger = open_ledger(directory / "log.db", LOG_SIGNER, now=clock())
    vault = ArgumentVault(str(directory / "vault.db"))
    try:
        certificate = issue(PRINCIPAL, AGENT, AGENT_SCOPE, max_depth=2)
        gate = Gate(
            LocalLedgerClient(ledger),
            LOG_KEY,
            policy_with(),
            [PRINCIPAL.verifier_key],
            scorer=SettableScorer(),
            vault=vault,
            clock=clock,
            default_chain=[certificate],
        )
        gate.register_delegation(certificate)
        session = gate.session(f"check the balance before paying {IBAN}")
        for number in range(calls):
            session.call(
                "read_balance", {"account": f"acct-{number}"}, lambda: {"balance": 1}
            )
            clock.advance(1)
        return ledger.size
    finally:
        vault.close()
        ledger.close()


def first_payment(database):
    """Return the id of the first allowed send_money decision in the log."""
    with Ledger.open(database, None, create=False) as ledger:
        for entry in ledger.entries(0, ledger.size):
            record = json.loads(entry)
            if record.get("tool") == "send_money" and record.get("verdict") == "allow":
                return record["id"]
    raise AssertionError("the gate log has no allowed payment")


def test_auditor_flow(tmp_path, witness_processes):
    gate_dir = tmp_path / "gate"
    gate_dir.mkdir()
    build_gate_log(gate_dir)
    database = gate_dir / "log.db"
    # The auditor holds only the log's verifier key.
    log_pub = tmp_path / "log.pub"
    log_pub.write_text(LOG_KEY + "\n")
    published = tmp_path / "published"
    monitor_state = tmp_path / "monitor.json"

    # Three witnesses trust the log's key; any two of them make a quorum.
    policy_lines = []
    for number in (1, 2, 3):
        label = f"w{number}"
        key, _ = witness_processes.start(label, f"witness.test/{label}", LOG_KEY)
        policy_lines.append(f"witness {label} {key}")
    policy = tmp_path / "witnesses.policy"
    policy.write_text("\n".join(policy_lines) + "\nquorum 2\n")
    urls = {label: witness_processes.url(label) for label in ("w1", "w2", "w3")}
    witness_options = ["--witness-policy", policy]
    for label, url in urls.items():
        witness_options += ["--witness-url", f"{label}={url}"]
    anchor = ["--trust-anchor", PRINCIPAL.verifier_key]

    # 1. Publish: every witness cosigns, the checkpoint on stdout carries
    #    the three cosignatures.
    first = agentgate("publish", "--db", database, "--out", published, *witness_options)

    assert first.exit_code == 0, first.output
    for label in ("w1", "w2", "w3"):
        assert f"witness {label}: cosigned size {FIRST_SIZE}" in first.stderr
        assert f"\u2014 witness.test/{label} " in first.stdout
    assert first.stdout.startswith(f"{ORIGIN}\n{FIRST_SIZE}\n")
    assert (published / "checkpoint").read_text() == first.stdout
    assert (published / f"tile/0/000.p/{FIRST_SIZE}").is_file()
    assert (published / f"tile/entries/000.p/{FIRST_SIZE}").is_file()

    # 2. Monitor the directory under the witness policy.
    watched = agentgate(
        "monitor", published, "--key", log_pub, "--witness-policy", policy,
        "--state", monitor_state, "--once",
    )

    assert watched.exit_code == 0, watched.output
    assert watched.stdout.startswith(f"OK {published}: ")

    # 3. Audit every record of the published log.
    audited = agentgate(
        "audit", published, "--key", log_pub, *anchor,
        "--monitor-state", monitor_state,
    )

    assert audited.exit_code == 0, audited.output
    assert f"entries read: {FIRST_SIZE} (tiles); root matches the checkpoint" in (
        audited.stdout
    )
    assert "findings: none" in audited.stdout
    assert audited.stdout.rstrip().endswith("PASS")

    # 4. Export the first period with one disclosed amount, and verify it
    #    offline with the log's key and the witness policy.
    payment = first_payment(database)
    bundle = tmp_path / "period-1.zip"
    exported = agentgate(
        "export", "--db", database, *FIRST_PERIOD, "--out", bundle,
        "--vault", gate_dir / "vault.db", "--disclose", f"{payment}:amount",
        "--witness-policy", policy,
    )

    assert exported.exit_code == 0, exported.output
    assert f"{FIRST_SIZE} receipts, 1 openings" in exported.stderr
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    assert f"checkpoints/{FIRST_SIZE}.checkpoint" in names
    assert f"openings/{payment}.amount.json" in names

    checked = agentgate(
        "verify", "bundle", bundle, "--key-file", log_pub, "--witness-policy", policy
    )

    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(f"PASS {bundle}: {ORIGIN}: 1 checkpoints")
    assert f"{FIRST_SIZE} receipts, 1 openings" in checked.stdout

    # 5. The gate runs again. One witness is down, two still make the quorum,
    #    and the run writes only the grown and new tiles.
    witness_processes.stop("w3")
    old_partial = (published / f"tile/0/000.p/{FIRST_SIZE}").read_bytes()
    second_size = run_gate_again(gate_dir, SECOND_RUN_CALLS)
    assert 256 < second_size < 512

    second = agentgate(
        "publish", "--db", database, "--out", published, *witness_options
    )

    assert second.exit_code == 0, second.output
    assert f"witness w1: cosigned size {second_size}" in second.stderr
    assert f"witness w2: cosigned size {second_size}" in second.stderr
    assert f"witness w3: POST {urls['w3']}/add-checkpoint failed" in second.stderr
    # tile/0/000, tile/entries/000, the partial tiles of both at index 1,
    # tile/1/000.p/1 and the checkpoint.
    assert (
        f"published size {second_size} to {published} (6 files written, "
        f"from size {FIRST_SIZE})"
    ) in second.stderr
    assert (published / "tile/0/000").stat().st_size == 256 * 32
    assert (published / "tile/1/000.p/1").stat().st_size == 32
    # Readers of the older checkpoint still find its partial tile, unchanged.
    assert (published / f"tile/0/000.p/{FIRST_SIZE}").read_bytes() == old_partial

    # 6. The monitor finds a consistent extension, and the audit passes again.
    watched_again = agentgate(
        "monitor", published, "--key", log_pub, "--witness-policy", policy,
        "--state", monitor_state, "--once",
    )

    assert watched_again.exit_code == 0, watched_again.output
    assert watched_again.stdout.startswith(f"OK {published}: ")
    assert watched_again.stderr == ""

    audited_again = agentgate(
        "audit", published, "--key", log_pub, *anchor,
        "--monitor-state", monitor_state,
    )

    assert audited_again.exit_code == 0, audited_again.output
    assert "findings: none" in audited_again.stdout

    # 7. A bundle of the whole day chains both cosigned checkpoints.
    day = tmp_path / "day"
    exported_day = agentgate(
        "export", "--db", database, *WHOLE_DAY, "--out", day,
        "--witness-policy", policy,
    )

    assert exported_day.exit_code == 0, exported_day.output
    assert (day / f"consistency/{FIRST_SIZE}-{second_size}.proof").is_file()
    checked_day = agentgate(
        "verify", "bundle", day, "--key-file", log_pub, "--witness-policy", policy
    )
    assert checked_day.exit_code == 0, checked_day.output
    assert (
        f"{ORIGIN}: 2 checkpoints (tree sizes {FIRST_SIZE} to {second_size}), "
        f"1 consistency proofs, {second_size} receipts"
    ) in checked_day.stdout

    # 8. With two of three witnesses down the quorum fails: nothing is
    #    published and the monitor still sees the last publication.
    witness_processes.stop("w2")
    checkpoint_before = (published / "checkpoint").read_bytes()
    third_size = run_gate_again(gate_dir, 2)

    refused = agentgate(
        "publish", "--db", database, "--out", published, *witness_options
    )

    assert refused.exit_code == 1
    assert f"witness w1: cosigned size {third_size}" in refused.stderr
    assert (
        f"needs cosignatures by 2 distinct witnesses, and 1 verified on the "
        f"checkpoint of size {third_size}"
    ) in refused.stderr
    assert f"still contains size {second_size}" in refused.stderr
    assert (published / "checkpoint").read_bytes() == checkpoint_before
    watched_last = agentgate(
        "monitor", published, "--key", log_pub, "--witness-policy", policy,
        "--state", monitor_state, "--once",
    )
    assert watched_last.exit_code == 0, watched_last.output
