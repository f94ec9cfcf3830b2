"""Ed25519 keys in the C2SP signed-note forms, the files that contain them,
and the key records that name the keys that sign a log's checkpoints.

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

A log names its keys in ``key`` records (specs/records.md). A key signs the
checkpoint of a tree size only when that tree contains the record that
introduced the key and not the record that retired it (``LogKey.signs``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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

from .canonical import canonical_bytes
from .errors import InvalidKey, InvalidRequest, KeyFileError

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "RETIRED",
    "KeyChange",
    "LogKey",
    "Signer",
    "VerifierKey",
    "apply_key_changes",
    "compute_key_id",
    "key_file_stem",
    "key_record",
    "load_signer",
    "load_verifier_key",
    "signers_for",
    "validate_key_name",
    "write_key_pair",
]

logger = logging.getLogger(__name__)

# Signature type byte of Ed25519 keys in C2SP signed-note.
ED25519_SIGNATURE_TYPE = 0x01

# Value of the ``status`` member of a key record that retires its key.
RETIRED = "retired"

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
        if text.startswith("PRIVATE+KEY+"):
            raise InvalidKey(
                "verifier key: got a signer (private) key, not shown; pass the "
                "public verifier key instead, the NAME.pub file"
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
    replaced by ``_``, and so are leading dots. The stem therefore contains no
    path separator and never names a hidden file, ``.`` or ``..``.
    """
    validate_key_name(name)
    stem = _UNSAFE_FILE_CHARACTERS.sub("_", name)
    dots = len(stem) - len(stem.lstrip("."))
    return "_" * dots + stem[dots:]


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
    """Read a one-line key file, checking its mode when it is secret.

    A secret key file that contains a verifier key instead is reported as
    such before its mode, because chmod would not make it a signer key.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
            if secret:
                _check_signer_file(path, data, os.fstat(handle.fileno()).st_mode)
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


def _check_signer_file(path: Path, data: bytes, mode: int) -> None:
    """Raise ``KeyFileError`` for a verifier key file or an insecure mode."""
    if not data.startswith(_SIGNER_PREFIX.encode("ascii")):
        try:
            VerifierKey.parse(data.decode("ascii").removesuffix("\n"))
        except (InvalidKey, UnicodeDecodeError):
            pass
        else:
            suggestion = ""
            if path.suffix == ".pub":
                suggestion = f" ({path.with_suffix('.key')}, if keygen wrote both)"
            raise KeyFileError(
                f"key file {path} contains a verifier (public) key, but a signer "
                f"(private) key is needed here; pass the signer key file"
                f"{suggestion}, which agentgate keygen writes with mode 0600"
            )
    permissions = stat.S_IMODE(mode)
    if os.name == "posix" and permissions & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {permissions:04o}, so group or others "
            f"can access it; run: chmod 600 {path}"
        )


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


@dataclass(frozen=True)
class LogKey:
    """A key of a log and the leaf indexes of the records that name it."""

    verifier_key: str
    added_index: int
    retired_index: int | None = None

    def signs(self, size: int) -> bool:
        """Return whether this key signs the checkpoint of ``size`` leaves.

        It does when the tree of that size contains the key record that
        introduced the key and not the one that retired it.
        """
        if size <= self.added_index:
            return False
        return self.retired_index is None or size <= self.retired_index


def key_record(
    key: Signer | VerifierKey, now: datetime, *, retired: bool = False
) -> bytes:
    """Return the canonical ``key`` record that introduces or retires ``key``.

    The ``id`` is ``k-`` and the first 16 bytes (hex) of the SHA-256 of the
    record without its id, so the record is reproducible from the key and
    the time. A retiring record has ``"status": "retired"``.
    """
    if now.tzinfo is None:
        raise InvalidRequest(f"time {now!r} has no time zone; pass an aware datetime")
    verifier_key = key.verifier_key if isinstance(key, Signer) else key
    record: dict[str, Any] = {
        "type": "key",
        "version": 1,
        "time": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "role": "log",
        "key": str(verifier_key),
    }
    if retired:
        record["status"] = RETIRED
    digest = hashlib.sha256(canonical_bytes(record)).hexdigest()
    record["id"] = "k-" + digest[:32]
    return canonical_bytes(record)


@dataclass(frozen=True)
class KeyChange:
    """A key record at ``position`` of a batch that introduces or retires ``key``."""

    position: int
    key: Signer | VerifierKey
    retire: bool = False

    @property
    def verifier_key(self) -> VerifierKey:
        """The verifier key that the record names."""
        if isinstance(self.key, Signer):
            return self.key.verifier_key
        return self.key


def signers_for(
    size: int, log_keys: Mapping[str, LogKey], signers: Sequence[Signer]
) -> list[Signer]:
    """Return the ``signers`` whose keys sign the checkpoint of ``size`` leaves."""
    chosen = []
    for signer in signers:
        log_key = log_keys.get(str(signer.verifier_key))
        if log_key is not None and log_key.signs(size):
            chosen.append(signer)
    return chosen


def apply_key_changes(
    origin: str,
    size: int,
    log_keys: Mapping[str, LogKey],
    signers: Sequence[Signer],
    changes: Sequence[KeyChange],
    indexes: Sequence[object],
) -> tuple[dict[str, LogKey], list[Signer]]:
    """Return the keys of log ``origin`` and the signers after ``changes``.

    ``log_keys`` are the keys at tree ``size``, and ``indexes[position]`` is
    the leaf index of the key record at that batch position. A new key that
    comes as a ``Signer`` joins the signers. Raises ``InvalidRequest`` for a
    key introduced twice (retired or not) or a retirement of a key that is
    not active. Nothing passed in is modified.
    """
    result = dict(log_keys)
    new_signers = list(signers)
    for change in changes:
        index = indexes[change.position]
        text = str(change.verifier_key)
        existing = result.get(text)
        if change.retire:
            if existing is None or existing.retired_index is not None:
                active = [key for key in log_keys.values() if key.signs(size)]
                names = ", ".join(key.verifier_key for key in active) or "none"
                raise InvalidRequest(
                    f"key {text} is not an active key of log {origin!r} (its "
                    f"active keys: {names})"
                )
            result[text] = replace(existing, retired_index=index)
            continue
        if existing is not None:
            retired = existing.retired_index
            status = "" if retired is None else f" and retired by leaf {retired}"
            raise InvalidRequest(
                f"key {text} is already a key of log {origin!r}, introduced by leaf "
                f"{existing.added_index}{status}; a key is introduced once, so "
                "generate a new one"
            )
        result[text] = LogKey(text, index)
        if isinstance(change.key, Signer) and change.key not in new_signers:
            new_signers.append(change.key)
    return result, new_signers
