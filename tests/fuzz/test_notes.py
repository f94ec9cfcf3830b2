"""Signed notes, checkpoints and verifier keys, mutated and random.

The notes are checkpoints the ledger signed. The verifier must raise only
``VerificationError`` and may accept a mutated note only when it means the
same: the same signed text, and for a checkpoint the same origin, size and
root. The ledger's own parsers of keys and stored checkpoints must raise
only ``LedgerError``, and accept the keys the verifier accepts.
"""

from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.keys import VerifierKey as LedgerVerifierKey
from ledger.note import parse_own_checkpoint
from tests.fuzz.mutations import FAST, mutated, mutated_text
from tests.fuzz.samples import LOG_KEY, ORIGIN, sample_log
from verifier import (
    VerificationError,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_note,
    parse_verifier_key,
)

CHECKPOINT = sample_log().checkpoints[11]
SMALL_CHECKPOINT = sample_log().checkpoints[3]
TEXT, _, _ = CHECKPOINT.rpartition("\n\n")


@FAST
@given(mutated(CHECKPOINT.encode()))
def test_mutated_note_opens_only_unchanged(data):
    try:
        note = open_note(data, [LOG_KEY])
    except VerificationError:
        return
    assert note.text == TEXT + "\n"
    assert note.key_names == (ORIGIN,)


@FAST
@given(mutated(CHECKPOINT.encode(), max_edits=6))
def test_mutated_checkpoint_verifies_only_unchanged(data):
    try:
        checkpoint, _ = open_checkpoint(data, [LOG_KEY], ORIGIN)
    except VerificationError:
        return
    expected = parse_checkpoint(TEXT + "\n")
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (
        expected.origin,
        expected.size,
        expected.root,
    )


@FAST
@given(st.binary(max_size=400) | st.text(max_size=400))
def test_random_note_rejected_cleanly(data):
    for parse in (parse_note, lambda d: open_note(d, [LOG_KEY])):
        try:
            parse(data)
        except VerificationError:
            pass


@FAST
@given(mutated_text(TEXT + "\n", max_edits=4) | st.text(max_size=200))
def test_checkpoint_body_parsed_strictly(body):
    try:
        checkpoint = parse_checkpoint(body)
    except VerificationError:
        return
    # An accepted body has one spelling: its three lines, in canonical form.
    lines = body.split("\n")
    assert lines[0] == checkpoint.origin
    assert lines[1] == str(checkpoint.size)


@FAST
@given(mutated_text(SMALL_CHECKPOINT) | st.text(max_size=200))
def test_stored_checkpoint_parser_raises_ledger_errors(note):
    try:
        parse_own_checkpoint(note)
    except LedgerError:
        pass


@FAST
@given(mutated_text(LOG_KEY, max_edits=2) | st.text(max_size=120))
def test_verifier_key_parsers_agree(text):
    try:
        ours = parse_verifier_key(text)
    except VerificationError:
        ours = None
    try:
        theirs = LedgerVerifierKey.parse(text)
    except LedgerError:
        theirs = None

    assert (ours is None) == (theirs is None), text
    if ours is not None:
        assert str(theirs) == text
        assert ours.public_key == theirs.public_key
