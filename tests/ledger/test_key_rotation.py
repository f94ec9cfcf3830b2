"""Key rotation: add a key, sign with both, retire the old one.

Receipts are checked with the independent ``verifier`` package, configured
with one key at a time, like an auditor who has only one of them.
"""

import json
import re

import pytest

from ledger import InvalidRequest, Ledger, Signer
from ledger.keys import LogKey
from verifier import UnknownKey, verify_consistency, verify_receipt

from .conftest import FIXED_NOW, ORIGIN, record
from .notes import split_note


def _signature_keys(note):
    """Return the key ids (hex) of a note's signature lines, in order."""
    return [key_id.hex() for _, key_id, _ in split_note(note)[1]]


def _key_text(signer):
    return str(signer.verifier_key)


def _rotate(ledger, old, new):
    """Add ``new``, append one entry during the overlap, retire ``old``."""
    added = ledger.add_key(new, now=FIXED_NOW)
    overlap = ledger.append(record(1))
    retired = ledger.retire_key(old.verifier_key, now=FIXED_NOW)
    return added, overlap, retired


def test_add_key_record_and_both_signatures(open_log, signer, other_signer):
    ledger = open_log()
    receipt = ledger.add_key(other_signer, now=FIXED_NOW)

    assert receipt.index == 1
    entry = json.loads(receipt.entry)
    assert entry["type"] == "key"
    assert entry["role"] == "log"
    assert entry["key"] == _key_text(other_signer)
    assert "status" not in entry
    assert _signature_keys(receipt.checkpoint) == [
        signer.key_id.hex(),
        other_signer.key_id.hex(),
    ]
    assert ledger.signers == [signer, other_signer]
    assert ledger.log_keys == [
        LogKey(_key_text(signer), 0),
        LogKey(_key_text(other_signer), 1),
    ]


def test_overlap_receipt_verifies_under_either_key(open_log, signer, other_signer):
    ledger = open_log()
    _, overlap, _ = _rotate(ledger, signer, other_signer)

    for key in (signer, other_signer):
        verified = verify_receipt(overlap.text, [_key_text(key)], ORIGIN)
        assert verified.index == overlap.index
        assert verified.entry == record(1)


def test_retired_key_signs_no_later_checkpoint(open_log, signer, other_signer):
    ledger = open_log()
    _, overlap, retired = _rotate(ledger, signer, other_signer)
    after = ledger.append(record(2))

    entry = json.loads(retired.entry)
    assert entry["status"] == "retired"
    assert entry["key"] == _key_text(signer)
    for receipt in (retired, after):
        assert _signature_keys(receipt.checkpoint) == [other_signer.key_id.hex()]
        assert verify_receipt(receipt.text, [_key_text(other_signer)], ORIGIN)
        with pytest.raises(UnknownKey):
            verify_receipt(receipt.text, [_key_text(signer)], ORIGIN)
    assert ledger.signers == [other_signer]
    assert ledger.log_keys[0] == LogKey(_key_text(signer), 0, retired.index)

    # The overlap checkpoint is still good under the old key, and the new
    # checkpoint extends it.
    old = verify_receipt(overlap.text, [_key_text(signer)], ORIGIN).checkpoint
    new = verify_receipt(after.text, [_key_text(other_signer)], ORIGIN).checkpoint
    proof = ledger.consistency_proof(old.size, new.size)
    verify_consistency(old.size, new.size, proof, old.root, new.root)


def test_rotation_survives_reopen(open_log, db_url, signer, other_signer):
    ledger = open_log()
    _, _, retired = _rotate(ledger, signer, other_signer)
    ledger.close()

    reopened = open_log(other_signer)
    assert reopened.signers == [other_signer]
    assert _signature_keys(reopened.latest_checkpoint()) == [
        other_signer.key_id.hex()
    ]
    for configured in ([signer], [signer, other_signer]):
        with pytest.raises(
            InvalidRequest,
            match=re.escape(
                f"signer key {_key_text(signer)} of log 'agentgate.test/log' was "
                f"retired by leaf {retired.index}; remove it"
            ),
        ):
            Ledger.open(db_url, configured)


