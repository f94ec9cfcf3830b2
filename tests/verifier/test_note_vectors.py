"""Signed-note and checkpoint vectors: published facts and generated cases."""

import json
from pathlib import Path

import pytest

from tests.verifier.signing import TestSigner, sign_note
from verifier import (
    Checkpoint,
    UnknownKey,
    VerificationError,
    open_note,
    parse_checkpoint,
    parse_note,
    parse_verifier_key,
    verify_checkpoint,
)

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors/signed-note/signed-note-vectors.json")
    .read_text(encoding="utf-8")
)
FACTS = [fact for fact in VECTORS["facts"] if "verifier_key" in fact]
CASES = VECTORS["cases"]
EXAMPLES = {example["id"]: example for example in VECTORS["real_world_format_examples"]}


def by_id(items):
    return [pytest.param(item, id=item["id"]) for item in items]


def note_bytes(case: dict) -> bytes:
    if "signed_note_hex" in case:
        return bytes.fromhex(case["signed_note_hex"])
    return case["signed_note"].encode("utf-8")


def test_vector_counts():
    assert len(FACTS) == 6
    assert len(CASES) == 40


@pytest.mark.parametrize("name", sorted(VECTORS["test_keys"]))
def test_case_signing_keys_match_their_verifier_keys(name):
    entry = VECTORS["test_keys"][name]
    signer = TestSigner(name, bytes.fromhex(entry["ed25519_seed_hex"]))
    assert signer.verifier_key == entry["verifier_key"]


@pytest.mark.parametrize("fact", by_id(FACTS))
def test_fact_key_parses(fact):
    key = parse_verifier_key(fact["verifier_key"])

    assert key.name == fact["key_name"]
    assert key.key_id.hex() == fact["expected_key_id_hex"]
    assert key.public_key.hex() == fact["ed25519_public_key_hex"]


@pytest.mark.parametrize("fact", by_id(FACTS))
def test_fact_note_verifies(fact):
    note = open_note(fact["signed_note"], [fact["verifier_key"]])

    assert note.text == fact["note_text"]
    assert note.key_names == (fact["key_name"],)


@pytest.mark.parametrize(
    "fact", by_id([f for f in FACTS if "signer_key" in f or "ed25519_seed_hex" in f])
)
def test_fact_signature_line_reproduced(fact):
    if "signer_key" in fact:
        signer = TestSigner.from_signer_key(fact["signer_key"])
    else:
        signer = TestSigner(fact["key_name"], bytes.fromhex(fact["ed25519_seed_hex"]))

    assert signer.verifier_key == fact["verifier_key"]
    assert signer.signature_line(fact["note_text"]) == fact["signature_line"] + "\n"
    assert sign_note(fact["note_text"], signer) == fact["signed_note"]


def doubly_signed():
    (fact,) = [f for f in VECTORS["facts"] if f["id"] == "go-sumdb-note-doubly-signed"]
    keys = {f["key_name"]: f["verifier_key"] for f in FACTS}
    return fact["signed_note"], keys["PeterNeumann"], keys["EnochRoot"]


def test_doubly_signed_note_with_one_key():
    text, peter, _ = doubly_signed()
    assert open_note(text, [peter]).key_names == ("PeterNeumann",)


def test_doubly_signed_note_with_both_keys():
    text, peter, enoch = doubly_signed()
    assert open_note(text, [peter, enoch]).key_names == ("PeterNeumann", "EnochRoot")


def test_doubly_signed_note_with_no_keys():
    text, _, _ = doubly_signed()
    with pytest.raises(UnknownKey, match=r"expected a signature by one of \[\]"):
        open_note(text, [])


@pytest.mark.parametrize("case", by_id(CASES))
def test_case(case):
    data = note_bytes(case)
    keys = case["known_verifier_keys"]

    def run():
        if case["layer"] == "note":
            return open_note(data, keys)
        return verify_checkpoint(data, keys, case.get("expected_origin"))

    if case["expected"].startswith("reject"):
        with pytest.raises(VerificationError):
            run()
        return

    assert case["expected"] == "ok"
    result = run()
    if "expected_verified_key_names" in case:
        assert list(result.key_names) == case["expected_verified_key_names"]
    if "checkpoint_expectation" in case:
        expectation = case["checkpoint_expectation"]
        assert result == Checkpoint(
            expectation["origin"],
            expectation["size"],
            bytes.fromhex(expectation["root_hex"]),
            tuple(expectation["extensions"]),
        )


@pytest.mark.parametrize(
    "case", by_id([case for case in CASES if case["layer"] == "checkpoint"])
)
def test_checkpoint_case_note_layer_passes(case):
    # Every checkpoint-layer case has a valid signature, so only the body
    # parser may reject it.
    note = open_note(note_bytes(case), case["known_verifier_keys"])
    assert note.key_names == ("example.com/testlog",)


def test_letsencrypt_checkpoint_with_grease_parses():
    example = EXAMPLES["letsencrypt-sycamore-checkpoint-with-grease"]
    note = parse_note(example["signed_note"])
    checkpoint = parse_checkpoint(note.text)

    assert [len(s.signature) + 4 for s in note.signatures] == [30, 78, 68, 86]
    assert checkpoint.origin == "log.sycamore.ct.letsencrypt.org/2026h1"
    assert checkpoint.size == 875467750


def test_letsencrypt_checkpoint_without_keys_is_rejected():
    example = EXAMPLES["letsencrypt-sycamore-checkpoint-with-grease"]
    with pytest.raises(UnknownKey, match=r"grease\.invalid\+dbd40c87"):
        open_note(example["signed_note"], [])


def test_rekor_checkpoint_origin_with_spaces_parses():
    example = EXAMPLES["rekor-v1-checkpoint-origin-differs-from-key-name"]
    note = parse_note(example["signed_note"])
    checkpoint = parse_checkpoint(note.text)

    assert checkpoint.origin == "rekor.sigstore.dev - 2605736670972794746"
    assert checkpoint.size == 79317123
    assert note.signatures[0].name == "rekor.sigstore.dev"


def test_cosignature_line_from_unknown_witness_is_ignored():
    example = EXAMPLES["c2sp-tlog-cosignature-example-line"]
    (case,) = [case for case in CASES if case["id"] == "cp-valid"]
    text = case["signed_note"] + example["signature_line"] + "\n"

    note = open_note(text, case["known_verifier_keys"])

    assert note.key_names == ("example.com/testlog",)
    assert note.signatures[1].key_id.hex() == example["decoded"]["key_id_hex"]
