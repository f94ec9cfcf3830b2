"""Checkpoint bodies and signed checkpoints."""

import base64

import pytest

from tests.verifier.signing import TestSigner, checkpoint_text, sign_note
from verifier import (
    EMPTY_ROOT,
    MAX_TREE_SIZE,
    Checkpoint,
    MalformedInput,
    OriginMismatch,
    UnknownKey,
    open_checkpoint,
    parse_checkpoint,
    verify_checkpoint,
)

LOG = TestSigner.from_seed_text("example.com/log", "checkpoint tests: log")
ROOT = bytes(range(32))
ROOT_TEXT = base64.b64encode(ROOT).decode()


def test_parse_minimal_checkpoint():
    checkpoint = parse_checkpoint(f"example.com/log\n5\n{ROOT_TEXT}\n")
    assert checkpoint == Checkpoint("example.com/log", 5, ROOT, ())


def test_parse_accepts_bytes():
    checkpoint = parse_checkpoint(f"example.com/log\n5\n{ROOT_TEXT}\n".encode())
    assert checkpoint.size == 5


def test_parse_keeps_extension_lines():
    text = checkpoint_text("example.com/log", 5, ROOT, ("a b c", "\u00e9"))
    assert parse_checkpoint(text).extensions == ("a b c", "\u00e9")


def test_parse_largest_size():
    text = checkpoint_text("example.com/log", MAX_TREE_SIZE, ROOT)
    assert parse_checkpoint(text).size == 2**63 - 1


def test_parse_size_two_to_the_63_fails():
    text = checkpoint_text("example.com/log", 2**63, ROOT)
    with pytest.raises(
        MalformedInput,
        match="expected a value less than 9223372036854775808",
    ):
        parse_checkpoint(text)


def test_parse_empty_extension_line_fails():
    text = f"example.com/log\n5\n{ROOT_TEXT}\n\nmore\n"
    with pytest.raises(
        MalformedInput,
        match="checkpoint line 4: expected an extension line",
    ):
        parse_checkpoint(text)


def test_parse_size_zero_needs_empty_root():
    text = checkpoint_text("example.com/log", 0, EMPTY_ROOT)
    assert parse_checkpoint(text).root == EMPTY_ROOT


def test_parse_missing_final_newline_fails():
    with pytest.raises(
        MalformedInput,
        match="expected the last line to end with a newline",
    ):
        parse_checkpoint(f"example.com/log\n5\n{ROOT_TEXT}")


def test_parse_control_character_fails():
    with pytest.raises(MalformedInput, match="checkpoint line 1: .* got U\\+0009"):
        parse_checkpoint(f"example.com\tlog\n5\n{ROOT_TEXT}\n")


def test_parse_invalid_utf8_fails():
    with pytest.raises(MalformedInput, match="checkpoint: expected UTF-8 text"):
        parse_checkpoint(b"\xffexample.com/log\n5\n" + ROOT_TEXT.encode() + b"\n")


def test_parse_not_text_fails():
    with pytest.raises(
        MalformedInput,
        match="checkpoint: expected str or bytes, got list",
    ):
        parse_checkpoint(["example.com/log"])


def test_verify_signed_checkpoint():
    note = sign_note(checkpoint_text("example.com/log", 5, ROOT), LOG)
    assert verify_checkpoint(note, [LOG.verifier_key], "example.com/log").size == 5


def test_verify_without_origin_accepts_any_origin():
    note = sign_note(checkpoint_text("other.example/log", 5, ROOT), LOG)
    assert verify_checkpoint(note, [LOG.verifier_key]).origin == "other.example/log"


def test_verify_wrong_origin_fails():
    note = sign_note(checkpoint_text("other.example/log", 5, ROOT), LOG)
    message = "expected origin 'example.com/log', got 'other.example/log'"
    with pytest.raises(OriginMismatch, match=message):
        verify_checkpoint(note, [LOG.verifier_key], "example.com/log")


def test_verify_origin_of_wrong_type_fails():
    note = sign_note(checkpoint_text("example.com/log", 5, ROOT), LOG)
    with pytest.raises(MalformedInput, match="expected origin: expected str or None"):
        verify_checkpoint(note, [LOG.verifier_key], b"example.com/log")


def test_verify_unknown_key_fails():
    other = TestSigner.from_seed_text("example.com/log", "checkpoint tests: other")
    note = sign_note(checkpoint_text("example.com/log", 5, ROOT), other)
    with pytest.raises(UnknownKey, match="expected a signature by one of"):
        verify_checkpoint(note, [LOG.verifier_key])


def test_open_checkpoint_returns_note():
    note_text = sign_note(checkpoint_text("example.com/log", 5, ROOT), LOG)
    checkpoint, note = open_checkpoint(note_text, [LOG.verifier_key])

    assert checkpoint.root == ROOT
    assert note.key_names == ("example.com/log",)
