"""A real gate on a real log, driven through every kind of record an auditor checks.

The log is written by ``enforcement`` and ``ledger`` (tests may import
them; the verifier may not). ``build_gate_log`` returns the entries and the
signed checkpoint, and ``resign`` lets a test rewrite entries and sign the
result with the log's own key, as a dishonest operator could.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from enforcement.alignment import AlignmentResult
from enforcement.approvals import sign_approval, submit_approval
from enforcement.errors import ApprovalRequired, Denied
from enforcement.gate import Gate
from enforcement.vault import ArgumentVault
from ledger import open_ledger
from ledger.client import LocalLedgerClient
from tests.enforcement.conftest import (
    LOG_KEY,
    LOG_SIGNER,
    ORIGIN,
    T0,
    FrozenClock,
    issue,
    policy_with,
    seeded_identity,
)
from tests.verifier.reference import ReferenceTree
from tests.verifier.signing import TestSigner, checkpoint_text, sign_note

IBAN = "GB29NWBK60161331926819"
PRINCIPAL = seeded_identity("principal.audit")
AGENT = seeded_identity("agent.audit")
SUBAGENT = seeded_identity("subagent.audit")
ALICE = seeded_identity("alice.audit")
BOB = seeded_identity("bob.audit")
# The same Ed25519 key as the ledger's LOG_SIGNER, for re-signing rewritten logs.
RESIGNER = TestSigner(ORIGIN, hashlib.sha256(b"agentgate gate tests: log key").digest())

AGENT_SCOPE = {
    "capabilities": [
        {"tool": "read_*"},
        {
            "tool": "send_money",
            "budget": {"calls": 10},
            "constraints": {
                "amount": {"max": 10000, "min": 1},
                "recipient": {"one_of": [IBAN, "DE89370400440532013000"]},
            },
        },
        {
            "tool": "fetch",
            "constraints": {
                "url": {"url_prefix": ["https://api.example.com/v1/"]},
                "host": {"domains": ["*.example.com", "example.com"]},
            },
        },
        {
            "tool": "run",
            "constraints": {"command": {"commands": ["git status", "*/ls"]}},
        },
        {"tool": "open_file", "constraints": {"path": {"path_prefix": ["/srv/data"]}}},
    ]
}
SUBAGENT_SCOPE = {
    "capabilities": [
        {
            "tool": "send_money",
            "budget": {"calls": 5},
            "constraints": {"amount": {"max": 100}, "recipient": {"one_of": [IBAN]}},
        },
        {
            "tool": "fetch",
            "constraints": {
                "url": {"url_prefix": ["https://api.example.com/v1/users"]},
                "host": {"domains": ["api.example.com"]},
            },
        },
        {
            "tool": "run",
            "constraints": {"command": {"commands": ["git status --short", "ls"]}},
        },
        {
            "tool": "open_file",
            "constraints": {"path": {"path_prefix": ["/srv/data/reports"]}},
        },
    ]
}


class SettableScorer:
    name = "settable"
    version = "1"

    def __init__(self) -> None:
        self.score_value = 0.9

    def score(self, context):
        return AlignmentResult(
            "settable", "1", self.score_value, "aligned", ("set by the test",)
        )


@dataclass
class GateLog:
    entries: list[bytes]
    checkpoint: str
    log_key: str
    principal: str


def build_gate_log(directory: Path) -> GateLog:
    """Write a log of keys, policy, delegations, decisions, approvals and revocation."""
    clock = FrozenClock(T0)
    ledger = open_ledger(directory / "log.db", LOG_SIGNER, now=clock())
    vault = ArgumentVault(str(directory / "vault.db"))
    policy = policy_with(
        approvals={
            "approvers": [ALICE.verifier_key, BOB.verifier_key],
            "quorum": 2,
            "expiry_seconds": 600,
            "rules": ["value.large-amount", "alignment"],
        }
    )
    scorer = SettableScorer()
    certificate = issue(PRINCIPAL, AGENT, AGENT_SCOPE, max_depth=2)
    sub_certificate = issue(
        AGENT, SUBAGENT, SUBAGENT_SCOPE, parent=certificate, max_depth=0
    )
    gate = Gate(
        LocalLedgerClient(ledger),
        LOG_KEY,
        policy,
        [PRINCIPAL.verifier_key],
        scorer=scorer,
        vault=vault,
        clock=clock,
        default_chain=[certificate],
    )
    gate.register_delegation(certificate)
    gate.register_delegation(sub_certificate)

    # Session A: plain allows, and a large payment that a rule holds and two
    # approvers lift.
    session = gate.session(f"pay the rent to {IBAN}")
    session.call("read_balance", {}, lambda: {"balance": 12000})
    clock.advance(1)
    session.call("send_money", {"recipient": IBAN, "amount": 50}, lambda: "paid")
    clock.advance(1)
    large = {"recipient": IBAN, "amount": 9000}
    with pytest.raises(ApprovalRequired) as held:
        session.call("send_money", large, lambda: "paid")
    store = gate.approval_store
    for approver in (ALICE, BOB):
        signed = sign_approval(
            approver, store.request(held.value.request), "approve", clock()
        )
        submit_approval(store, signed, clock())
    clock.advance(1)
    session.call("send_money", large, lambda: "paid")
    clock.advance(1)
    session.call(
        "fetch",
        {"url": "https://api.example.com/v1/users/7", "host": "api.example.com"},
        lambda: {"name": "x"},
    )

    # Session B: the sub-agent, before and after its certificate is revoked.
    sub_session = gate.session(
        "pay small amounts", chain=[certificate, sub_certificate]
    )
    sub_session.call("send_money", {"recipient": IBAN, "amount": 20}, lambda: "paid")
    clock.advance(1)
    gate.revoke(sub_certificate.hash, by=AGENT, reason="rotated")
    clock.advance(1)
    with pytest.raises(Denied):
        sub_session.call(
            "send_money", {"recipient": IBAN, "amount": 20}, lambda: "paid"
        )

    # Session C: a misaligned call and a call outside the scope.
    scorer.score_value = 0.05
    other = gate.session("summarise the news")
    with pytest.raises(Denied):
        other.call("read_news", {}, lambda: "news")
    scorer.score_value = 0.9
    with pytest.raises(Denied):
        other.call("delete_everything", {}, lambda: None)
    clock.advance(timedelta(minutes=1).total_seconds())

    entries = ledger.entries(0, ledger.size)
    checkpoint = ledger.latest_checkpoint()
    vault.close()
    ledger.close()
    return GateLog(entries, checkpoint, LOG_KEY, PRINCIPAL.verifier_key)


def resign(entries: list[bytes]) -> str:
    """Return a checkpoint of ``entries`` signed with the log's key."""
    root = ReferenceTree(entries).root(len(entries))
    return sign_note(checkpoint_text(ORIGIN, len(entries), root), RESIGNER)
