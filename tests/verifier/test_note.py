"""Verifier keys and signed notes: parsing, signatures, and named mutations."""

import base64

import pytest

from tests.verifier.signing import TestSigner, sign_note
from verifier import (
    MAX_SIGNATURES,
    BadSignature,
    MalformedInput,
    UnknownKey,
    VerifierKey,
    compute_key_id,
    open_note,
    parse_note,
    parse_verifier_key,
)

LOG = TestSigner.from_seed_text("example.com/log", "note tests: log")
NEW_LOG = TestSigner.from_seed_text("example.com/log", "note tests: rotated log")
WITNESS = TestSigner.from_seed_text("witness.example", "note tests: witness")
TEXT = "example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"


def unknown_line(name: str, fill: int) -> str:
    blob = bytes([fill]) * 4 + bytes([fill]) * 64
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


# Verifier keys.


def test_verifier_key_round_trip():
    key = parse_verifier_key(LOG.verifier_key)

    assert key.name == "example.com/log"
    assert key.key_id == LOG.key_id
    assert key.public_key == LOG.public_key
    assert str(key) == LOG.verifier_key


def test_key_id_is_sha256_prefix():
    assert compute_key_id(LOG.name, LOG.public_key) == LOG.key_id


def test_verifier_key_missing_parts_fails():
    with pytest.raises(
        MalformedInput,
        match=r"expected <name>\+<key id hex>\+<base64 key>",
    ):
        parse_verifier_key("example.com/log+c4f6a3be")


def test_verifier_key_uppercase_key_id_fails():
    name, key_id, encoded = LOG.verifier_key.split("+", 2)
    assert key_id != key_id.upper(), "this test needs a key id with a letter"
    text = f"{name}+{key_id.upper()}+{encoded}"
    with pytest.raises(
        MalformedInput,
        match="expected a key id of 8 lowercase hex digits",
    ):
        parse_verifier_key(text)


def test_verifier_key_name_with_space_fails():
    with pytest.raises(MalformedInput, match="expected a name of printable ASCII"):
        parse_verifier_key("bad name+" + LOG.verifier_key.split("+", 1)[1])


def test_verifier_key_wrong_key_id_fails():
    name, key_id, encoded = LOG.verifier_key.split("+", 2)
    wrong = f"{int(key_id, 16) ^ 1:08x}"
    message = f"the key id {wrong} does not match the key, whose id is {key_id}"

    with pytest.raises(MalformedInput, match=message):
        parse_verifier_key(f"{name}+{wrong}+{encoded}")


def test_verifier_key_wrong_type_byte_fails():
    encoded = base64.b64encode(b"\x02" + LOG.public_key).decode()
    text = f"{LOG.name}+{LOG.key_id.hex()}+{encoded}"
    with pytest.raises(
        MalformedInput,
        match="expected 33 bytes starting with type 0x01",
    ):
        parse_verifier_key(text)


def test_verifier_key_short_key_fails():
    encoded = base64.b64encode(b"\x01" + LOG.public_key[:31]).decode()
    text = f"{LOG.name}+{LOG.key_id.hex()}+{encoded}"
    with pytest.raises(MalformedInput, match="got 32 bytes starting with 01"):
        parse_verifier_key(text)


def test_verifier_key_signer_key_is_not_echoed():
    seed = base64.b64encode(b"\x01" + bytes(range(32))).decode()
    signer_key = f"PRIVATE+KEY+example.com/log+{LOG.key_id.hex()}+{seed}"

    message = "got a signer \\(private\\) key"
    with pytest.raises(MalformedInput, match=message) as caught:
        parse_verifier_key(signer_key)
    assert seed not in str(caught.value)


def test_verifier_key_not_a_string_fails():
    with pytest.raises(MalformedInput, match="verifier key: expected str, got bytes"):
        parse_verifier_key(LOG.verifier_key.encode())


# Opening notes.


def test_note_signed_by_known_key_opens():
    note = open_note(sign_note(TEXT, LOG), [LOG.verifier_key])

    assert note.text == TEXT
    assert note.key_names == ("example.com/log",)


def test_note_accepts_single_key_string():
    assert open_note(sign_note(TEXT, LOG), LOG.verifier_key).key_names == (LOG.name,)


def test_note_accepts_parsed_key():
    key = parse_verifier_key(LOG.verifier_key)
    assert open_note(sign_note(TEXT, LOG), [key]).key_names == (LOG.name,)


def test_note_wrong_key_is_unknown():
    message = (
        r"expected a signature by one of "
        rf"\[witness\.example\+{WITNESS.key_id.hex()}\], "
        rf"found signatures only by \[example\.com/log\+{LOG.key_id.hex()}\]"
    )
    with pytest.raises(UnknownKey, match=message):
        open_note(sign_note(TEXT, LOG), [WITNESS.verifier_key])


def test_note_rotated_key_same_name_is_unknown():
    with pytest.raises(UnknownKey, match="expected a signature by one of"):
        open_note(sign_note(TEXT, LOG), [NEW_LOG.verifier_key])


def test_note_rotation_accepts_either_key():
    keys = [LOG.verifier_key, NEW_LOG.verifier_key]
    assert open_note(sign_note(TEXT, NEW_LOG), keys).key_names == (NEW_LOG.name,)


