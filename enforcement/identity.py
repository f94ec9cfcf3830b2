"""Ed25519 identities of principals, agents and approvers.

Keys use the C2SP signed-note forms, the same as the log's keys:
``name+hex8+base64(0x01 || public key)`` for a verifier key and
``PRIVATE+KEY+name+hex8+base64(0x01 || seed)`` for a signer key, where hex8 is
the first four bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from enforcement.canonical import decode_base64
from enforcement.errors import ConfigError

_ED25519 = b"\x01"
_SIGNER_PREFIX = "PRIVATE+KEY+"


def _key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "+ \t\n") or not name.isprintable():
        raise ConfigError(
            f"invalid key name {name!r}: use printable characters without "
            "spaces or '+'"
        )


def _decode_key_bytes(text: str, encoded: str) -> bytes:
    try:
        raw = decode_base64(encoded)
    except (binascii.Error, ValueError) as err:
        raise ConfigError(
            f"key {_shown(text)}: key material is not base64: {err}"
        ) from err
    if len(raw) != 33 or raw[:1] != _ED25519:
        raise ConfigError(
            f"key {_shown(text)}: expected 33 bytes starting with 0x01 (Ed25519), "
            f"got {len(raw)} bytes"
        )
    return raw[1:]


def _shown(text: str) -> str:
    """Return ``text`` as messages may show it: a signer key's secret never.

    Only the name of a key whose text looks like a signer key is shown.
    """
    if text.startswith(_SIGNER_PREFIX):
        name = text[len(_SIGNER_PREFIX):].split("+", 1)[0]
        return f"'{_SIGNER_PREFIX}{name}+...' (a signer key, not shown)"
    return repr(text)


@dataclass(frozen=True)
class PublicIdentity:
    """A verifier key: a name and an Ed25519 public key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> str:
        """The ``name+hex8`` form that records use to name a key."""
        return f"{self.name}+{_key_id(self.name, self.public_key).hex()}"

    @property
    def verifier_key(self) -> str:
        encoded = base64.b64encode(_ED25519 + self.public_key).decode()
        return f"{self.key_id}+{encoded}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Return True when ``signature`` is this key's Ed25519 signature."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature, message
            )
        except InvalidSignature:
            return False
        return True


def parse_verifier_key(text: str) -> PublicIdentity:
    """Parse a ``name+hex8+base64`` verifier key, checking its key id."""
    if not isinstance(text, str):
        raise ConfigError(
            f"verifier key must be a string 'name+hex8+base64', got "
            f"{text!r} ({type(text).__name__})"
        )
    return _parse_verifier_key(text)


@lru_cache(maxsize=4096)
def _parse_verifier_key(text: str) -> PublicIdentity:
    if text.startswith(_SIGNER_PREFIX):
        raise ConfigError(
            f"verifier key: got {_shown(text)}; pass the public verifier key "
            "instead, the NAME.pub file"
        )
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise ConfigError(
            f"verifier key {text!r}: expected 'name+hex8+base64', "
            f"got {len(parts)} '+'-separated parts"
        )
    name, hex_id, encoded = parts
    _check_name(name)
    public_key = _decode_key_bytes(text, encoded)
    expected = _key_id(name, public_key).hex()
    if hex_id != expected:
        raise ConfigError(
            f"verifier key {text!r}: key id {hex_id!r} does not match the key "
            f"(expected {expected!r})"
        )
    return PublicIdentity(name, public_key)


class Identity:
    """An Ed25519 signing identity (principal, agent or approver)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private_key = private_key
        public_key = private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        self.public = PublicIdentity(name, public_key)

    @classmethod
    def generate(cls, name: str) -> Identity:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Identity:
        if len(seed) != 32:
            raise ConfigError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_signer_key(cls, text: str) -> Identity:
        """Load a ``PRIVATE+KEY+name+hex8+base64`` signer key."""
        text = text.strip()
        if not text.startswith(_SIGNER_PREFIX):
            raise ConfigError("signer key must start with 'PRIVATE+KEY+'")
        parts = text[len(_SIGNER_PREFIX):].split("+", 2)
        if len(parts) != 3:
            raise ConfigError("signer key: expected 'PRIVATE+KEY+name+hex8+base64'")
        name, hex_id, encoded = parts
        _check_name(name)
        identity = cls.from_seed(name, _decode_key_bytes("PRIVATE+KEY+...", encoded))
        if hex_id != _key_id(name, identity.public.public_key).hex():
            raise ConfigError(f"signer key for {name!r}: key id does not match")
        return identity

    @classmethod
    def load(cls, path: str | Path) -> Identity:
        """Load a signer key file, refusing one that others can read."""
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                # The mode of the file that was opened, not of whatever the
                # path names by the time it is read.
                mode = os.fstat(handle.fileno()).st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise ConfigError(
                        f"key file {path} has mode {stat.S_IMODE(mode):o}; "
                        f"others can read it. Run: chmod 600 {path}"
                    )
                data = handle.read(4096)
        except OSError as err:
            raise ConfigError(f"cannot read key file {path}: {err}") from err
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as err:
            raise ConfigError(f"key file {path} is not ASCII text") from err
        return cls.from_signer_key(text)

    def save(self, path: str | Path) -> None:
        """Write the signer key to a new file created with mode 0600."""
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(self.signer_key + "\n")

    @property
    def signer_key(self) -> str:
        seed = self._private_key.private_bytes_raw()
        encoded = base64.b64encode(_ED25519 + seed).decode()
        return f"{_SIGNER_PREFIX}{self.public.key_id}+{encoded}"

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @property
    def verifier_key(self) -> str:
        return self.public.verifier_key

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        return f"Identity({self.key_id!r})"
