"""The three detectors, pointed at a served log.

- ``check_receipts``: the receipts an honest party kept, checked with the
  independent verifier against what the log serves now: every receipt's
  checkpoint must be consistent with the served checkpoint, the served
  entry at each receipt's index must be the receipt's entry, and a receipt
  assembled from the served entry, inclusion proof and checkpoint must
  verify.
- ``monitor_check``: ``verifier.Monitor`` on the log's tiles and entry
  bundles, from a state it stored while the log was honest.
- ``audit``: ``verifier.audit_log`` on the log's tiles.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from verifier import (
    AuditResult,
    Monitor,
    Report,
    TiledLog,
    VerificationError,
    audit_log,
    open_checkpoint,
    parse_proof_text,
    parse_verifier_key,
    verify_consistency,
    verify_receipt,
)
from verifier.monitor import DEFAULT_RECHECK
from verifier.monitor_state import leaves_path_for

# A fixed "now" for cosignature times; no test here uses witnesses.
NOW = 2_000_000_000


@dataclass
class ReceiptCheck:
    """What the kept receipts show about the served log."""

    served_size: int
    # (index, sentence) for each receipt whose entry the log no longer
    # serves: other bytes, or none.
    changed: list[tuple[int, str]] = field(default_factory=list)
    # (index, sentence) for each receipt whose entry the log serves but
    # cannot prove against its checkpoint.
    unproved: list[tuple[int, str]] = field(default_factory=list)
    # (size of a receipt's checkpoint, served size, sentence).
    inconsistent: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def first_bad_index(self) -> int | None:
        """The first index whose entry differs from its receipt's, or is gone."""
        return min((index for index, _ in self.changed), default=None)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.unproved or self.inconsistent)


def check_receipts(
    base_url: str, log_key: str, origin: str, receipt_texts: list[str]
) -> ReceiptCheck:
    """Check kept receipts against the log at ``base_url`` (see the module plan)."""
    keys = [log_key]
    receipts = [verify_receipt(text, keys, origin) for text in receipt_texts]
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        checkpoint_text = _get(client, "/checkpoint").text
        served, _ = open_checkpoint(checkpoint_text, keys, origin)
        result = ReceiptCheck(served.size)

        held = {(r.checkpoint.size, r.checkpoint.root) for r in receipts}
        for size, root in sorted(held):
            problem = _consistency_problem(client, size, root, served)
            if problem is not None:
                result.inconsistent.append((size, served.size, problem))

        entries = _entries(client, served.size)
        for receipt in sorted(receipts, key=lambda r: r.index):
            index = receipt.index
            if index >= len(entries):
                message = (
                    f"entry {index} is not in the served log of size {len(entries)}"
                )
                result.changed.append((index, message))
            elif entries[index] != receipt.entry:
                message = (
                    f"the log serves other bytes at index {index} than its receipt"
                )
                result.changed.append((index, message))
            else:
                problem = _proof_problem(client, index, entries, checkpoint_text, keys)
                if problem is not None:
                    result.unproved.append((index, problem))
    return result


def _get(client: httpx.Client, path: str, **headers: str) -> httpx.Response:
    response = client.get(path, headers=headers)
    response.raise_for_status()
    return response


def _consistency_problem(client, size, root, served) -> str | None:
    if size > served.size:
        return (
            f"a receipt was proved against tree size {size}, but the log now "
            f"serves size {served.size}"
        )
    proof_text = _get(
        client,
        f"/v1/proofs/consistency?first={size}&second={served.size}",
        accept="text/plain",
    ).text
    try:
        verify_consistency(
            size, served.size, parse_proof_text(proof_text), root, served.root
        )
    except VerificationError as err:
        return f"size {size} -> {served.size}: {err}"
    return None


def _entries(client: httpx.Client, size: int) -> list[bytes]:
    document = _get(client, f"/v1/entries?start=0&end={size}").json()
    return [base64.b64decode(entry) for entry in document["entries"]]


def _proof_problem(client, index, entries, checkpoint_text, keys) -> str | None:
    size = len(entries)
    proof = _get(client, f"/v1/proofs/inclusion?index={index}&size={size}").json()
    text = (
        "c2sp.org/tlog-proof@v1\n"
        f"extra {base64.b64encode(entries[index]).decode()}\n"
        f"index {index}\n"
        + "".join(line + "\n" for line in proof["proof"])
        + "\n"
        + checkpoint_text
    )
    try:
        verify_receipt(text, keys)
    except VerificationError as err:
        return f"the served entry {index} does not verify: {err}"
    return None


def monitor_check(
    base_url: str, log_key: str, state: Path, recheck: int | str = DEFAULT_RECHECK
) -> Report:
    """Run one monitor check of the log at ``base_url`` from the state at ``state``."""
    monitor = Monitor(
        TiledLog(base_url), [parse_verifier_key(log_key)], state, recheck=recheck
    )
    return monitor.check(now=NOW)


def copy_state(source: Path, target: Path) -> Path:
    """Copy a monitor state and its leaf file; return the copy's path."""
    shutil.copyfile(source, target)
    shutil.copyfile(leaves_path_for(source), leaves_path_for(target))
    return target


def audit(
    base_url: str, log_key: str, principal: str, state: Path | None = None
) -> AuditResult:
    """Audit the log at ``base_url`` with the gate's principal as trust anchor."""
    return audit_log(
        base_url,
        [parse_verifier_key(log_key)],
        anchors=[principal],
        monitor_state=state,
    )


# -- the detectors on a served copy of the gate's log ------------------------------


def receipts_of(served, run) -> ReceiptCheck:
    """Check the receipts the gate kept against the served log."""
    return check_receipts(served.base_url, run.log_key, run.origin, run.receipt_texts)


def monitor_of(
    served,
    run,
    honest_state: Path,
    directory: Path,
    recheck: int | str = DEFAULT_RECHECK,
) -> Report:
    """Check the served log with a copy of the monitor state taken while honest."""
    state = copy_state(honest_state, directory / "state.json")
    return monitor_check(served.base_url, run.log_key, state, recheck)


def audit_of(served, run, honest_state: Path, directory: Path) -> AuditResult:
    """Audit the served log, comparing it with the honest monitor state."""
    state = copy_state(honest_state, directory / "state.json")
    return audit(served.base_url, run.log_key, run.principal_key, state)