def test_note_altered_text_fails_signature():
    note = sign_note(TEXT, LOG).replace("\n8\n", "\n9\n")
    with pytest.raises(
        BadSignature,
        match=f"known key example.com/log\\+{LOG.key_id.hex()}",
    ):
        open_note(note, [LOG.verifier_key])


def test_note_reordered_signature_lines_still_open():
    text, _, signatures = sign_note(TEXT, LOG, WITNESS).partition("\n\n")
    first, second = signatures.splitlines(keepends=True)
    reordered = text + "\n\n" + second + first

    note = open_note(reordered, [LOG.verifier_key, WITNESS.verifier_key])

    assert note.key_names == ("witness.example", "example.com/log")


def test_note_signature_line_moved_into_text_fails():
    text, _, signatures = sign_note(TEXT, LOG, WITNESS).partition("\n\n")
    first, second = signatures.splitlines(keepends=True)
    moved = text + "\n" + first + "\n" + second

    with pytest.raises(BadSignature, match="witness.example"):
        open_note(moved, [LOG.verifier_key, WITNESS.verifier_key])


def test_note_second_bad_signature_by_same_key_fails():
    good = LOG.signature_line(TEXT)
    bad = LOG.signature_line(TEXT.replace("8", "9"))
    note = TEXT + "\n" + good + bad

    with pytest.raises(BadSignature, match="does not verify over the note text"):
        open_note(note, [LOG.verifier_key])


def test_note_key_listed_twice_counts_once():
    note = open_note(sign_note(TEXT, LOG, LOG), [LOG.verifier_key, LOG.verifier_key])
    assert note.key_names == (LOG.name,)


def test_note_conflicting_keys_with_same_id_fail():
    real = parse_verifier_key(LOG.verifier_key)
    other = parse_verifier_key(WITNESS.verifier_key)
    forged = VerifierKey(
        LOG.name, LOG.key_id, other.public_key, "forged", other._ed25519
    )

    with pytest.raises(MalformedInput, match="two different keys share the name"):
        open_note(sign_note(TEXT, LOG), [real, forged])


def test_note_bad_key_list_fails():
    with pytest.raises(MalformedInput, match="verifier key: expected str, got int"):
        open_note(sign_note(TEXT, LOG), [42])


def test_note_max_signatures_accepted():
    count = MAX_SIGNATURES - 1
    unknown = "".join(unknown_line(f"w{n}.example", n) for n in range(count))
    note = sign_note(TEXT, LOG) + unknown

    assert open_note(note, [LOG.verifier_key]).key_names == (LOG.name,)


def test_note_too_many_signatures_fail():
    unknown = "".join(unknown_line(f"w{n}.example", n) for n in range(MAX_SIGNATURES))
    note = sign_note(TEXT, LOG) + unknown

    with pytest.raises(
        MalformedInput,
        match="expected at most 100 signature lines, got 101",
    ):
        open_note(note, [LOG.verifier_key])


def test_note_crlf_fails():
    note = sign_note(TEXT, LOG).replace("\n", "\r\n")
    with pytest.raises(MalformedInput, match="note line 1: .* got U\\+000D"):
        open_note(note, [LOG.verifier_key])


def test_note_lone_surrogate_fails():
    with pytest.raises(MalformedInput, match="lone surrogate U\\+D800 at offset 0"):
        open_note("\ud800" + sign_note(TEXT, LOG), [LOG.verifier_key])


def test_note_not_text_fails():
    with pytest.raises(MalformedInput, match="note: expected str or bytes, got int"):
        open_note(7, [LOG.verifier_key])


def test_note_without_signature_lines_fails():
    with pytest.raises(MalformedInput, match="expected at least one signature line"):
        open_note(TEXT + "\n", [LOG.verifier_key])


def test_note_signature_with_only_key_id_fails():
    line = f"\u2014 {LOG.name} {base64.b64encode(LOG.key_id).decode()}\n"
    with pytest.raises(MalformedInput, match="note line 5: .* got 4 bytes in total"):
        open_note(TEXT + "\n" + line, [LOG.verifier_key])


def test_note_signature_without_name_fails():
    line = LOG.signature_line(TEXT).replace(f" {LOG.name} ", "  ")
    with pytest.raises(
        MalformedInput,
        match="note line 5: expected '\u2014 <key name>",
    ):
        open_note(TEXT + "\n" + line, [LOG.verifier_key])


def test_note_non_canonical_signature_base64_fails():
    line = LOG.signature_line(TEXT)
    # 68 bytes leave two padding bits in the last character before "=".
    last = line[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    bumped = alphabet[alphabet.index(last) + 1]
    mutated = line[:-3] + bumped + line[-2:]

    with pytest.raises(MalformedInput, match="expected the canonical base64 encoding"):
        open_note(TEXT + "\n" + mutated, [LOG.verifier_key])


def test_parse_note_returns_all_signatures_unverified():
    note = parse_note(sign_note(TEXT, LOG, WITNESS))

    assert note.verified == ()
    assert [s.name for s in note.signatures] == ["example.com/log", "witness.example"]
    assert note.signatures[1].key_id == WITNESS.key_id
