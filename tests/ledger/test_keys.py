"""Keys: text forms, key ids, key files and their modes."""

import base64
import hashlib
import os
import stat

import pytest

from ledger import InvalidKey, KeyFileError, Signer, VerifierKey
from ledger.keys import (
    compute_key_id,
    key_file_stem,
    load_signer,
    load_verifier_key,
    write_key_pair,
)

from .conftest import ORIGIN, TEST_SEED


def test_signer_key_round_trip(signer):
    text = signer.signer_key()
    assert text.startswith(f"PRIVATE+KEY+{ORIGIN}+{signer.key_id.hex()}+")
    parsed = Signer.parse(text)
    assert parsed.verifier_key == signer.verifier_key
    assert parsed.sign(b"message") == signer.sign(b"message")


def test_verifier_key_round_trip(signer):
    text = str(signer.verifier_key)
    assert VerifierKey.parse(text) == signer.verifier_key
    name, key_id, encoded = text.split("+", 2)
    assert name == ORIGIN
    assert base64.b64decode(encoded)[0] == 0x01


def test_key_id_computation(signer):
    public = signer.verifier_key.public_key
    expected = hashlib.sha256(ORIGIN.encode() + b"\n" + b"\x01" + public).digest()[:4]
    assert signer.key_id == expected
    assert compute_key_id(ORIGIN, public) == expected


def test_repr_hides_secret(signer):
    seed_text = base64.b64encode(b"\x01" + TEST_SEED).decode()
    assert seed_text not in repr(signer)
    assert str(signer.verifier_key) in repr(signer)


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "non-empty"),
        ("has space", "contains ' '"),
        ("plus+sign", "contains '\\+'"),
        ("tab\tname", "contains '\\\\t'"),
        ("caf\u00e9", "contains '\u00e9'"),
    ],
)
def test_bad_key_name_rejected(name, message):
    with pytest.raises(InvalidKey, match=message):
        Signer.from_seed(name, TEST_SEED)


def test_seed_must_be_32_bytes():
    with pytest.raises(InvalidKey, match="an Ed25519 seed is 32 bytes, got 31"):
        Signer.from_seed(ORIGIN, bytes(31))


def test_signer_key_wrong_prefix_rejected():
    with pytest.raises(InvalidKey, match="must start with 'PRIVATE\\+KEY\\+'"):
        Signer.parse("SECRET+KEY+a+00000000+AAAA")


def test_signer_key_wrong_key_id_rejected(signer):
    text = signer.signer_key()
    name_and_id = f"{ORIGIN}+{signer.key_id.hex()}"
    tampered = text.replace(name_and_id, f"{ORIGIN}+00000000")
    with pytest.raises(
        InvalidKey,
        match=f"key id 00000000 does not match the key, which has id "
        f"{signer.key_id.hex()}",
    ):
        Signer.parse(tampered)


def test_signer_key_bad_material_does_not_echo_it(signer):
    text = signer.signer_key()[:-4] + "!!!!"
    with pytest.raises(InvalidKey) as caught:
        Signer.parse(text)
    assert "key material is not base64" in str(caught.value)
    assert text.rsplit("+", 1)[1] not in str(caught.value)


def test_verifier_key_wrong_type_byte_rejected(signer):
    material = base64.b64encode(b"\x02" + signer.verifier_key.public_key).decode()
    with pytest.raises(
        InvalidKey,
        match=r"expected 33 bytes starting with 0x01 \(Ed25519\), got 33 bytes "
        r"starting with 0x02",
    ):
        VerifierKey.parse(f"{ORIGIN}+{signer.key_id.hex()}+{material}")


def test_verifier_key_short_material_rejected(signer):
    material = base64.b64encode(b"\x01" + bytes(31)).decode()
    with pytest.raises(InvalidKey, match="got 32 bytes"):
        VerifierKey.parse(f"{ORIGIN}+{signer.key_id.hex()}+{material}")


def test_verifier_key_uppercase_key_id_rejected(signer):
    text = str(signer.verifier_key).replace(
        signer.key_id.hex(), signer.key_id.hex().upper()
    )
    if text == str(signer.verifier_key):
        pytest.skip("key id has no hex letters")
    with pytest.raises(InvalidKey, match="8 lowercase hex digits"):
        VerifierKey.parse(text)


def test_verifier_key_missing_parts_rejected():
    with pytest.raises(InvalidKey, match="must have the form NAME\\+KEYID\\+BASE64"):
        VerifierKey.parse("just-a-name")


# -- files --------------------------------------------------------------------


def test_key_file_stem_replaces_unsafe_characters():
    assert key_file_stem("agentgate.example/demo") == "agentgate.example_demo"
    assert key_file_stem("log-1_a.b") == "log-1_a.b"


def test_key_pair_written_with_modes(tmp_path, signer):
    key_path, pub_path = write_key_pair(signer, tmp_path)
    assert key_path == tmp_path / "agentgate.test_log.key"
    assert pub_path == tmp_path / "agentgate.test_log.pub"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_text() == signer.signer_key() + "\n"
    assert pub_path.read_text() == str(signer.verifier_key) + "\n"
    assert load_signer(key_path).verifier_key == signer.verifier_key
    assert load_verifier_key(pub_path) == signer.verifier_key


def test_key_file_mode_is_set_at_creation(tmp_path, signer):
    """The file is never readable by others, even under a permissive umask."""
    old_umask = os.umask(0)
    try:
        key_path, _ = write_key_pair(signer, tmp_path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_existing_key_file_not_overwritten(tmp_path, signer):
    key_path, _ = write_key_pair(signer, tmp_path)
    with pytest.raises(
        KeyFileError,
        match="already exists; remove it or write the keys to another directory",
    ):
        write_key_pair(Signer.generate(ORIGIN), tmp_path)
    assert load_signer(key_path).verifier_key == signer.verifier_key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_key_file_readable_by_others_rejected(tmp_path, signer, mode):
    key_path, _ = write_key_pair(signer, tmp_path)
    key_path.chmod(mode)
    with pytest.raises(
        KeyFileError, match=rf"has mode {mode:04o}.*run: chmod 600 {key_path}"
    ):
        load_signer(key_path)


def test_key_file_mode_400_accepted(tmp_path, signer):
    key_path, _ = write_key_pair(signer, tmp_path)
    key_path.chmod(0o400)
    assert load_signer(key_path).verifier_key == signer.verifier_key


def test_missing_key_file(tmp_path):
    with pytest.raises(KeyFileError, match="key file .*nothing.key not found"):
        load_signer(tmp_path / "nothing.key")


def test_key_file_with_two_lines_rejected(tmp_path, signer):
    path = tmp_path / "two.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (signer.signer_key() + "\nextra\n").encode())
    os.close(fd)
    with pytest.raises(KeyFileError, match="must hold exactly one line"):
        load_signer(path)


def test_key_file_with_bad_key_names_path(tmp_path):
    path = tmp_path / "bad.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not a key\n")
    os.close(fd)
    with pytest.raises(
        KeyFileError, match=rf"key file {path}: signer key must start with"
    ):
        load_signer(path)
