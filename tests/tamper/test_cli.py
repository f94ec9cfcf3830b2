"""The three detectors through the ``agentgate`` command line, on every tampering.

Each command runs in this process (click's ``CliRunner``) against a served
copy of the gate's log on SQLite; the API tests cover PostgreSQL. The exit
code must report the failure, and the printed message must name the first
index that differs from the honest log.

- ``agentgate verify receipt``: each receipt the gate kept, with its entry
  replaced by the entry the log serves now at that index. A receipt whose
  entry changed no longer proves against the checkpoint the party holds.
- ``agentgate monitor --once --recheck all``: from a state stored while the
  log was honest.
- ``agentgate audit``: with the same state and the gate's principal.
"""

import base64
import re

import httpx
import pytest
from click.testing import CliRunner

from enforcement.cli import main
from tests.tamper.detectors import copy_state
from tests.tamper.tampering import (
    CHANGED,
    CHANGED_BYTES_ONLY,
    DELETED,
    FORKED_LARGER,
    FORKED_SAME_SIZE,
    INSERTED,
    REORDERED,
    TRUNCATED,
)

ALL = [
    CHANGED,
    CHANGED_BYTES_ONLY,
    DELETED,
    REORDERED,
    INSERTED,
    TRUNCATED,
    FORKED_SAME_SIZE,
    FORKED_LARGER,
]
# A truncated log serves no entry at the receipts from its cut on.
ENTRIES_SERVED = [t for t in ALL if t is not TRUNCATED]


def run(*arguments: str):
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def with_served_entry(receipt_text: str, entry: bytes) -> str:
    """Return the receipt with its ``extra`` line replaced by ``entry``."""
    lines = receipt_text.split("\n")
    assert lines[1].startswith("extra ")
    lines[1] = "extra " + base64.b64encode(entry).decode()
    return "\n".join(lines)


def served_entries(base_url: str) -> list[bytes]:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        size = int(client.get("/checkpoint").text.split("\n")[1])
        document = client.get(f"/v1/entries?start=0&end={size}").json()
    return [base64.b64decode(entry) for entry in document["entries"]]


@pytest.mark.parametrize("tampering", ENTRIES_SERVED, ids=lambda t: t.name)
def test_verify_receipt_names_first_index(serve, gate_run, tmp_path, tampering):
    entries = served_entries(serve("sqlite", tampering).base_url)
    files = []
    for receipt, text in zip(gate_run.receipts, gate_run.receipt_texts, strict=True):
        path = tmp_path / f"entry-{receipt.index:04d}.tlog-proof"
        path.write_text(with_served_entry(text, entries[receipt.index]))
        files.append(str(path))

    result = run("verify", "receipt", "--key", gate_run.log_key, *files)

    assert result.exit_code == 1, result.output
    failures = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    first = tampering.first_bad
    assert f"entry-{first:04d}.tlog-proof" in failures[0]
    assert f"inclusion proof for index {first} " in failures[0]


def test_verify_receipt_passes_honest_log(serve, gate_run, tmp_path):
    entries = served_entries(serve("sqlite", None).base_url)
    files = []
    for receipt, text in zip(gate_run.receipts, gate_run.receipt_texts, strict=True):
        path = tmp_path / f"entry-{receipt.index:04d}.tlog-proof"
        path.write_text(with_served_entry(text, entries[receipt.index]))
        files.append(str(path))

    result = run("verify", "receipt", "--key", gate_run.log_key, *files)

    assert result.exit_code == 0, result.output
    count = len(files)
    assert f"{count} of {count} receipts verified, 0 failed" in result.output


@pytest.mark.parametrize("tampering", ALL, ids=lambda t: t.name)
def test_monitor_names_first_index(
    serve, gate_run, honest_state, tmp_path, tampering
):
    served = serve("sqlite", tampering)
    state = copy_state(honest_state, tmp_path / "state.json")

    result = run(
        "monitor", served.base_url, "--key", gate_run.log_key,
        "--state", str(state), "--once", "--recheck", "all",
    )

    assert result.exit_code in (5, 6, 7, 9), result.output
    first = tampering.first_bad
    assert re.search(rf"\b(leaf|index|entry) {first}\b", result.output), (
        result.output
    )


def test_monitor_entry_bytes_exit_code(serve, gate_run, honest_state, tmp_path):
    served = serve("sqlite", CHANGED_BYTES_ONLY)
    state = copy_state(honest_state, tmp_path / "state.json")

    result = run(
        "monitor", served.base_url, "--key", gate_run.log_key,
        "--state", str(state), "--once", "--recheck", "all",
    )

    assert result.exit_code == 9, result.output
    assert result.output.startswith(
        "agentgate monitor: entry-mismatch: entry mismatch: entry 7 hashes to "
    )


def test_monitor_passes_honest_log(serve, gate_run, honest_state, tmp_path):
    served = serve("sqlite", None)
    state = copy_state(honest_state, tmp_path / "state.json")

    result = run(
        "monitor", served.base_url, "--key", gate_run.log_key,
        "--state", str(state), "--once", "--recheck", "all",
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {served.base_url}: tree size 23 extends")


@pytest.mark.parametrize("tampering", ALL, ids=lambda t: t.name)
def test_audit_names_first_index(serve, gate_run, honest_state, tmp_path, tampering):
    served = serve("sqlite", tampering)
    state = copy_state(honest_state, tmp_path / "state.json")

    result = run(
        "audit", served.base_url, "--key", gate_run.log_key,
        "--trust-anchor", gate_run.principal_key,
        "--monitor-state", str(state), "--no-progress",
    )

    assert result.exit_code == 1, result.output
    assert result.output.rstrip().endswith("FAIL")
    indexes = [int(i) for i in re.findall(r"first at index (\d+)", result.output)]
    assert min(indexes) == tampering.first_bad
