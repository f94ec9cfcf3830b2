"""C2SP tlog-cosignature v1: framing, signing, verifying, and one case per mutation."""

import base64
import json
from pathlib import Path

import pytest

from tests.verifier.signing import (
    TestSigner,
    b64,
    checkpoint_text,
    cosigner_keys,
    sign_note,
)
from verifier.cosignature import (
    compute_cosigner_key_id,
    cosignature_message,
    decode_cosignature_line,
    parse_cosigner_key,
    parse_cosigner_signer_key,
    verify_cosignatures,
)
from verifier.errors import BadSignature, MalformedInput
from verifier.note import open_note

VECTORS = (
    Path(__file__).parent.parent
    / "vectors"
    / "signed-note"
    / "signed-note-vectors.json"
)
ORIGIN = "agentgate.example/cosign"
LOG = TestSigner.from_seed_text(ORIGIN, "cosignature tests: log")
BODY = checkpoint_text(ORIGIN, 7, bytes(range(32)))
SIGNER_TEXT, VERIFIER_TEXT = cosigner_keys(
    "witness.example/w1", "cosignature tests: w1"
)
WITNESS = parse_cosigner_signer_key(SIGNER_TEXT)
KEY = parse_cosigner_key(VERIFIER_TEXT)


def c2sp_example() -> dict:
    vectors = json.loads(VECTORS.read_text())
    return next(
        v
        for v in vectors["real_world_format_examples"]
        if v["id"] == "c2sp-tlog-cosignature-example-line"
    )


def cosigned(timestamp: int = 1_700_000_000, body: str = BODY) -> str:
    return sign_note(body, LOG) + WITNESS.cosign(body, timestamp)


def test_c2sp_example_line_framing():
    example = c2sp_example()
    name, key_id, timestamp, signature = decode_cosignature_line(
        example["signature_line"]
    )

    assert name == "witness.example.com/w1"
    assert key_id.hex() == example["decoded"]["key_id_hex"] == "8d66cf3f"
    assert timestamp == example["decoded"]["timestamp_uint64_be"] == 1679315147
    assert len(signature) == 64


def test_c2sp_example_line_ignored_by_note_verifier():
    # The witness's public key is not published, so a verifier that does not
    # know it must skip the line and still verify the log's signature.
    example = c2sp_example()
    note = sign_note(BODY, LOG) + example["signature_line"] + "\n"
    opened = open_note(note, [LOG.verifier_key])
    assert opened.key_names == (ORIGIN,)
    assert verify_cosignatures(note, [KEY]) == []


def test_message_layout():
    message = cosignature_message(BODY, 1679315147)
    assert message == b"cosignature/v1\ntime 1679315147\n" + BODY.encode()


def test_key_forms():
    assert VERIFIER_TEXT.startswith("witness.example/w1+")
    assert base64.b64decode(VERIFIER_TEXT.rsplit("+", 1)[1])[0] == 0x04
    assert KEY.key_id == compute_cosigner_key_id("witness.example/w1", KEY.public_key)
    assert WITNESS.verifier_key == KEY
    assert SIGNER_TEXT.startswith("PRIVATE+KEY+witness.example/w1+")


def test_cosignature_verifies():
    found = verify_cosignatures(cosigned(), [KEY])
    assert [(c.key.name, c.timestamp) for c in found] == [
        ("witness.example/w1", 1_700_000_000)
    ]


def test_cosignature_does_not_count_as_log_signature():
    note = sign_note(BODY, LOG) + WITNESS.cosign(BODY, 5)
    # The note verifier has only the log key, so it ignores the cosignature line.
    assert open_note(note, [LOG.verifier_key]).key_names == (ORIGIN,)


def test_duplicate_line_counted_once_with_latest_time():
    note = cosigned(10) + WITNESS.cosign(BODY, 20)
    found = verify_cosignatures(note, [KEY])
    assert [c.timestamp for c in found] == [20]


def test_mutation_altered_checkpoint():
    note = cosigned().replace("\n7\n", "\n8\n", 1)
    with pytest.raises(
        BadSignature, match="cosignature by witness.example/w1.* does not"
    ):
        verify_cosignatures(note, [KEY])


def test_mutation_timestamp_changed():
    line = WITNESS.cosign(BODY, 100)
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1
    note = sign_note(BODY, LOG) + f"\u2014 witness.example/w1 {b64(bytes(blob))}\n"
    with pytest.raises(BadSignature, match="at time 101 does not verify"):
        verify_cosignatures(note, [KEY])


def test_mutation_truncated_signature():
    line = WITNESS.cosign(BODY, 100)
    blob = base64.b64decode(line.split(" ")[2])[:-1]
    note = sign_note(BODY, LOG) + f"\u2014 witness.example/w1 {b64(blob)}\n"
    with pytest.raises(
        MalformedInput, match="expected 76 bytes .key id, timestamp, signature., got 75"
    ):
        verify_cosignatures(note, [KEY])


def test_mutation_other_witness_name():
    note = sign_note(BODY, LOG) + WITNESS.cosign(BODY, 5).replace("w1", "w2")
    # Another name gives another key id, so the line is not this witness's.
    assert verify_cosignatures(note, [KEY]) == []


def test_future_timestamp_rejected():
    with pytest.raises(BadSignature, match="lies 1000 s in the future .now 1000."):
        verify_cosignatures(cosigned(2000), [KEY], now=1000)
    assert verify_cosignatures(cosigned(1200), [KEY], now=1000)


def test_note_key_is_not_a_cosigner_key():
    with pytest.raises(MalformedInput, match=r"got a note key \(type 0x01\)"):
        parse_cosigner_key(LOG.verifier_key)


def test_corrupt_key_id_rejected():
    name, key_id, rest = VERIFIER_TEXT.split("+", 2)
    wrong = f"{name}+{'0' * 8 if key_id != '0' * 8 else '1' * 8}+{rest}"
    with pytest.raises(MalformedInput, match="does not match the key"):
        parse_cosigner_key(wrong)


def test_signer_key_errors_do_not_echo_the_key():
    with pytest.raises(MalformedInput) as caught:
        parse_cosigner_signer_key(SIGNER_TEXT[:-4] + "!!!!")
    assert SIGNER_TEXT[-20:-4] not in str(caught.value)


def test_timestamp_bounds():
    with pytest.raises(
        MalformedInput, match=r"expected POSIX seconds in \[0, 2\^63 - 1\]"
    ):
        WITNESS.cosign(BODY, 2**63)
