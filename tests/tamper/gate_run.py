"""A real gate run that the tamper tests start from.

``run_gate`` sets up an embedded deployment (``create_deployment``: keys, an
SQLite log, a principal and an agent), makes gated calls with outcomes, a
hold that two approvers lift, a denied call, and a revocation, and keeps
every receipt the gate verified. Those receipts are what an honest party
holds before anyone tampers with the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enforcement.alignment import AlignmentResult
from enforcement.approvals import sign_approval, submit_approval
from enforcement.delegation import issue_certificate
from enforcement.errors import ApprovalRequired, Denied
from enforcement.evaluation.embedded import create_deployment
from enforcement.gate import Sealed
from enforcement.identity import Identity
from enforcement.policy import load_policy, parse_policy
from ledger import Signer
from verifier import VerifiedReceipt, verify_receipt

ORIGIN = "agentgate.example/tamper"
T0 = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
IBAN = "GB29NWBK60161331926819"


def seeded_identity(name: str) -> Identity:
    """Return a deterministic identity, so that runs are reproducible."""
    return Identity.from_seed(
        name, hashlib.sha256(b"agentgate tamper tests: " + name.encode()).digest()
    )


ALICE = seeded_identity("alice.tamper")
BOB = seeded_identity("bob.tamper")
SUBAGENT = seeded_identity("subagent.tamper")


class FixedScorer:
    """An alignment scorer that returns one score, so verdicts depend on rules."""

    name = "fixed"
    version = "1"

    def __init__(self, score: float = 0.9) -> None:
        self.score_value = score

    def score(self, context) -> AlignmentResult:
        return AlignmentResult(
            "fixed", "1", self.score_value, "aligned", ("fixed by the test",)
        )


class SteppedClock:
    """A clock that tests move forward by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class GateRun:
    """The log a gate wrote, and what an honest party kept of it."""

    signer: Signer
    entries: list[bytes]
    checkpoint: str
    receipts: list[VerifiedReceipt]
    receipt_texts: list[str]
    principal_key: str

    @property
    def log_key(self) -> str:
        return str(self.signer.verifier_key)

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def batches(self) -> list[int]:
        """Return the tree size after each batch the gate appended, in order."""
        return sorted({receipt.checkpoint.size for receipt in self.receipts})


def run_gate(directory: Path) -> GateRun:
    """Write a log through a real gate and return it with the receipts kept."""
    clock = SteppedClock(T0)
    scorer = FixedScorer()
    sealed: list[Sealed] = []
    policy_document = load_policy().document()
    policy_document["approvals"] = {
        "approvers": [ALICE.verifier_key, BOB.verifier_key],
        "quorum": 2,
        "expiry_seconds": 600,
        "rules": ["value.large-amount"],
    }
    deployment = create_deployment(
        directory,
        origin=ORIGIN,
        policy=parse_policy(policy_document),
        clock=clock,
        purpose=f"pay the rent to {IBAN} and read the balance",
        on_seal=sealed.append,
        scorer=scorer,
    )
    gate = deployment.gate
    try:
        # A session of allowed calls, and a large payment that a rule holds
        # and two approvers lift.
        session = gate.session(f"pay the rent to {IBAN}")
        session.call("read_balance", {}, lambda: {"balance": 12000})
        clock.advance()
        session.call("send_money", {"recipient": IBAN, "amount": 50}, lambda: "paid")
        clock.advance()
        large = {"recipient": IBAN, "amount": 9000}
        with pytest.raises(ApprovalRequired) as held:
            session.call("send_money", large, lambda: "paid")
        store = gate.approval_store
        for approver in (ALICE, BOB):
            approval = sign_approval(
                approver, store.request(held.value.request), "approve", clock()
            )
            submit_approval(store, approval, clock())
        clock.advance()
        session.call("send_money", large, lambda: "paid")

        # A sub-agent's session, before and after its certificate is revoked.
        sub_certificate = issue_certificate(
            issuer=deployment.agent,
            subject=SUBAGENT.verifier_key,
            scope={"capabilities": [{"tool": "read_*"}]},
            purpose="read balances",
            not_before=T0 - timedelta(minutes=1),
            not_after=T0 + timedelta(hours=1),
            max_depth=0,
            parent=deployment.certificate,
        )
        gate.register_delegation(sub_certificate)
        sub_session = gate.session(
            "read the balance", chain=[deployment.certificate, sub_certificate]
        )
        clock.advance()
        sub_session.call("read_balance", {}, lambda: {"balance": 11950})
        clock.advance()
        gate.revoke(sub_certificate.hash, by=deployment.agent, reason="rotated")
        clock.advance()
        with pytest.raises(Denied):
            sub_session.call("read_balance", {}, lambda: {"balance": 11950})

        # A misaligned call is denied.
        scorer.score_value = 0.05
        other = gate.session("summarise the news")
        with pytest.raises(Denied):
            other.call("read_news", {}, lambda: "news")
        scorer.score_value = 0.9
        clock.advance()
        other.call("read_news", {}, lambda: "news")

        ledger = deployment.client.ledger
        entries = ledger.entries(0, ledger.size)
        checkpoint = ledger.latest_checkpoint()
    finally:
        deployment.close()

    texts = [item.receipt.text for item in sealed]
    receipts = [verify_receipt(text, [deployment.log_key], ORIGIN) for text in texts]
    return GateRun(
        deployment.log_signer,
        entries,
        checkpoint,
        receipts,
        texts,
        deployment.principal.verifier_key,
    )
