"""C2SP tlog-cosignature v1: Ed25519 cosignatures on checkpoints.

A cosignature is one more signature line on a checkpoint note, made by a
witness that checked the checkpoint is consistent with every earlier one it
saw for that log (https://c2sp.org/tlog-cosignature):

    — <witness name> base64(key id || timestamp || Ed25519 signature)

- the key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``; the type
  byte 0x04 keeps a cosigner key apart from a note key (type 0x01);
- the timestamp is 8 bytes, big-endian POSIX seconds, at most 2^63 - 1;
- the signature covers ``cosignature/v1\\n``, ``time <timestamp>\\n`` and the
  checkpoint text including its final newline.

Verifier keys of cosigners are ``<name>+<key id hex>+<base64(0x04 || key)>``,
and signer keys ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x04 || seed)>``.
"""

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from verifier._encoding import decode_base64, encode_base64, shorten
from verifier.errors import BadSignature, MalformedInput
from verifier.note import Note, parse_note

COSIGNATURE_TYPE = 0x04
MAX_TIMESTAMP = 2**63 - 1

_HEADER = b"cosignature/v1\n"
_KEY_ID_SIZE = 4
_TIMESTAMP_SIZE = 8
_SIGNATURE_SIZE = 64
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_KEY_NAME = re.compile(r"[\x21-\x2a\x2c-\x7e]+")
_SIGNER_PREFIX = "PRIVATE+KEY+"


@dataclass(frozen=True)
class CosignerKey:
    """A witness's public key for Ed25519 cosignatures (type 0x04)."""

    name: str
    key_id: bytes
    public_key: bytes
    text: str = field(repr=False)
    _ed25519: Ed25519PublicKey = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is a valid Ed25519 signature of ``message``."""
        try:
            self._ed25519.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Cosigner:
    """A witness's signing key; never printed or logged."""

    name: str
    key_id: bytes
    _private: Ed25519PrivateKey = field(repr=False, compare=False)

    @property
    def verifier_key(self) -> CosignerKey:
        public = self._private.public_key().public_bytes_raw()
        text = _key_text(self.name, public)
        return parse_cosigner_key(text)

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """Return the cosignature line, newline included, for ``checkpoint_text``."""
        _check_timestamp(timestamp)
        signature = self._private.sign(cosignature_message(checkpoint_text, timestamp))
        blob = self.key_id + timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature
        return f"\u2014 {self.name} {encode_base64(blob)}\n"


@dataclass(frozen=True)
class Cosignature:
    """A cosignature line that verified."""

    key: CosignerKey
    timestamp: int


def compute_cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """Return ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``."""
    material = name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:_KEY_ID_SIZE]


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    """Return the bytes a v1 cosignature signs: header, time line, checkpoint."""
    return (
        _HEADER
        + f"time {timestamp}\n".encode("ascii")
        + checkpoint_text.encode("utf-8")
    )


def parse_cosigner_key(text: str) -> CosignerKey:
    """Parse ``<name>+<key id hex>+<base64(0x04 || public key)>``.

    Raises ``MalformedInput`` for another form, another type byte (a note key
    of type 0x01 included: a witness signs cosignatures, not notes) or a key
    id that does not match.
    """
    name, public_key = _split_key(text, "cosigner key", secret=False)
    try:
        ed25519 = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as err:
        raise MalformedInput(f"cosigner key {name!r}: invalid Ed25519 key") from err
    key_id = compute_cosigner_key_id(name, public_key)
    return CosignerKey(name, key_id, public_key, text, ed25519)


def parse_cosigner_signer_key(text: str) -> Cosigner:
    """Parse ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x04 || seed)>``.

    Messages never repeat the key text, because it is secret.
    """
    if not isinstance(text, str) or not text.startswith(_SIGNER_PREFIX):
        raise MalformedInput(
            "cosigner signer key: expected PRIVATE+KEY+<name>+<key id>+<base64>; "
            "create one with `agentgate witness keygen`"
        )
    name, seed = _split_key(
        text[len(_SIGNER_PREFIX) :], "cosigner signer key", secret=True
    )
    private = Ed25519PrivateKey.from_private_bytes(seed)
    return Cosigner(
        name, compute_cosigner_key_id(name, _public_bytes(private)), private
    )


def generate_cosigner(name: str) -> tuple[str, str]:
    """Return a new ``(signer key text, verifier key text)`` pair named ``name``."""
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
        raise MalformedInput(
            "cosigner name: expected printable ASCII without spaces or '+', "
            f"got {shorten(name)}"
        )
    private = Ed25519PrivateKey.generate()
    public = _public_bytes(private)
    seed = private.private_bytes_raw()
    key_id = compute_cosigner_key_id(name, public)
    signer = (
        f"{_SIGNER_PREFIX}{name}+{key_id.hex()}+"
        f"{encode_base64(bytes([COSIGNATURE_TYPE]) + seed)}"
    )
    return signer, _key_text(name, public)


