"""Shared fixtures for the gate tests: a frozen clock, fixed identities, and a
real gate on a real SQLite log in a temporary directory."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import verifier
from enforcement import jcs
from enforcement.delegation import SIGNATURE_CONTEXT, Certificate, issue_certificate
from enforcement.gate import Gate
from enforcement.identity import Identity
from enforcement.policy import Policy, load_policy, parse_policy
from enforcement.vault import ArgumentVault
from ledger import Ledger, Signer, open_ledger
from ledger.client import LocalLedgerClient

ORIGIN = "agentgate.test/gate"
T0 = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
ALL_TOOLS = {"capabilities": [{"tool": "*"}]}


def seeded_identity(name: str) -> Identity:
    """Return a deterministic identity: the seed is SHA-256 of a fixed label."""
    seed = hashlib.sha256(b"agentgate gate tests: " + name.encode()).digest()
    return Identity.from_seed(name, seed)


LOG_SIGNER = Signer.from_seed(
    ORIGIN, hashlib.sha256(b"agentgate gate tests: log key").digest()
)
OTHER_LOG_SIGNER = Signer.from_seed(
    ORIGIN, hashlib.sha256(b"agentgate gate tests: another log key").digest()
)
LOG_KEY = str(LOG_SIGNER.verifier_key)


class FrozenClock:
    """A clock that returns the same instant until a test advances it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def issue(
    issuer: Identity,
    subject: Identity,
    scope: dict | None = None,
    parent: Certificate | None = None,
    *,
    start: datetime = T0 - timedelta(hours=1),
    end: datetime = T0 + timedelta(days=1),
    max_depth: int = 0,
) -> Certificate:
    """Issue a certificate, by default valid from T0 - 1 h to T0 + 1 day."""
    return issue_certificate(
        issuer=issuer,
        subject=subject.verifier_key,
        scope=scope if scope is not None else ALL_TOOLS,
        purpose="test delegation",
        not_before=start,
        not_after=end,
        max_depth=max_depth,
        parent=parent,
    )


def sign_body(issuer: Identity, body: dict[str, Any]) -> Certificate:
    """Sign an arbitrary certificate body, bypassing the issuing checks.

    The signature is valid, so a chain that contains it fails only on the
    field under test.
    """
    return Certificate(body, issuer.sign(SIGNATURE_CONTEXT + jcs.canonical(body)))


def policy_with(**changes: Any) -> Policy:
    """Return the default policy document with top-level members replaced."""
    document = load_policy().document()
    document.update(changes)
    return parse_policy(document)


def verify(receipt: Any) -> verifier.VerifiedReceipt:
    """Verify a receipt with the independent verifier against the test log key."""
    return verifier.verify_receipt(receipt.text, [LOG_KEY], origin=ORIGIN)


class TamperingClient:
    """A ledger client around the real one that can fail or alter receipts.

    Set ``fail_with`` to an exception to raise on append before anything is
    stored, or ``tamper`` to a function that rewrites each real receipt.
    """

    def __init__(self, inner: LocalLedgerClient) -> None:
        self.inner = inner
        self.origin = inner.origin
        self.fail_with: BaseException | None = None
        self.tamper = None
        self.appended: list[bytes] = []

    def append(self, entry: bytes, key: str | None = None):
        if self.fail_with is not None:
            raise self.fail_with
        receipt = self.inner.append(entry, key)
        self.appended.append(entry)
        return receipt if self.tamper is None else self.tamper(receipt)

    def latest_checkpoint(self) -> str:
        return self.inner.latest_checkpoint()

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return self.inner.consistency_proof(first, second)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.inner.inclusion_proof(index, size)

    def entries(self, start: int, stop: int) -> list[bytes]:
        return self.inner.entries(start, stop)


@dataclass
class Harness:
    """A gate on a real log, with the parts tests inspect."""

    gate: Gate
    client: Any
    ledger: Ledger
    vault: ArgumentVault
    clock: FrozenClock
    principal: Identity
    agent: Identity
    certificate: Certificate
    directory: Path

    def records(self, start: int = 0) -> list[dict[str, Any]]:
        """Return every record in the log from leaf ``start``, parsed."""
        return [
            json.loads(entry)
            for entry in self.ledger.entries(start, self.ledger.size)
        ]

    def records_of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["type"] == kind]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def principal() -> Identity:
    return seeded_identity("principal.test")


@pytest.fixture
def agent() -> Identity:
    return seeded_identity("agent.test")


@pytest.fixture
def make_harness(tmp_path, clock, principal, agent):
    """Return a factory of gates, each on its own log; all are closed afterwards."""
    opened: list[Harness] = []

    def _make(
        *,
        policy: Policy | None = None,
        scope: dict | None = None,
        scorer: Any = None,
        tampering: bool = False,
    ) -> Harness:
        directory = tmp_path / f"gate-{len(opened)}"
        directory.mkdir()
        ledger = open_ledger(directory / "log.db", LOG_SIGNER, now=clock())
        client: Any = LocalLedgerClient(ledger)
        if tampering:
            client = TamperingClient(client)
        vault = ArgumentVault(str(directory / "vault.db"))
        certificate = issue(principal, agent, scope, max_depth=2)
        gate = Gate(
            client,
            LOG_KEY,
            policy or load_policy(),
            [principal.verifier_key],
            scorer=scorer,
            vault=vault,
            clock=clock,
            default_chain=[certificate],
        )
        harness = Harness(gate, client, ledger, vault, clock, principal, agent,
                          certificate, directory)
        opened.append(harness)
        return harness

    yield _make
    for harness in opened:
        harness.vault.close()
        harness.ledger.close()


@pytest.fixture
def harness(make_harness) -> Harness:
    return make_harness()
