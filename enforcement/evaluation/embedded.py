"""A fresh embedded deployment: keys, an SQLite log, a principal, an agent.

This is what ``agentgate demo`` sets up, and what tests use to get a real gate
on a real log in a temporary directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from enforcement.alignment import Scorer
from enforcement.delegation import Certificate, issue_certificate
from enforcement.gate import Gate, Sealed
from enforcement.identity import Identity
from enforcement.policy import Policy, load_policy
from enforcement.timeutil import utc_now
from enforcement.vault import ArgumentVault
from ledger import open_ledger
from ledger.client import LocalLedgerClient
from ledger.keys import Signer, write_key_pair

logger = logging.getLogger(__name__)

ALL_TOOLS = {"capabilities": [{"tool": "*"}]}


@dataclass
class Deployment:
    """Everything an embedded gate needs, with the paths it wrote."""

    directory: Path
    log_signer: Signer
    client: LocalLedgerClient
    principal: Identity
    agent: Identity
    certificate: Certificate
    gate: Gate

    @property
    def log_key(self) -> str:
        return str(self.log_signer.verifier_key)

    def close(self) -> None:
        self.client.ledger.close()


def create_deployment(
    directory: str | Path,
    *,
    origin: str = "agentgate.example/demo",
    policy: Policy | None = None,
    clock: Callable[[], datetime] = utc_now,
    purpose: str = "act for the principal within the delegated scope",
    scope: dict | None = None,
    on_seal: Callable[[Sealed], None] | None = None,
    scorer: Scorer | None = None,
) -> Deployment:
    """Create keys, a log, a delegation and a gate under ``directory``.

    The directory must not already hold a log: a demo always starts from an
    empty tree so that its figures describe one run.
    """
    directory = Path(directory)
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    log_path = directory / "ledger.db"
    if log_path.exists():
        raise FileExistsError(
            f"{log_path} already exists; remove the directory or choose another"
        )
    log_signer = Signer.generate(origin)
    write_key_pair(log_signer, keys)

    principal = Identity.generate("principal.example")
    agent = Identity.generate("agent.example")
    principal.save(keys / "principal.key")
    agent.save(keys / "agent.key")

    now = clock()
    certificate = issue_certificate(
        issuer=principal,
        subject=agent.verifier_key,
        scope=scope or ALL_TOOLS,
        purpose=purpose,
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=1),
        max_depth=1,
    )
    client = LocalLedgerClient(open_ledger(log_path, log_signer, now=now))
    gate = Gate(
        client,
        str(log_signer.verifier_key),
        policy or load_policy(),
        [principal.verifier_key],
        vault=ArgumentVault(str(directory / "vault.db")),
        clock=clock,
        default_chain=[certificate],
        on_seal=on_seal,
        scorer=scorer,
    )
    gate.register_delegation(certificate)
    logger.info("embedded deployment in %s, log origin %s", directory, origin)
    return Deployment(directory, log_signer, client, principal, agent,
                      certificate, gate)


class SteppingClock:
    """A clock that advances a fixed step on every reading.

    A replay issues calls far faster than an agent that waits on a model, so
    rate windows would see impossible traffic. Each reading advances the clock
    by ``step`` seconds, which models an agent taking that long per step.
    """

    def __init__(self, start: datetime, step: float) -> None:
        self._now = start
        self._step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        self._now += self._step
        return self._now
