"""Signing against the published signed-note vectors (Go sumdb/note documentation)."""

import json
from pathlib import Path

import pytest

from ledger import Signer, VerifierKey
from ledger.note import sign_note

VECTORS = json.loads(
    (
        Path(__file__).resolve().parents[1]
        / "vectors"
        / "signed-note"
        / "signed-note-vectors.json"
    ).read_text()
)
FACTS = {fact["id"]: fact for fact in VECTORS["facts"]}
PETER = FACTS["go-sumdb-note-peterneumann"]


def test_documented_signer_key_parses():
    signer = Signer.parse(PETER["signer_key"])
    assert str(signer.verifier_key) == PETER["verifier_key"]
    assert signer.key_id.hex() == PETER["expected_key_id_hex"]


def test_documented_note_signature_reproduced():
    signer = Signer.parse(PETER["signer_key"])
    assert sign_note(PETER["note_text"], [signer]) == PETER["signed_note"]


@pytest.mark.parametrize(
    "fact", [f for f in VECTORS["facts"] if "verifier_key" in f], ids=lambda f: f["id"]
)
def test_published_verifier_keys_parse(fact):
    key = VerifierKey.parse(fact["verifier_key"])
    assert key.key_id.hex() == fact["expected_key_id_hex"]
    assert key.public_key.hex() == fact["ed25519_public_key_hex"]
    assert str(key) == fact["verifier_key"]


@pytest.mark.parametrize("name", sorted(VECTORS["test_keys"]))
def test_generated_case_keys_derive_from_seeds(name):
    entry = VECTORS["test_keys"][name]
    signer = Signer.from_seed(name, bytes.fromhex(entry["ed25519_seed_hex"]))
    assert str(signer.verifier_key) == entry["verifier_key"]
