"""Ed25519 keys in the C2SP signed-note forms, and the files that hold them.

A key has a name, a 4-byte key id and an Ed25519 key pair. The key id is
the first 4 bytes of ``SHA-256(name || 0x0A || 0x01 || public_key)``, where
``0x01`` is the signature type of Ed25519 in C2SP signed-note. The two text
forms are::

    <name>+<key id, 8 lowercase hex digits>+<base64(0x01 || public key)>
    PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte seed)>

The first (verifier key) is public. The second (signer key) is a secret and
is kept in a file that only its owner can read: ``write_key_pair`` creates
it with mode 0600 and ``load_signer`` rejects a file that grants any access
to group or others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PrivateFormat,
    PublicFormat,
    NoEncryption,
)

from .errors import InvalidKey, KeyFileError

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "Signer",
    "VerifierKey",
    "compute_key_id",
    "key_file_stem",
    "load_signer",
    "load_verifier_key",
    "validate_key_name",
    "write_key_pair",
]

logger = logging.getLogger(__name__)

# Signature type byte of Ed25519 keys in C2SP signed-note.
ED25519_SIGNATURE_TYPE = 0x01

_SIGNER_PREFIX = "PRIVATE+KEY+"
_KEY_ID_PATTERN = re.compile(r"[0-9a-f]{8}")
# Characters kept as they are when a key name becomes a file name.
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def validate_key_name(name: str) -> None:
    """Raise ``InvalidKey`` unless ``name`` is a valid key name.

    A key name is non-empty printable ASCII (0x21-0x7E) without ``+``, so
    that it can neither split a key's text form nor a signature line.
    """
    if not isinstance(name, str) or not name:
        raise InvalidKey(f"key name must be a non-empty string, got {name!r}")
    bad = [c for c in name if not 0x21 <= ord(c) <= 0x7E or c == "+"]
    if bad:
        raise InvalidKey(
            f"key name {name!r} contains {bad[0]!r}; use printable ASCII "
            "without spaces or '+'"
        )


def compute_key_id(name: str, public_key: bytes) -> bytes:
    """Compute the 4-byte key id of an Ed25519 public key named ``name``."""
    material = name.encode("ascii") + b"\n" + bytes([ED25519_SIGNATURE_TYPE])
    return hashlib.sha256(material + public_key).digest()[:4]


def _decode_key_material(encoded: str, what: str) -> bytes:
    """Decode ``base64(0x01 || 32 bytes)`` strictly and return the 32 bytes."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidKey(f"{what}: key material {encoded!r} is not base64") from err
    if base64.b64encode(raw).decode("ascii") != encoded:
        raise InvalidKey(f"{what}: key material {encoded!r} is not canonical base64")
    if len(raw) != 33 or raw[0] != ED25519_SIGNATURE_TYPE:
        raise InvalidKey(
            f"{what}: expected 33 bytes starting with 0x01 (Ed25519), got "
            f"{len(raw)} bytes starting with 0x{raw[:1].hex() or '--'}"
        )
    return raw[1:]


def _check_key_id(name: str, key_id_hex: str, public_key: bytes, what: str) -> bytes:
    if not _KEY_ID_PATTERN.fullmatch(key_id_hex):
        raise InvalidKey(
            f"{what}: key id must be 8 lowercase hex digits, got {key_id_hex!r}"
        )
    expected = compute_key_id(name, public_key)
    if expected.hex() != key_id_hex:
        raise InvalidKey(
            f"{what}: key id {key_id_hex} does not match the key, which has id "
            f"{expected.hex()}; the key text is corrupt or was edited"
        )
    return expected


@dataclass(frozen=True)
class VerifierKey:
    """A public Ed25519 key with its name and key id."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse ``<name>+<key id hex>+<base64(0x01 || public key)>``."""
        if not isinstance(text, str):
            raise InvalidKey(
                f"verifier key must be a string, got {type(text).__name__}"
            )
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise InvalidKey(
                f"verifier key {text!r} must have the form NAME+KEYID+BASE64"
            )
        name, key_id_hex, encoded = parts
        validate_key_name(name)
        public_key = _decode_key_material(encoded, f"verifier key {name}")
        key_id = _check_key_id(name, key_id_hex, public_key, f"verifier key {name}")
        return cls(name=name, key_id=key_id, public_key=public_key)

    def __str__(self) -> str:
        material = bytes([ED25519_SIGNATURE_TYPE]) + self.public_key
        encoded = base64.b64encode(material).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


