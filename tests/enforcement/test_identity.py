"""Identities: C2SP verifier and signer key forms, key files."""

from __future__ import annotations

import os

import pytest

from enforcement.errors import ConfigError
from enforcement.identity import Identity, parse_verifier_key
from tests.enforcement.conftest import seeded_identity


def test_verifier_key_round_trip():
    identity = seeded_identity("agent.test")

    parsed = parse_verifier_key(identity.verifier_key)

    assert parsed == identity.public
    assert parsed.key_id == identity.key_id
    assert identity.key_id.startswith("agent.test+")


def test_signer_key_round_trip():
    identity = seeded_identity("agent.test")

    loaded = Identity.from_signer_key(identity.signer_key)

    assert loaded.verifier_key == identity.verifier_key


def test_signature_verifies_only_for_message():
    identity = seeded_identity("agent.test")
    signature = identity.sign(b"message")

    assert identity.public.verify(signature, b"message")
    assert not identity.public.verify(signature, b"messagE")
    assert not identity.public.verify(signature[:-1], b"message")


@pytest.mark.parametrize(("text", "message"), [
    (5, r"verifier key must be a string 'name\+hex8\+base64', got 5 \(int\)"),
    (["a"], r"got \['a'\] \(list\)"),
    ("agent.test", r"expected 'name\+hex8\+base64', got 1 '\+'-separated parts"),
    ("agent.test+00000000+!!!", r"key material is not base64"),
    ("agent.test+00000000+AAAA", r"expected 33 bytes starting with 0x01"),
])
def test_bad_verifier_key_rejected(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_verifier_key(text)


def test_key_id_mismatch_rejected():
    key = seeded_identity("agent.test").verifier_key
    name, key_id, material = key.split("+", 2)
    wrong = f"{name}+{'0' * 8 if key_id != '0' * 8 else '1' * 8}+{material}"

    with pytest.raises(ConfigError, match="does not match the key"):
        parse_verifier_key(wrong)


def test_renamed_key_rejected():
    key = seeded_identity("agent.test").verifier_key
    with pytest.raises(ConfigError, match="does not match the key"):
        parse_verifier_key("mallory.test" + key[len("agent.test"):])


def test_key_file_round_trip(tmp_path):
    identity = seeded_identity("agent.test")
    path = tmp_path / "agent.key"

    identity.save(path)

    assert os.stat(path).st_mode & 0o777 == 0o600
    assert Identity.load(path).verifier_key == identity.verifier_key


def test_readable_key_file_rejected(tmp_path):
    path = tmp_path / "agent.key"
    seeded_identity("agent.test").save(path)
    os.chmod(path, 0o644)

    with pytest.raises(ConfigError, match=f"has mode 644; others can read it. "
                       f"Run: chmod 600 {path}"):
        Identity.load(path)


def test_existing_key_file_not_overwritten(tmp_path):
    path = tmp_path / "agent.key"
    path.write_text("keep me")

    with pytest.raises(FileExistsError):
        seeded_identity("agent.test").save(path)

    assert path.read_text() == "keep me"


@pytest.mark.parametrize("name", ["", "has space", "a+b"])
def test_bad_name_rejected(name):
    with pytest.raises(ConfigError, match="invalid key name"):
        Identity.generate(name)
