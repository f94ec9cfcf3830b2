"""Signed notes and checkpoint bodies (signing side)."""

import base64

import pytest

from ledger import InvalidRequest, Signer, StorageError
from ledger.note import (
    MAX_SIGNATURES,
    format_checkpoint_body,
    parse_own_checkpoint,
    sign_checkpoint,
    sign_note,
)

from .conftest import ORIGIN
from .notes import open_checkpoint, split_note

ROOT = bytes(range(32))


def test_checkpoint_body_lines():
    body = format_checkpoint_body(ORIGIN, 12, ROOT)
    assert body == f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\n"


def test_checkpoint_signed_and_parsed_back(signer):
    checkpoint = sign_checkpoint(ORIGIN, 12, ROOT, [signer])
    assert open_checkpoint(checkpoint.note, signer.verifier_key) == (ORIGIN, 12, ROOT)
    assert parse_own_checkpoint(checkpoint.note) == checkpoint


def test_note_signature_line_form(signer):
    note = sign_note("hello\n", [signer])
    text, signatures = split_note(note)
    assert text == "hello\n"
    assert note.startswith("hello\n\n\u2014 agentgate.test/log ")
    assert [(name, key_id) for name, key_id, _ in signatures] == [
        (ORIGIN, signer.key_id)
    ]


def test_note_signed_by_two_keys_in_order(signer, other_signer):
    checkpoint = sign_checkpoint(ORIGIN, 3, ROOT, [signer, other_signer])
    _, signatures = split_note(checkpoint.note)
    assert [key_id for _, key_id, _ in signatures] == [
        signer.key_id,
        other_signer.key_id,
    ]
    for key in (signer.verifier_key, other_signer.verifier_key):
        assert open_checkpoint(checkpoint.note, key) == (ORIGIN, 3, ROOT)


def test_note_text_without_newline_rejected(signer):
    with pytest.raises(InvalidRequest, match="must end in a newline, got 'hello'"):
        sign_note("hello", [signer])


def test_note_text_with_carriage_return_rejected(signer):
    with pytest.raises(InvalidRequest, match="must not contain a carriage return"):
        sign_note("hello\r\n", [signer])


def test_note_text_with_lone_surrogate_rejected(signer):
    with pytest.raises(InvalidRequest, match="not valid Unicode"):
        sign_note("\ud800\n", [signer])


def test_note_without_signers_rejected():
    with pytest.raises(
        InvalidRequest, match=f"between 1 and {MAX_SIGNATURES} signers, got 0"
    ):
        sign_note("hello\n", [])


def test_note_with_too_many_signers_rejected():
    signers = [
        Signer.from_seed(f"k{i}", bytes([i]) * 32) for i in range(MAX_SIGNATURES + 1)
    ]
    with pytest.raises(InvalidRequest, match="got 101"):
        sign_note("hello\n", signers)


def test_note_with_repeated_signer_rejected(signer):
    with pytest.raises(InvalidRequest, match="is listed twice"):
        sign_note("hello\n", [signer, Signer.parse(signer.signer_key())])


@pytest.mark.parametrize("size", [-1, 1 << 63, "3"])
def test_checkpoint_size_out_of_range_rejected(size):
    with pytest.raises(
        InvalidRequest, match="tree size must be an integer in \\[0, 2\\^63\\)"
    ):
        format_checkpoint_body(ORIGIN, size, ROOT)


def test_checkpoint_short_root_rejected():
    with pytest.raises(InvalidRequest, match="root hash must be 32 bytes"):
        format_checkpoint_body(ORIGIN, 1, bytes(31))


@pytest.mark.parametrize(
    "note",
    ["no blank line\n", "a\nb\n\n\u2014 x y\n", "o\n-1\nAAAA\n\n\u2014 x y\n"],
    ids=["no-split", "two-lines", "bad-size"],
)
def test_parse_own_checkpoint_rejects_damage(note):
    with pytest.raises(StorageError, match="stored checkpoint"):
        parse_own_checkpoint(note)