class Signer:
    """An Ed25519 private key that signs notes under a key name.

    ``repr`` and ``str`` never show the secret; ``signer_key()`` does.
    """

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        validate_key_name(name)
        self._private_key = private_key
        public_key = private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        self.name = name
        self.key_id = compute_key_id(name, public_key)
        self.verifier_key = VerifierKey(name, self.key_id, public_key)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Create a signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """Create the signer whose Ed25519 private key is the 32-byte ``seed``."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            size = len(seed) if isinstance(seed, bytes) else type(seed).__name__
            raise InvalidKey(f"an Ed25519 seed is 32 bytes, got {size}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>``.

        Error messages never repeat the key material.
        """
        if not isinstance(text, str) or not text.startswith(_SIGNER_PREFIX):
            raise InvalidKey("signer key must start with 'PRIVATE+KEY+'")
        parts = text[len(_SIGNER_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise InvalidKey(
                "signer key must have the form PRIVATE+KEY+NAME+KEYID+BASE64"
            )
        name, key_id_hex, encoded = parts
        validate_key_name(name)
        try:
            seed = _decode_key_material(encoded, f"signer key {name}")
        except InvalidKey:
            # Not chained: the original message quotes the secret material.
            raise InvalidKey(
                f"signer key {name}: key material is not base64 of 0x01 and a "
                "32-byte seed"
            ) from None
        signer = cls.from_seed(name, seed)
        _check_key_id(
            name, key_id_hex, signer.verifier_key.public_key, f"signer key {name}"
        )
        return signer

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._private_key.sign(message)

    def signer_key(self) -> str:
        """Return the secret signer key text. Keep it out of logs."""
        seed = self._private_key.private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        encoded = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + seed)
        return (
            f"{_SIGNER_PREFIX}{self.name}+{self.key_id.hex()}+{encoded.decode('ascii')}"
        )

    def public_key(self) -> Ed25519PublicKey:
        """Return the public half as a ``cryptography`` object."""
        return self._private_key.public_key()

    def __repr__(self) -> str:
        return f"Signer({str(self.verifier_key)!r})"


def key_file_stem(name: str) -> str:
    """Return the file name stem for a key named ``name``.

    Key names are often log origins such as ``agentgate.example/demo``, so
    every character other than letters, digits, ``.``, ``_`` and ``-`` is
    replaced by ``_``.
    """
    validate_key_name(name)
    return _UNSAFE_FILE_CHARACTERS.sub("_", name)


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` and write ``data``; never overwrite."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as err:
        raise KeyFileError(
            f"{path} already exists; remove it or write the keys to another directory"
        ) from err
    except OSError as err:
        raise KeyFileError(f"cannot create {path}: {err.strerror}") from err
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_key_pair(
    signer: Signer, directory: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write ``<stem>.key`` (mode 0600) and ``<stem>.pub`` into ``directory``.

    The stem comes from ``key_file_stem``. Neither file may exist yet, so an
    existing key is never overwritten. Return the two paths.
    """
    directory = Path(directory)
    stem = key_file_stem(signer.name)
    key_path = directory / f"{stem}.key"
    pub_path = directory / f"{stem}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise KeyFileError(
                f"{path} already exists; remove it or write the keys to another "
                "directory"
            )

    _write_new_file(key_path, (signer.signer_key() + "\n").encode("ascii"), 0o600)
    _write_new_file(pub_path, (str(signer.verifier_key) + "\n").encode("ascii"), 0o644)
    logger.info("wrote key pair %s to %s", signer.verifier_key, directory)
    return key_path, pub_path


def _read_key_text(path: Path, *, secret: bool) -> str:
    """Read a one-line key file, checking its mode first when it is secret."""
    try:
        with open(path, "rb") as handle:
            if secret and os.name == "posix":
                mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
                if mode & 0o077:
                    raise KeyFileError(
                        f"key file {path} has mode {mode:04o}, so group or others "
                        f"can access it; run: chmod 600 {path}"
                    )
            data = handle.read(4096)
    except FileNotFoundError as err:
        raise KeyFileError(f"key file {path} not found") from err
    except OSError as err:
        raise KeyFileError(f"cannot read key file {path}: {err.strerror}") from err

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise KeyFileError(f"key file {path} is not ASCII text") from err
    if text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise KeyFileError(f"key file {path} must hold exactly one line")
    return text


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """Load a signer key file, rejecting it unless its mode is 0600 or stricter."""
    path = Path(path)
    text = _read_key_text(path, secret=True)
    try:
        return Signer.parse(text)
    except InvalidKey as err:
        raise KeyFileError(f"key file {path}: {err}") from err


def load_verifier_key(path: str | os.PathLike[str]) -> VerifierKey:
    """Load a verifier key file (one line, any mode)."""
    path = Path(path)
    text = _read_key_text(path, secret=False)
    try:
        return VerifierKey.parse(text)
    except InvalidKey as err:
        raise KeyFileError(f"key file {path}: {err}") from err
