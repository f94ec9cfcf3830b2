"""Shared pieces of the adapter tests: tool bodies that count their runs, the
gates they run under, and readers of the sealed records."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from enforcement.approvals import sign_approval, submit_approval
from enforcement.policy import load_policy
from tests.enforcement.conftest import Harness, policy_with, seeded_identity, verify

IBAN = "GB29NWBK60161331926819"
PURPOSE = f"pay the rent of 900 to {IBAN}"
RENT = {"recipient": IBAN, "amount": 900}
LARGE = {"recipient": IBAN, "amount": 9000}
APPROVER = seeded_identity("adapter.approver")
# Tools outside this scope are denied by the delegation check.
PAYMENTS_SCOPE = {"capabilities": [{"tool": "get_balance"}, {"tool": "send_money"}]}


class Runs:
    """Counts how often each tool body ran, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def hit(self, tool: str) -> None:
        with self._lock:
            self.counts[tool] = self.counts.get(tool, 0) + 1

    def __getitem__(self, tool: str) -> int:
        return self.counts.get(tool, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def approvals_policy():
    """The default policy with one approver, less the session total, so that
    parallel large payments are each held by the amount threshold alone."""
    rules = [rule for rule in load_policy().document()["rules"]
             if rule["id"] != "value.session-total"]
    return policy_with(rules=rules, approvals={
        "approvers": [APPROVER.verifier_key], "quorum": 1, "expiry_seconds": 600,
        "rules": ["value.large-amount"],
    })


def decisions(harness: Harness) -> list[dict[str, Any]]:
    return harness.records_of("decision")


def verdicts(harness: Harness) -> list[tuple[str, str]]:
    """Return (tool, verdict) of every sealed decision, in log order."""
    return [(record["tool"], record["verdict"]) for record in decisions(harness)]


def approve(harness: Harness, request_id: str) -> None:
    """Sign and store the approver's approval of a request."""
    store = harness.gate.approval_store
    signed = sign_approval(APPROVER, store.request(request_id), "approve",
                           harness.clock())
    submit_approval(store, signed, harness.clock())


def assert_receipts_verify(harness: Harness, session: Any) -> None:
    """Check that each of the session's decisions has its own verified receipt."""
    indexes = [decision.index for decision in session.decisions]
    assert len(set(indexes)) == len(indexes)
    for decision in session.decisions:
        assert verify(decision.receipt).index == decision.index


@pytest.fixture
def runs() -> Runs:
    return Runs()


@pytest.fixture
def payments(make_harness) -> Harness:
    """A gate whose delegation covers only get_balance and send_money."""
    return make_harness(scope=PAYMENTS_SCOPE)


@pytest.fixture
def approving(make_harness) -> Harness:
    """A gate whose policy lets one approver lift large-amount holds."""
    return make_harness(policy=approvals_policy(), scope=PAYMENTS_SCOPE)


@pytest.fixture
def offline(make_harness) -> Harness:
    """A gate whose ledger client raises on every append after the set-up."""
    harness = make_harness(scope=PAYMENTS_SCOPE, tampering=True)
    harness.client.fail_with = ConnectionError("ledger at 127.0.0.1:9 refused")
    return harness