def test_add_existing_key_rejected(open_log, signer, other_signer):
    ledger = open_log()
    with pytest.raises(
        InvalidRequest,
        match=r"is already a key of log 'agentgate.test/log', introduced by leaf 0; "
        r"a key is introduced once",
    ):
        ledger.add_key(signer)
    _rotate(ledger, signer, other_signer)
    size = ledger.size
    with pytest.raises(
        InvalidRequest, match=r"introduced by leaf 0 and retired by leaf 3"
    ):
        ledger.add_key(signer)
    assert ledger.size == size


def test_add_key_with_other_name_rejected(open_log):
    ledger = open_log()
    stranger = Signer.from_seed("someone.else/log", bytes(32))
    with pytest.raises(InvalidRequest, match="the log's key name must be its origin"):
        ledger.add_key(stranger)
    assert ledger.size == 1


def test_retire_unknown_key_rejected(open_log, other_signer):
    ledger = open_log()
    with pytest.raises(
        InvalidRequest,
        match=r"key .* is not an active key of log 'agentgate.test/log' \(its active "
        r"keys: agentgate.test/log\+92da37aa",
    ):
        ledger.retire_key(other_signer.verifier_key)
    assert ledger.size == 1


def test_retire_only_signer_rejected(open_log, signer, other_signer):
    """The retiring record needs another active key of this process to sign it."""
    ledger = open_log()
    ledger.add_key(other_signer, now=FIXED_NOW)
    ledger.close()
    only_old = open_log(signer)
    with pytest.raises(
        InvalidRequest,
        match=r"none of this process's signer keys \(agentgate.test/log\+92da37aa.*\) "
        r"may sign log 'agentgate.test/log' at size 3",
    ):
        only_old.retire_key(signer)
    assert only_old.size == 2


def test_retire_key_accepts_text(open_log, signer, other_signer):
    ledger = open_log()
    ledger.add_key(other_signer, now=FIXED_NOW)
    receipt = ledger.retire_key(_key_text(signer), now=FIXED_NOW)
    assert json.loads(receipt.entry)["key"] == _key_text(signer)
    with pytest.raises(InvalidRequest, match="expected a VerifierKey, Signer or key"):
        ledger.retire_key(42)


def test_process_with_retired_key_stops_appending(open_log, signer, other_signer):
    rotating = open_log()
    lagging = open_log(signer)
    rotating.add_key(other_signer, now=FIXED_NOW)
    overlap_note = rotating.latest_checkpoint()
    rotating.retire_key(signer, now=FIXED_NOW)

    with pytest.raises(
        InvalidRequest, match=r"none of this process's signer keys .* at size 4"
    ):
        lagging.append(record(5))
    assert lagging.size == 3
    assert rotating.size == 3
    # The lagging process may not sign size 3, so it serves the newest
    # stored checkpoint until the rotating process stores its own.
    assert lagging.latest_checkpoint() == overlap_note
    rotating.close()
    latest = lagging.latest_checkpoint()
    assert latest.split("\n")[1] == "3"
    assert _signature_keys(latest) == [other_signer.key_id.hex()]


def test_process_with_old_key_signs_alone_during_overlap(
    open_log, signer, other_signer
):
    """A process signs its checkpoints with its own configured keys only."""
    rotating = open_log()
    rotating.add_key(other_signer, now=FIXED_NOW)
    old_only = open_log(signer)
    receipt = old_only.append(record(3))
    assert _signature_keys(receipt.checkpoint) == [signer.key_id.hex()]
    assert verify_receipt(receipt.text, [_key_text(signer)], ORIGIN)
    with pytest.raises(UnknownKey):
        verify_receipt(receipt.text, [_key_text(other_signer)], ORIGIN)


def test_third_key_rotation(open_log, signer, other_signer, third_signer):
    ledger = open_log()
    _rotate(ledger, signer, other_signer)
    _, overlap, retired = _rotate(ledger, other_signer, third_signer)
    assert [key.retired_index is None for key in ledger.log_keys] == [
        False,
        False,
        True,
    ]
    assert verify_receipt(overlap.text, [_key_text(other_signer)], ORIGIN)
    assert verify_receipt(retired.text, [_key_text(third_signer)], ORIGIN)
    assert ledger.signers == [third_signer]
