"""Valid inputs that the fuzz tests mutate, made by the real components.

The receipts, checkpoints and proofs come from the ledger; the
certificates, approvals and policies from ``enforcement``. Each sample is
built once per test process and kept in a temporary directory that is
removed at exit.
"""

from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import rfc8785

from enforcement.approvals import SignedApproval, sign_approval
from enforcement.approvals_store import ApprovalRequest
from enforcement.delegation import Certificate, issue_certificate
from enforcement.identity import Identity
from ledger import Ledger, Signer

ORIGIN = "agentgate.example/fuzz"
NOW = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
SIGNER = Signer.from_seed(
    ORIGIN, hashlib.sha256(b"agentgate fuzz tests: log key").digest()
)
LOG_KEY = str(SIGNER.verifier_key)
POLICY_DIRECTORY = Path(__file__).resolve().parents[2] / "enforcement" / "policies"


def seeded_identity(name: str) -> Identity:
    return Identity.from_seed(
        name, hashlib.sha256(b"agentgate fuzz tests: " + name.encode()).digest()
    )


PRINCIPAL = seeded_identity("principal.fuzz")
AGENT = seeded_identity("agent.fuzz")
APPROVER = seeded_identity("approver.fuzz")


@functools.cache
def scratch_directory() -> Path:
    """Return a directory for this process's samples, removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="agentgate-fuzz-"))
    atexit.register(shutil.rmtree, directory, True)
    return directory


def record(number: int) -> bytes:
    return rfc8785.dumps(
        {"n": number, "note": f"fuzz record {number}", "type": "note", "version": 1}
    )


@dataclass(frozen=True)
class SampleLog:
    """A small log written by the ledger: its entries, receipts and proofs."""

    entries: list[bytes]
    receipts: list[str]
    checkpoints: dict[int, str]
    # The consistency proof text from size 3 to the final size.
    consistency_text: str

    @property
    def size(self) -> int:
        return len(self.entries)


@functools.cache
def sample_log() -> SampleLog:
    """Write 11 entries in batches of 2, 3 and 5 after the key record."""
    ledger = Ledger.open(scratch_directory() / "log.db", SIGNER, now=NOW)
    try:
        receipts = []
        checkpoints = {1: ledger.latest_checkpoint()}
        number = 0
        for batch in (2, 3, 5):
            entries = [record(number + i) for i in range(batch)]
            number += batch
            batch_receipts = ledger.append_batch([(e, None) for e in entries])
            receipts.extend(receipt.text for receipt in batch_receipts)
            checkpoints[ledger.size] = ledger.latest_checkpoint()
        proof = ledger.consistency_proof(3, ledger.size)
        entries = ledger.entries(0, ledger.size)
    finally:
        ledger.close()
    text = "".join(base64.b64encode(digest).decode() + "\n" for digest in proof)
    return SampleLog(entries, receipts, checkpoints, text)


@functools.cache
def certificate() -> Certificate:
    """A principal's certificate for the agent, with constraints of every kind."""
    scope = {
        "capabilities": [
            {"tool": "read_*"},
            {
                "tool": "send_money",
                "budget": {"calls": 3},
                "constraints": {
                    "amount": {"min": 1, "max": 500},
                    "recipient": {"one_of": ["GB29NWBK60161331926819"]},
                },
            },
            {
                "tool": "fetch",
                "constraints": {
                    "url": {"url_prefix": ["https://api.example.com/v1/"]},
                    "host": {"domains": ["*.example.com"]},
                },
            },
            {"tool": "run", "constraints": {"command": {"commands": ["git status"]}}},
            {"tool": "open", "constraints": {"path": {"path_prefix": ["/srv/data"]}}},
        ]
    }
    return issue_certificate(
        issuer=PRINCIPAL,
        subject=AGENT.verifier_key,
        scope=scope,
        purpose="pay small amounts and read balances",
        not_before=NOW - timedelta(hours=1),
        not_after=NOW + timedelta(days=1),
        max_depth=1,
    )


@functools.cache
def approval_request() -> ApprovalRequest:
    return ApprovalRequest(
        id="q-" + "1" * 32,
        decision="d-" + "2" * 32,
        decision_index=7,
        tool="send_money",
        arguments="3" * 64,
        call_hash="4" * 64,
        agent=AGENT.key_id,
        session="s-" + "5" * 32,
        rules=("value.large-amount",),
        quorum=1,
        approvers=(APPROVER.verifier_key,),
        created=NOW,
        expiry=NOW + timedelta(minutes=30),
        status="pending",
    )


@functools.cache
def approval() -> SignedApproval:
    return sign_approval(APPROVER, approval_request(), "approve", NOW)
