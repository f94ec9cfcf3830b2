"""Sealing: a ledger that fails or returns a bad receipt stops the tool.

``TamperingClient`` wraps the real ``LocalLedgerClient``: the entry is really
appended, then the receipt handed to the gate is altered. The gate must catch
every alteration with the independent verifier and never run the tool.
"""

from __future__ import annotations

import base64
import dataclasses

import pytest

from enforcement.errors import SealError
from enforcement.gate import Gate
from enforcement.policy import load_policy
from ledger import open_ledger
from ledger.client import LocalLedgerClient
from ledger.errors import StorageError
from tests.enforcement.conftest import (
    LOG_KEY,
    OTHER_LOG_SIGNER,
    T0,
    TamperingClient,
    issue,
    seeded_identity,
)


class Counter:
    def __init__(self) -> None:
        self.runs = 0

    def __call__(self):
        self.runs += 1
        return "ran"


def _replace_line(text: str, position: int, new_line: str) -> str:
    lines = text.split("\n")
    lines[position] = new_line
    return "\n".join(lines)


def _flip_base64(encoded: str, offset: int) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[offset] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def flip_proof_byte(receipt):
    # Line 3 is the first audit path hash. The log contains several records by
    # then, so every receipt the gate gets has at least one.
    lines = receipt.text.split("\n")
    assert lines[3], "expected a non-empty audit path"
    return dataclasses.replace(
        receipt, text=_replace_line(receipt.text, 3, _flip_base64(lines[3], 0)))


def flip_entry_byte(receipt):
    extra = receipt.text.split("\n")[1].removeprefix("extra ")
    return dataclasses.replace(receipt, text=_replace_line(
        receipt.text, 1, "extra " + _flip_base64(extra, 10)))


def flip_signature_byte(receipt):
    lines = receipt.text.split("\n")
    position = next(i for i, line in enumerate(lines) if line.startswith("\u2014 "))
    dash, name, signature = lines[position].split(" ")
    # Bytes 0-3 are the key hash; byte 10 lies inside the Ed25519 signature.
    flipped = f"{dash} {name} {_flip_base64(signature, 10)}"
    return dataclasses.replace(
        receipt, text=_replace_line(receipt.text, position, flipped))


def shift_index(receipt):
    return dataclasses.replace(receipt, index=receipt.index + 1)


def drop_checkpoint(receipt):
    return dataclasses.replace(receipt, text=receipt.text.split("\n\n")[0] + "\n")


def not_a_receipt(receipt):
    return None


RECEIPT_FOR = r"the receipt for d-[0-9a-f]{32} "
INCLUSION = (r"failed verification: inclusion proof for index \d+ in a tree of size "
             r"\d+: expected root ")
TAMPERINGS = {
    "proof_byte_flipped": (flip_proof_byte, RECEIPT_FOR + INCLUSION),
    "entry_byte_flipped": (flip_entry_byte, RECEIPT_FOR + INCLUSION),
    "signature_byte_flipped": (
        flip_signature_byte,
        RECEIPT_FOR + r"failed verification: note: the signature by known key "
        r"agentgate\.test/gate\+[0-9a-f]{8} does not verify"),
    "checkpoint_dropped": (
        drop_checkpoint,
        RECEIPT_FOR + r"failed verification: receipt: expected a blank line"),
    "not_a_receipt": (
        not_a_receipt,
        RECEIPT_FOR + r"could not be read: AttributeError\(\"'NoneType' object"),
    "index_differs": (
        shift_index, r"receipt index (\d+) differs from the proved index \d+"),
}


@pytest.fixture
def tampered(make_harness):
    return make_harness(tampering=True)


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_receipt_stops_tool(tampered, name):
    tamper, message = TAMPERINGS[name]
    tampered.client.tamper = tamper
    tool = Counter()

    with tampered.gate.session("check my balance") as session:
        with pytest.raises(SealError, match=message):
            session.call("get_balance", {}, tool)

    assert tool.runs == 0
    assert session.decisions == []


def test_receipt_for_another_entry_stops_tool(tampered):
    other = tampered.gate.register_delegation(tampered.certificate).receipt
    tampered.client.tamper = lambda receipt: other
    tool = Counter()

    with tampered.gate.session("check my balance") as session:
        with pytest.raises(SealError, match=r"the log proved an entry other than "
                           r"record d-[0-9a-f]{32}"):
            session.call("get_balance", {}, tool)

    assert tool.runs == 0


def test_receipt_from_other_key_stops_tool(tampered, tmp_path):
    impostor = LocalLedgerClient(
        open_ledger(tmp_path / "impostor.db", OTHER_LOG_SIGNER, now=T0))
    tampered.client.tamper = lambda receipt: impostor.append(receipt.entry)
    tool = Counter()

    try:
        with tampered.gate.session("check my balance") as session:
            with pytest.raises(SealError, match=r"the receipt for d-[0-9a-f]{32} "
                               r"failed verification: .*agentgate\.test/gate"):
                session.call("get_balance", {}, tool)
    finally:
        impostor.ledger.close()

    assert tool.runs == 0


def test_failing_ledger_stops_tool(tampered):
    tampered.client.fail_with = StorageError("disk full")
    tool = Counter()
    before = tampered.ledger.size

    with tampered.gate.session("check my balance") as session:
        with pytest.raises(SealError, match=r"the ledger did not seal decision record "
                           r"d-[0-9a-f]{32}: disk full") as caught:
            session.call("get_balance", {}, tool)

    assert tool.runs == 0
    assert isinstance(caught.value.__cause__, StorageError)
    assert tampered.ledger.size == before


def test_failing_ledger_stops_refusal_too(tampered, agent):
    """A deny that cannot be sealed raises SealError: nothing runs either way."""
    tampered.client.fail_with = OSError("connection reset")
    chain = [issue(seeded_identity("mallory.test"), agent)]
    session = tampered.gate.session("check my balance", chain=chain)
    tool = Counter()

    with pytest.raises(SealError, match="connection reset"):
        session.call("get_balance", {}, tool)

    assert tool.runs == 0


def test_outcome_seal_failure_after_run(tampered):
    tool = Counter()
    original = tampered.client.inner.append

    def fail_outcomes(entry, key=None):
        if b'"type":"outcome"' in entry:
            raise StorageError("disk full")
        return original(entry, key)

    tampered.client.inner.append = fail_outcomes

    with tampered.gate.session("check my balance") as session:
        with pytest.raises(SealError, match="did not seal outcome record o-"):
            session.call("get_balance", {}, tool)

    assert tool.runs == 1
    assert [d.verdict for d in session.decisions] == ["allow"]


def test_gate_start_needs_sealed_policy(tmp_path, principal):
    client = TamperingClient(
        LocalLedgerClient(open_ledger(tmp_path / "log.db",
                                      OTHER_LOG_SIGNER, now=T0)))
    try:
        with pytest.raises(SealError, match=r"the receipt for p-[0-9a-f]{32} failed "
                           "verification"):
            Gate(client, LOG_KEY, load_policy(), [principal.verifier_key])
    finally:
        client.inner.ledger.close()
