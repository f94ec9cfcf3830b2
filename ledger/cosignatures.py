"""Witness cosignatures: cosigner keys, cosignature lines and witness policies.

A cosignature is one more signature line on a checkpoint note, in the form
of C2SP tlog-cosignature v1 (https://c2sp.org/tlog-cosignature)::

    \\u2014 <witness name> <base64(key id || 8-byte timestamp || signature)>

The key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]`` and the
Ed25519 signature covers ``cosignature/v1\\n``, ``time <timestamp>\\n`` and
the checkpoint text.

A witness policy lists the witnesses and the quorum of them that must
cosign, in the file format of specs/witness.md that the verifier reads
(``witness <label> <cosigner key>`` lines and one ``quorum <k>`` line). The
ledger parses it itself, because it shares no code with the verifier. A
checkpoint meets the policy when cosignatures by at least ``k`` distinct
public keys of the policy verify on it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import InvalidKey, InvalidRequest, StorageError
from .keys import validate_key_name
from .note import MAX_SIGNATURES

__all__ = [
    "COSIGNATURE_TYPE",
    "MAX_CLOCK_SKEW",
    "Cosignature",
    "CosignerKey",
    "WitnessPolicy",
    "attach_cosignatures",
    "check_cosignature_line",
    "compute_cosigner_key_id",
    "cosignature_message",
    "load_witness_policy",
    "parse_witness_policy",
    "read_cosignatures",
    "split_note",
]

# Signature type byte of Ed25519 cosignatures (C2SP tlog-cosignature).
COSIGNATURE_TYPE = 0x04
MAX_WITNESSES = 64
# Verifiers reject a cosignature timestamp more than this far in the future.
MAX_CLOCK_SKEW = 300
_MAX_TIMESTAMP = (1 << 63) - 1
_SIGNATURE_PREFIX = "\u2014 "
_HEADER = b"cosignature/v1\n"
_LABEL = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class CosignerKey:
    """A witness's public Ed25519 cosignature key (type 0x04) with its name."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> CosignerKey:
        """Parse ``<name>+<key id hex>+<base64(0x04 || public key)>``.

        Raises ``InvalidKey`` for another form, another type byte (a log key
        of type 0x01 included) or a key id that does not match the key.
        """
        parts = text.split("+", 2) if isinstance(text, str) else []
        if len(parts) != 3:
            raise InvalidKey(
                f"cosigner key {text!r} must have the form NAME+KEYID+BASE64, as "
                "agentgate witness keygen writes it"
            )
        name, key_id_hex, encoded = parts
        validate_key_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidKey(f"cosigner key {name}: {encoded!r} is not base64") from err
        if len(raw) != 33 or raw[0] != COSIGNATURE_TYPE:
            raise InvalidKey(
                f"cosigner key {name}: expected 33 bytes starting with 0x04 (Ed25519 "
                f"cosignature), got {len(raw)} bytes starting with "
                f"0x{raw[:1].hex() or '--'}; a log key (0x01) cannot be a witness"
            )
        key_id = compute_cosigner_key_id(name, raw[1:])
        if not _KEY_ID_HEX.fullmatch(key_id_hex) or key_id.hex() != key_id_hex:
            raise InvalidKey(
                f"cosigner key {name}: key id {key_id_hex!r} does not match the key, "
                f"whose id is {key_id.hex()}; the key text is corrupt"
            )
        return cls(name=name, key_id=key_id, public_key=raw[1:])

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is this key's signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature, message
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def __str__(self) -> str:
        material = base64.b64encode(bytes([COSIGNATURE_TYPE]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{material.decode('ascii')}"


@dataclass(frozen=True)
class Cosignature:
    """A cosignature line that verified, with its newline."""

    key: CosignerKey
    timestamp: int
    line: str


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses a checkpoint needs, by label, and how many of them."""

    witnesses: tuple[tuple[str, CosignerKey], ...]
    quorum: int

    @property
    def keys(self) -> list[CosignerKey]:
        """The witnesses' keys, in the order of the policy file."""
        return [key for _, key in self.witnesses]

    def distinct_keys(self) -> set[bytes]:
        """Return the distinct public keys of the policy."""
        return {key.public_key for _, key in self.witnesses}

    def count(self, cosignatures: Iterable[Cosignature]) -> int:
        """Return how many distinct public keys of the policy made ``cosignatures``."""
        policy_keys = self.distinct_keys()
        return len({c.key.public_key for c in cosignatures} & policy_keys)


def compute_cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """Return ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``."""
    material = name.encode("ascii") + b"\n" + bytes([COSIGNATURE_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:4]


def cosignature_message(text: str, timestamp: int) -> bytes:
    """Return the bytes a v1 cosignature signs: header, time line, checkpoint text."""
    return _HEADER + f"time {timestamp}\n".encode("ascii") + text.encode("utf-8")


# -- the policy file ------------------------------------------------------------


def parse_witness_policy(text: str, where: str = "witness policy") -> WitnessPolicy:
    """Parse a witness policy; raise ``InvalidRequest`` naming the bad line."""
    witnesses: list[tuple[str, CosignerKey]] = []
    quorum = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        at = f"{where} line {number}"
        if words[0] == "witness" and len(words) == 3:
            label = words[1]
            if not _LABEL.fullmatch(label):
                raise InvalidRequest(
                    f"{at}: witness label {label!r} is invalid; use 1 to 64 letters, "
                    "digits or ._:-"
                )
            if label in dict(witnesses):
                raise InvalidRequest(f"{at}: witness {label!r} is listed twice")
            try:
                key = CosignerKey.parse(words[2])
            except InvalidKey as err:
                raise InvalidRequest(f"{at}: {err}") from err
            witnesses.append((label, key))
        elif words[0] == "quorum" and len(words) == 2:
            if quorum is not None:
                raise InvalidRequest(f"{at}: a second quorum line; keep one")
            if not _DECIMAL.fullmatch(words[1]):
                raise InvalidRequest(
                    f"{at}: quorum {words[1]!r} is not a decimal number"
                )
            quorum = int(words[1])
        else:
            raise InvalidRequest(
                f"{at}: expected 'witness <label> <cosigner key>' or 'quorum <k>', "
                f"got {line[:80]!r}"
            )

    if not witnesses:
        raise InvalidRequest(f"{where}: expected at least one witness line, found none")
    if len(witnesses) > MAX_WITNESSES:
        raise InvalidRequest(
            f"{where}: expected at most {MAX_WITNESSES} witnesses, got {len(witnesses)}"
        )
    if quorum is None:
        raise InvalidRequest(f"{where}: expected a 'quorum <k>' line, found none")
    distinct = len({key.public_key for _, key in witnesses})
    if not 1 <= quorum <= distinct:
        raise InvalidRequest(
            f"{where}: quorum {quorum} must lie between 1 and the {distinct} "
            "distinct witness keys listed"
        )
    return WitnessPolicy(tuple(witnesses), quorum)


def load_witness_policy(path: str | Path) -> WitnessPolicy:
    """Read and parse a witness policy file (UTF-8)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as err:
        raise InvalidRequest(
            f"witness policy file {path} not found; check the --witness-policy path"
        ) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidRequest(f"witness policy {path} is not UTF-8 text") from err
    return parse_witness_policy(text, str(path))


# -- cosignature lines ----------------------------------------------------------


def split_note(note: str) -> tuple[str, list[str]]:
    """Split a signed note at its last blank line into text and signature lines.

    The text keeps its final newline; the lines lose theirs.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise InvalidRequest(f"not a signed note: {note[:80]!r}")
    return note[: split + 1], note[split + 2 : -1].split("\n")


def check_cosignature_line(
    line: str, key: CosignerKey, text: str, now: int | None
) -> Cosignature | None:
    """Return the cosignature if ``line`` is ``key``'s, None if it is another key's.

    Raises ``InvalidRequest`` when the line is ``key``'s and does not verify.
    """
    if not line.startswith(_SIGNATURE_PREFIX):
        return None
    name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if name != key.name or blob[:4] != key.key_id:
        return None
    if len(blob) != 4 + 8 + 64:
        raise InvalidRequest(
            f"cosignature by {key.name}+{key.key_id.hex()}: expected 76 bytes (key "
            f"id, timestamp, signature), got {len(blob)}"
        )
    timestamp = int.from_bytes(blob[4:12], "big")
    if timestamp > _MAX_TIMESTAMP:
        raise InvalidRequest(
            f"cosignature by {key.name}: timestamp {timestamp} exceeds 2^63 - 1"
        )
    if not key.verify(cosignature_message(text, timestamp), blob[12:]):
        raise InvalidRequest(
            f"cosignature by {key.name}+{key.key_id.hex()} at time {timestamp} "
            "does not verify over the checkpoint"
        )
    if now is not None and timestamp > now + MAX_CLOCK_SKEW:
        raise InvalidRequest(
            f"cosignature by {key.name}: timestamp {timestamp} lies "
            f"{timestamp - now} s in the future (now {now}); verifiers accept at "
            f"most {MAX_CLOCK_SKEW} s; check the witness's clock"
        )
    return Cosignature(key, timestamp, line + "\n")


def read_cosignatures(note: str, keys: Iterable[CosignerKey]) -> list[Cosignature]:
    """Return the cosignatures on a checkpoint the ledger stored or published.

    One per key (its latest). Raises ``StorageError`` when a line of a given
    key does not verify, because the note was altered after it was written.
    """
    text, lines = split_note(note)
    found: dict[bytes, Cosignature] = {}
    for key in keys:
        for line in lines:
            try:
                cosignature = check_cosignature_line(line, key, text, None)
            except InvalidRequest as err:
                origin, size = text.split("\n")[:2]
                raise StorageError(
                    f"checkpoint of {origin!r} at tree size {size}: {err}; the "
                    "stored or published checkpoint was altered"
                ) from err
            previous = found.get(key.public_key)
            if cosignature is not None and (
                previous is None or previous.timestamp < cosignature.timestamp
            ):
                found[key.public_key] = cosignature
    return list(found.values())


def attach_cosignatures(note: str, cosignatures: Sequence[Cosignature]) -> str:
    """Return ``note`` with ``cosignatures`` appended.

    A line of the note by the same key name and key id is replaced, so a key
    signs each note once. Raises ``InvalidRequest`` past 100 signature lines,
    the most that verifiers accept.
    """
    text, lines = split_note(note)
    replaced = {(c.key.name, c.key.key_id) for c in cosignatures}
    kept = [line for line in lines if _line_key(line) not in replaced]
    new_lines = kept + [c.line.rstrip("\n") for c in cosignatures]
    if len(new_lines) > MAX_SIGNATURES:
        raise InvalidRequest(
            f"the checkpoint would carry {len(new_lines)} signature lines, more "
            f"than the {MAX_SIGNATURES} that verifiers accept; list fewer witnesses"
        )
    return text + "\n" + "".join(line + "\n" for line in new_lines)


def _line_key(line: str) -> tuple[str, bytes] | None:
    name, _, encoded = line.removeprefix(_SIGNATURE_PREFIX).partition(" ")
    try:
        return name, base64.b64decode(encoded, validate=True)[:4]
    except (binascii.Error, ValueError):
        return None
