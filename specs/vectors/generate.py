"""Write the worked examples of specs/ with the ledger and a public test key.

Run from the repository root with the project installed::

    .venv/bin/python specs/vectors/generate.py

The output is byte for byte reproducible: every key comes from a fixed seed,
every time and id is fixed, and Ed25519 signatures are deterministic. The
ledger tests run ``build()`` and compare it with the files in this directory.

PUBLIC TEST KEYS. The log key is derived from a seed printed below, so
anyone can sign as ``agentgate.example/public-test-log``. Never trust this key
outside tests.

The example log holds seven records, appended in four batches, so four
checkpoints are signed (sizes 1, 3, 5 and 7):

    0  key         the log key                  (batch 1, checkpoint 1)
    1  policy      the policy in force          (batch 2)
    2  delegation  principal -> agent           (batch 2, checkpoint 3)
    3  decision    read_inbox, allow            (batch 3)
    4  outcome     of record 3                  (batch 3, checkpoint 5)
    5  decision    send_money, allow            (batch 4)  <- the example
    6  decision    another session's call       (batch 4, checkpoint 7)

Files written:

- ``example-log.key``: the log's signer key (mode 0600), PUBLIC TEST KEY;
- ``example-log.pub``: its verifier key;
- ``checkpoint-example.txt``: the checkpoint of size 7;
- ``decision-example.json``: record 5, in canonical form, no final newline;
- ``receipt-example.tlog-proof``: the receipt of record 5 against size 7;
- ``consistency-example.txt``: the checkpoint of size 3, the checkpoint of
  size 7, and the consistency proof between them (the proof text of
  specs/merkle.md), separated by one empty line each. A blank line that
  follows a signature line ends a part.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import rfc8785

from ledger import Ledger, Signer, format_proof_text

HERE = Path(__file__).resolve().parent
ORIGIN = "agentgate.example/public-test-log"


def public_test_seed(label: str) -> bytes:
    """Return the Ed25519 seed SHA-256("agentgate public test key: " + label)."""
    return hashlib.sha256(f"agentgate public test key: {label}".encode()).digest()


LOG_SIGNER = Signer.from_seed(ORIGIN, public_test_seed(ORIGIN))
PRINCIPAL = Signer.from_seed("principal.example", public_test_seed("principal.example"))
AGENT = Signer.from_seed("agent.example", public_test_seed("agent.example"))
START = datetime(2026, 12, 4, 9, 0, 0, tzinfo=timezone.utc)


def _time(seconds: float) -> str:
    moment = START + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fixed_hex(label: str, length: int = 32) -> str:
    """Return reproducible hex digits standing in for a random value."""
    return hashlib.sha256(f"agentgate example: {label}".encode()).hexdigest()[:length]


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _commitment(label: str, value: Any) -> str:
    """SHA-256(salt || JCS(value)) with a salt derived from ``label``."""
    salt = hashlib.sha256(f"agentgate example salt: {label}".encode()).digest()
    return _sha256_hex(salt + rfc8785.dumps(value))


def _key_id(signer: Signer) -> str:
    return f"{signer.name}+{signer.key_id.hex()}"


def _policy() -> dict[str, Any]:
    document = {
        "name": "example-payments",
        "alignment": {"hold_below": 0.5, "deny_below": 0.15},
        "rules": [
            {"id": "no-exfiltration", "after": "read_inbox", "deny": ["send_email"]}
        ],
    }
    return {
        "type": "policy",
        "version": 1,
        "id": "p-" + _fixed_hex("policy"),
        "time": _time(0.1),
        "hash": _sha256_hex(rfc8785.dumps(document)),
        "document": document,
    }


def _delegation() -> dict[str, Any]:
    certificate = {
        "type": "agentgate.delegation",
        "version": 1,
        "issuer": str(PRINCIPAL.verifier_key),
        "subject": str(AGENT.verifier_key),
        "scope": {
            "capabilities": [
                {"tool": "read_*"},
                {"tool": "send_money", "constraints": {"amount": {"max": 500}}},
            ]
        },
        "purpose": "Pay this month's utility bills from the inbox.",
        "not_before": "2026-12-04T00:00:00Z",
        "not_after": "2026-12-05T00:00:00Z",
        "max_depth": 0,
        "parent": None,
        "nonce": _fixed_hex("nonce"),
    }
    message = b"agentgate-delegation-v1\n" + rfc8785.dumps(certificate)
    signed = {
        "certificate": certificate,
        "signature": base64.b64encode(PRINCIPAL.sign(message)).decode("ascii"),
    }
    return {
        "type": "delegation",
        "version": 1,
        "id": "d-" + _fixed_hex("delegation"),
        "time": _time(0.2),
        "hash": _sha256_hex(rfc8785.dumps(signed)),
        "certificate": signed,
    }


def _decision(
    label: str,
    seconds: float,
    session: str,
    tool: str,
    arguments: dict[str, Any],
    previous: str | None,
    counters: dict[str, int],
    delegation_hash: str,
    policy_hash: str,
) -> dict[str, Any]:
    return {
        "type": "decision",
        "version": 1,
        "id": "d-" + _fixed_hex(label),
        "time": _time(seconds),
        "agent": _key_id(AGENT),
        "session": session,
        "tool": tool,
        "arguments": {
            name: _commitment(f"{label} {name}", value)
            for name, value in arguments.items()
        },
        "delegation": {
            "chain": [delegation_hash],
            "root": str(PRINCIPAL.verifier_key),
            "scope": {
                "capabilities": [
                    {"tool": "read_*"},
                    {"tool": "send_money", "constraints": {"amount": {"max": 500}}},
                ]
            },
        },
        "alignment": {
            "scorer": "default",
            "version": "1",
            "score": 0.82,
            "label": "aligned",
            "thresholds": {"hold": 0.5, "deny": 0.15},
            "reasons": ["tool matches the declared purpose"],
        },
        "sequence": {
            "previous": previous,
            "before": _fixed_hex(f"{label} before", 64),
            "after": _fixed_hex(f"{label} after", 64),
            "fired": [],
            "counters": counters,
        },
        "policy": policy_hash,
        "verdict": "allow",
        "reasons": [],
    }


def _leaf_hash_hex(entry: bytes) -> str:
    return _sha256_hex(b"\x00" + entry)


def build() -> dict[str, bytes]:
    """Build the example log in a temporary database and return the files."""
    session_a = "s-" + _fixed_hex("session a")
    session_b = "s-" + _fixed_hex("session b")
    policy = _policy()
    delegation = _delegation()

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "example.db"
        with Ledger.open(path, LOG_SIGNER, now=START) as ledger:
            ledger.append_batch(
                [(rfc8785.dumps(policy), None), (rfc8785.dumps(delegation), None)]
            )
            old_checkpoint = ledger.latest_checkpoint()

            first = _decision(
                "decision 1",
                1.0,
                session_a,
                "read_inbox",
                {"folder": "bills"},
                None,
                {"calls": 1},
                delegation["hash"],
                policy["hash"],
            )
            first_entry = rfc8785.dumps(first)
            outcome = {
                "type": "outcome",
                "version": 1,
                "id": "o-" + _fixed_hex("outcome 1"),
                "time": _time(1.25),
                "session": session_a,
                "decision": first["id"],
                "decision_index": 3,
                "status": "ok",
                "duration_ms": 212.5,
                "result": _commitment("outcome 1 result", ["bill-7731"]),
                "previous": _leaf_hash_hex(first_entry),
            }
            outcome_entry = rfc8785.dumps(outcome)
            ledger.append_batch([(first_entry, None), (outcome_entry, None)])

            example = _decision(
                "decision 2",
                2.0,
                session_a,
                "send_money",
                {"amount": 120, "recipient": "GB29NWBK60161331926819"},
                _leaf_hash_hex(outcome_entry),
                {"calls": 2, "payments": 1},
                delegation["hash"],
                policy["hash"],
            )
            other = _decision(
                "decision 3",
                2.0,
                session_b,
                "read_file",
                {"path": "bills/7731.pdf"},
                None,
                {"calls": 1},
                delegation["hash"],
                policy["hash"],
            )
            receipts = ledger.append_batch(
                [(rfc8785.dumps(example), None), (rfc8785.dumps(other), None)]
            )
            new_checkpoint = ledger.latest_checkpoint()
            proof = ledger.consistency_proof(3, 7)

    receipt = receipts[0]
    assert receipt.index == 5 and receipt.checkpoint == new_checkpoint
    return {
        "example-log.key": (LOG_SIGNER.signer_key() + "\n").encode("ascii"),
        "example-log.pub": (str(LOG_SIGNER.verifier_key) + "\n").encode("ascii"),
        "checkpoint-example.txt": new_checkpoint.encode("utf-8"),
        "decision-example.json": receipt.entry,
        "receipt-example.tlog-proof": receipt.text.encode("utf-8"),
        "consistency-example.txt": (
            old_checkpoint + "\n" + new_checkpoint + "\n" + format_proof_text(proof)
        ).encode("utf-8"),
    }


def main() -> int:
    for name, data in build().items():
        path = HERE / name
        if path.exists():
            path.unlink()
        mode = 0o600 if name.endswith(".key") else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        print(f"wrote {path.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
