"""The verifier takes no algorithm or parameter from the data it checks.

The hash (SHA-256 with the RFC 9162 prefixes), the signature algorithm
(Ed25519, note algorithm byte 0x01), the log's origin and the tile height
(8) are fixed by the verifier or pinned by its caller. Each case below
hands it input that claims something else, and each must be rejected.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import tests.verifier.tiles_writer as tiles_writer
from tests.verifier.signing import (
    EM_DASH,
    TestLog,
    TestSigner,
    b64,
    checkpoint_text,
    receipt_text,
)
from verifier import VerificationError, verify_checkpoint, verify_receipt
from verifier.note import parse_verifier_key
from verifier.tilehash import TileHashReader
from verifier.tiles import TiledLog

ORIGIN = "agentgate.test/verifier-inputs"
SIGNER = TestSigner.from_seed_text(ORIGIN, "verifier inputs")
LOG = TestLog(SIGNER, ORIGIN, 300)


def _key_id(name: str, algorithm: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([algorithm])
                          + public_key).digest()[:4]


def test_log_checkpoint_verifies():
    """The control: the unaltered log verifies."""
    checkpoint = verify_checkpoint(LOG.checkpoint(), [SIGNER.verifier_key], ORIGIN)

    assert checkpoint.size == 300


@pytest.mark.parametrize("algorithm", [0x02, 0x04, 0x06, 0xFF])
def test_other_algorithm_key_rejected(algorithm):
    """A pinned key with another algorithm byte is not used as an Ed25519 key.

    Its key hash is computed for that algorithm, as the note format defines,
    and the signature line carries that hash, so the line matches the key.
    """
    key_id = _key_id(ORIGIN, algorithm, SIGNER.public_key)
    other_key = f"{ORIGIN}+{key_id.hex()}+{b64(bytes([algorithm]) + SIGNER.public_key)}"
    text = checkpoint_text(ORIGIN, 300, LOG.tree.root(300))
    signature = SIGNER.private_key.sign(text.encode())
    note = text + "\n" + f"{EM_DASH} {ORIGIN} {b64(key_id + signature)}\n"

    with pytest.raises(VerificationError):
        verify_checkpoint(note, [other_key], ORIGIN)


def test_algorithm_byte_swapped_in_key_rejected():
    """Changing only the algorithm byte of the pinned key breaks its key hash."""
    name, key_id, encoded = SIGNER.verifier_key.split("+", 2)
    raw = bytearray(base64.b64decode(encoded))
    raw[0] = 0x04

    with pytest.raises(VerificationError, match="key"):
        parse_verifier_key(f"{name}+{key_id}+{b64(bytes(raw))}")


def test_cosignature_in_place_of_signature_rejected():
    """A tlog-cosignature by the log's key (algorithm 0x04) is no note signature.

    The line carries the log key's own key hash, so only the algorithm
    differs: the signature is over the cosignature message, with a timestamp.
    """
    text = checkpoint_text(ORIGIN, 300, LOG.tree.root(300))
    timestamp = 1_800_000_000
    message = (f"cosignature/v1\ntime {timestamp}\n" + text).encode()
    signature = SIGNER.private_key.sign(message)
    payload = SIGNER.key_id + timestamp.to_bytes(8, "big") + signature
    note = text + "\n" + f"{EM_DASH} {ORIGIN} {b64(payload)}\n"

    with pytest.raises(VerificationError):
        verify_checkpoint(note, [SIGNER.verifier_key], ORIGIN)


def test_signature_by_other_key_with_same_hash_rejected():
    """A line whose key hash matches the pinned key but signed by another key."""
    intruder = Ed25519PrivateKey.from_private_bytes(bytes(32))
    text = checkpoint_text(ORIGIN, 300, LOG.tree.root(300))
    note = text + "\n" + (f"{EM_DASH} {ORIGIN} "
                          f"{b64(SIGNER.key_id + intruder.sign(text.encode()))}\n")

    with pytest.raises(VerificationError):
        verify_checkpoint(note, [SIGNER.verifier_key], ORIGIN)


# -- receipts ---------------------------------------------------------------------


def test_receipt_verifies():
    """The control: an unaltered receipt verifies."""
    receipt = verify_receipt(LOG.receipt(7), [SIGNER.verifier_key], ORIGIN)

    assert receipt.index == 7


@pytest.mark.parametrize("line", [
    "hash sha512",
    "algorithm sha1",
    "hash_algorithm: SHA-512",
])
def test_receipt_claiming_other_hash_rejected(line):
    head, checkpoint = LOG.receipt(7).split("\n\n", 1)
    lines = head.split("\n")
    altered = "\n".join([lines[0], line, *lines[1:]]) + "\n\n" + checkpoint

    with pytest.raises(VerificationError):
        verify_receipt(altered, [SIGNER.verifier_key], ORIGIN)


def test_receipt_hashed_with_sha512_rejected():
    """A receipt whose proof was built with another hash does not verify."""

    def leaf(entry: bytes) -> bytes:
        return hashlib.sha512(b"\x00" + entry).digest()[:32]

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha512(b"\x01" + left + right).digest()[:32]

    entries = LOG.entries[:2]
    root = node(leaf(entries[0]), leaf(entries[1]))
    note = (checkpoint_text(ORIGIN, 2, root) + "\n"
            + SIGNER.signature_line(checkpoint_text(ORIGIN, 2, root)))
    receipt = receipt_text(0, entries[0], [leaf(entries[1])], note)

    with pytest.raises(VerificationError):
        verify_receipt(receipt, [SIGNER.verifier_key], ORIGIN)


# -- origin -----------------------------------------------------------------------


def test_checkpoint_of_other_origin_rejected():
    """A checkpoint signed by the pinned key but naming another log is rejected."""
    other = "agentgate.test/another-log"
    text = checkpoint_text(other, 300, LOG.tree.root(300))
    note = text + "\n" + SIGNER.signature_line(text)

    with pytest.raises(VerificationError, match="origin"):
        verify_checkpoint(note, [SIGNER.verifier_key], ORIGIN)


def test_receipt_of_other_origin_rejected():
    other = "agentgate.test/another-log"
    text = checkpoint_text(other, 300, LOG.tree.root(300))
    note = text + "\n" + SIGNER.signature_line(text)
    receipt = receipt_text(7, LOG.entries[7], LOG.tree.path(7, 300), note)

    with pytest.raises(VerificationError, match="origin"):
        verify_receipt(receipt, [SIGNER.verifier_key], ORIGIN)


# -- tile height ------------------------------------------------------------------


def _tiled_root(directory) -> bytes:
    """Return the root of the tiled log in ``directory``, read as height 8."""
    return TileHashReader(TiledLog(str(directory)), 300).root()


def test_tiles_of_height_8_pass(tmp_path):
    """The control: the independent writer's height-8 tiles give the signed root."""
    tiles_writer.write_tiles(tmp_path, LOG.entries, LOG.checkpoint())

    assert _tiled_root(tmp_path) == LOG.tree.root(300)


@pytest.mark.parametrize("height", [4, 7, 9])
def test_tiles_of_other_height_rejected(tmp_path, monkeypatch, height):
    """Tiles written with another height never yield the signed root."""
    monkeypatch.setattr(tiles_writer, "WIDTH", 1 << height)
    tiles_writer.write_tiles(tmp_path, LOG.entries, LOG.checkpoint())

    try:
        root = _tiled_root(tmp_path)
    except VerificationError:
        return
    assert root != LOG.tree.root(300)