def verify_cosignatures(
    note: Note | str | bytes,
    keys: Iterable[CosignerKey],
    now: int | None = None,
    max_skew: int = 300,
) -> list[Cosignature]:
    """Return the cosignatures on a checkpoint note made by the given keys.

    Plan:

    1. split the note into its text and signature lines (no signature is
       checked here; the log's own signature is ``open_checkpoint``'s job);
    2. keep the lines whose key name and key id match a given key, ignoring
       every other line as C2SP signed-note requires;
    3. decode each kept line as key id, timestamp and Ed25519 signature and
       verify it over the cosignature message;
    4. when ``now`` (POSIX seconds) is given, reject a timestamp more than
       ``max_skew`` seconds in the future.

    A known key whose line does not verify raises ``BadSignature``: the note
    was altered, and counting the other lines would hide that. A key that
    signed twice is returned once, with its latest timestamp.
    """
    # Step 1.
    parsed = note if isinstance(note, Note) else parse_note(note)
    known = {(key.name, key.key_id): key for key in keys}

    found: dict[tuple[str, bytes], Cosignature] = {}
    for line in parsed.signatures:
        # Step 2.
        key = known.get((line.name, line.key_id))
        if key is None:
            continue

        # Step 3. The line's signature field is the blob after the key id.
        blob = line.signature
        if len(blob) != _TIMESTAMP_SIZE + _SIGNATURE_SIZE:
            raise MalformedInput(
                f"cosignature by {key.name}+{key.key_id.hex()}: expected "
                f"{_KEY_ID_SIZE + _TIMESTAMP_SIZE + _SIGNATURE_SIZE} bytes (key id, "
                f"timestamp, signature), got {_KEY_ID_SIZE + len(blob)}"
            )
        timestamp = int.from_bytes(blob[:_TIMESTAMP_SIZE], "big")
        _check_timestamp(timestamp)
        message = cosignature_message(parsed.text, timestamp)
        if not key.verify(message, blob[_TIMESTAMP_SIZE:]):
            raise BadSignature(
                f"cosignature by {key.name}+{key.key_id.hex()} at time {timestamp} "
                "does not verify over the checkpoint, so the checkpoint or the "
                "cosignature was altered"
            )

        # Step 4.
        if now is not None and timestamp > now + max_skew:
            raise BadSignature(
                f"cosignature by {key.name}+{key.key_id.hex()}: timestamp "
                f"{timestamp} lies {timestamp - now} s in the future (now {now}); "
                f"at most {max_skew} s of clock skew is accepted"
            )
        previous = found.get((key.name, key.key_id))
        if previous is None or previous.timestamp < timestamp:
            found[(key.name, key.key_id)] = Cosignature(key, timestamp)
    return list(found.values())


def decode_cosignature_line(line: str) -> tuple[str, bytes, int, bytes]:
    """Split a cosignature line into name, key id, timestamp and signature.

    Checks the framing only; ``verify_cosignatures`` checks the signature.
    """
    prefix = "\u2014 "
    if not line.startswith(prefix) or line.endswith("\n"):
        raise MalformedInput(
            f"cosignature line: expected '\u2014 <name> <base64>' without its "
            f"newline, got {shorten(line)}"
        )
    name, _, encoded = line[len(prefix) :].partition(" ")
    blob = decode_base64(encoded, "cosignature line")
    if len(blob) != _KEY_ID_SIZE + _TIMESTAMP_SIZE + _SIGNATURE_SIZE:
        raise MalformedInput(f"cosignature line: expected 76 bytes, got {len(blob)}")
    timestamp = int.from_bytes(blob[4:12], "big")
    _check_timestamp(timestamp)
    return name, blob[:4], timestamp, blob[12:]


def _split_key(text: str, label: str, secret: bool) -> tuple[str, bytes]:
    """Return the name and key material of a cosigner key, checking its key id.

    For a signer key (``secret``) messages never repeat the key text.
    """
    if not isinstance(text, str):
        raise MalformedInput(f"{label}: expected str, got {type(text).__name__}")
    displayed = "the key" if secret else shorten(text)
    name, plus1, rest = text.partition("+")
    key_id_hex, plus2, encoded = rest.partition("+")
    if not plus1 or not plus2 or not _KEY_NAME.fullmatch(name):
        raise MalformedInput(
            f"{label}: expected <name>+<key id hex>+<base64 key>, got {displayed}"
        )
    if not _KEY_ID_HEX.fullmatch(key_id_hex):
        raise MalformedInput(
            f"{label} {name!r}: expected a key id of 8 lowercase hex digits"
        )

    try:
        raw = decode_base64(encoded, f"{label} {name!r}")
    except MalformedInput:
        if secret:
            raise MalformedInput(
                f"{label} {name!r}: the key is not valid base64"
            ) from None
        raise
    if len(raw) != 33 or raw[0] != COSIGNATURE_TYPE:
        if raw[:1] == b"\x01":
            kind = "a note key (type 0x01)"
        else:
            kind = f"type {raw[:1].hex() or 'none'}, {len(raw)} bytes"
        raise MalformedInput(
            f"{label} {name!r}: expected 33 bytes of type 0x04 (Ed25519 "
            f"cosignature), got {kind}; create cosigner keys with "
            "`agentgate witness keygen`"
        )

    material = raw[1:]
    if secret:
        public = _public_bytes(Ed25519PrivateKey.from_private_bytes(material))
    else:
        public = material
    expected = compute_cosigner_key_id(name, public)
    if not hmac.compare_digest(expected, bytes.fromhex(key_id_hex)):
        raise MalformedInput(
            f"{label} {name!r}: the key id {key_id_hex} does not match the key, "
            f"whose id is {expected.hex()}; the key text is corrupt"
        )
    return name, material


def _key_text(name: str, public: bytes) -> str:
    key_id = compute_cosigner_key_id(name, public)
    encoded = base64.b64encode(bytes([COSIGNATURE_TYPE]) + public).decode("ascii")
    return f"{name}+{key_id.hex()}+{encoded}"


def _public_bytes(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


def _check_timestamp(timestamp: int) -> None:
    if not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedInput(
            f"cosignature timestamp: expected POSIX seconds in [0, 2^63 - 1], "
            f"got {timestamp!r}"
        )
