"""C2SP signed notes: verifier keys, parsing, and Ed25519 verification.

A signed note is UTF-8 text, a blank line, and one or more signature lines of
the form ``— <key name> <base64(key id || signature)>``. A key is identified
by its name together with its 4-byte key id, the first 4 bytes of
``SHA-256(name || 0x0A || 0x01 || public key)``, where 0x01 is the Ed25519
signature type. The verifier key form is ``<name>+<key id hex>+<base64(0x01 ||
public key)>``.
"""

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier._encoding import decode_base64, decode_utf8, shorten
from verifier.errors import BadSignature, MalformedInput, UnknownKey

logger = logging.getLogger(__name__)

ED25519_TYPE = 0x01
# C2SP signed-note requires accepting at least 16 signatures; more than 100
# is treated as an attempt to make the verifier spend time.
MAX_SIGNATURES = 100

_SIGNATURE_PREFIX = "\u2014 "
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
# Any ASCII control character other than newline, carriage return included.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
# Printable ASCII without space and "+", the key names AgentGate accepts.
_KEY_NAME = re.compile(r"[\x21-\x2a\x2c-\x7e]+")
_SIGNER_KEY_PREFIX = "PRIVATE+KEY+"


@dataclass(frozen=True)
class VerifierKey:
    """A parsed Ed25519 verifier key."""

    name: str
    key_id: bytes
    public_key: bytes
    text: str = field(repr=False)
    _ed25519: Ed25519PublicKey = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is a valid Ed25519 signature of ``message``."""
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            self._ed25519.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signature:
    """One signature line of a note, decoded but not verified."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    """An opened note: its text, every signature line, and the keys that verified."""

    text: str
    signatures: tuple[Signature, ...]
    verified: tuple[VerifierKey, ...]

    @property
    def key_names(self) -> tuple[str, ...]:
        """Names of the known keys whose signatures verified, each once."""
        return tuple(key.name for key in self.verified)


def compute_key_id(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte key id of an Ed25519 key with this name."""
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:_KEY_ID_SIZE]


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse ``<name>+<key id hex>+<base64(0x01 || public key)>``.

    Requires a name of printable ASCII without spaces or ``+``, a key id of 8
    lowercase hex digits that matches the key, type byte 0x01 (Ed25519) and a
    32-byte public key. Raises ``MalformedInput`` otherwise. A signer key is
    rejected without echoing it, because it is secret.
    """
    if not isinstance(text, str):
        raise MalformedInput(f"verifier key: expected str, got {type(text).__name__}")
    return _parse_verifier_key(text)


# The gate passes the same pinned key string for every receipt, so the parsed
# key is cached. Failures raise and are not cached.
@functools.lru_cache(maxsize=64)
def _parse_verifier_key(text: str) -> VerifierKey:
    if text.startswith(_SIGNER_KEY_PREFIX):
        raise MalformedInput(
            "verifier key: got a signer (private) key; pass the public verifier "
            "key instead, the NAME.pub file written next to the NAME.key file"
        )

    name, plus1, rest = text.partition("+")
    key_id_hex, plus2, key_base64 = rest.partition("+")
    if not plus1 or not plus2:
        raise MalformedInput(
            "verifier key: expected <name>+<key id hex>+<base64 key>, "
            f"got {shorten(text)}"
        )
    if not _KEY_NAME.fullmatch(name):
        raise MalformedInput(
            "verifier key: expected a name of printable ASCII without spaces "
            f"or '+', got {shorten(name)}"
        )
    if not _KEY_ID_HEX.fullmatch(key_id_hex):
        raise MalformedInput(
            "verifier key: expected a key id of 8 lowercase hex digits, "
            f"got {shorten(key_id_hex)}"
        )

    raw = decode_base64(key_base64, f"verifier key {name!r}")
    if len(raw) != 1 + 32 or raw[0] != ED25519_TYPE:
        raise MalformedInput(
            f"verifier key {name!r}: expected 33 bytes starting with type 0x01 "
            f"(Ed25519), got {len(raw)} bytes starting with "
            f"{raw[:1].hex() or 'nothing'}"
        )
    public_key = raw[1:]

    expected_id = compute_key_id(name, public_key)
    if not hmac.compare_digest(expected_id, bytes.fromhex(key_id_hex)):
        raise MalformedInput(
            f"verifier key {name!r}: the key id {key_id_hex} does not match the "
            f"key, whose id is {expected_id.hex()}; the key string is corrupt"
        )
    try:
        ed25519 = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as err:
        raise MalformedInput(
            f"verifier key {name!r}: invalid Ed25519 public key: {err}"
        ) from err
    return VerifierKey(name, expected_id, public_key, text, ed25519)


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into text and decoded signature lines, without verifying.

    Performs steps 1 to 3 of ``open_note`` and returns a ``Note`` whose
    ``verified`` is empty. Raises ``MalformedInput``.
    """
    # Step 1.
    text = _decode_note(note)

    # Step 2.
    split = text.rfind("\n\n")
    if split < 0:
        raise MalformedInput(
            "note: expected a blank line between the text and the signature lines, "
            "found none"
        )
    body = text[: split + 1]
    block = text[split + 2 :]
    if not block:
        raise MalformedInput(
            "note: expected at least one signature line after the last blank line, "
            "found none"
        )

    # Step 3. The first signature line is the line after the blank line.
    first_line = body.count("\n") + 2
    return Note(body, tuple(_parse_signature_lines(block, first_line)), ())


def open_note(
    note: str | bytes, verifier_keys: Iterable[VerifierKey | str] | VerifierKey | str
) -> Note:
    """Open a signed note and verify it with the given keys.

    Plan (C2SP signed-note):

    1. decode the note: UTF-8, no control character but newline, ending in a
       newline;
    2. split the text from the signatures at the last blank line;
    3. parse every signature line, at most ``MAX_SIGNATURES`` of them;
    4. verify every signature from a known key (name and key id); ignore the
       others;
    5. require at least one verified known key, counting each key once.

    Raises ``MalformedInput`` (steps 1 to 3), ``BadSignature`` when a known
    key's signature fails (step 4), and ``UnknownKey`` when no known key
    signed (step 5).
    """
    known = _index_keys(verifier_keys)

    # Steps 1 to 3.
    parsed = parse_note(note)

    # Step 4. The signed bytes are the text up to and including its final
    # newline.
    signed = parsed.text.encode("utf-8")
    verified: dict[tuple[str, bytes], VerifierKey] = {}
    checked: set[tuple[str, bytes, bytes]] = set()
    for signature in parsed.signatures:
        key = known.get((signature.name, signature.key_id))
        if key is None:
            logger.debug(
                "ignoring signature from unknown key %s+%s",
                signature.name,
                signature.key_id.hex(),
            )
            continue
        line_key = (signature.name, signature.key_id, signature.signature)
        if line_key in checked:
            continue
        if not key.verify(signed, signature.signature):
            raise BadSignature(
                f"note: the signature by known key {key.name}+{key.key_id.hex()} "
                "does not verify over the note text, so the text or the "
                "signature was altered"
            )
        checked.add(line_key)
        verified.setdefault((key.name, key.key_id), key)

    # Step 5.
    if not verified:
        seen = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in parsed.signatures)
        expected = ", ".join(f"{k.name}+{k.key_id.hex()}" for k in known.values())
        raise UnknownKey(
            f"note: expected a signature by one of [{expected}], "
            f"found signatures only by [{seen}]; the note is not signed by a "
            "trusted key"
        )
    return Note(parsed.text, parsed.signatures, tuple(verified.values()))


def _index_keys(
    verifier_keys: Iterable[VerifierKey | str] | VerifierKey | str,
) -> dict[tuple[str, bytes], VerifierKey]:
    # A single key is accepted as is, so that a key string is not iterated
    # character by character.
    if isinstance(verifier_keys, (str, VerifierKey)):
        verifier_keys = (verifier_keys,)
    try:
        keys = [
            key if isinstance(key, VerifierKey) else parse_verifier_key(key)
            for key in verifier_keys
        ]
    except TypeError as err:
        raise MalformedInput(
            "verifier keys: expected verifier key strings or VerifierKey objects, "
            f"got {type(verifier_keys).__name__}"
        ) from err

    known: dict[tuple[str, bytes], VerifierKey] = {}
    for key in keys:
        previous = known.setdefault((key.name, key.key_id), key)
        if previous.public_key != key.public_key:
            raise MalformedInput(
                f"verifier keys: two different keys share the name {key.name!r} "
                f"and key id {key.key_id.hex()}; remove one of them"
            )
    return known


def _decode_note(note: str | bytes) -> str:
    if isinstance(note, (bytes, bytearray)):
        text = decode_utf8(bytes(note), "note")
    elif isinstance(note, str):
        text = note
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise MalformedInput(
                f"note: expected Unicode text, got a lone surrogate "
                f"U+{ord(text[err.start]):04X} at offset {err.start}"
            ) from err
    else:
        raise MalformedInput(f"note: expected str or bytes, got {type(note).__name__}")

    control = _CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        raise MalformedInput(
            f"note line {line}: expected no control character but newline, "
            f"got U+{ord(control.group()):04X}; lines must end in LF, not CRLF"
        )
    if not text.endswith("\n"):
        raise MalformedInput(
            "note: expected the last line to end with a newline, got "
            f"{shorten(text[-20:])} at the end"
        )
    return text


def _parse_signature_lines(block: str, first_line: int) -> list[Signature]:
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedInput(
            f"note: expected at most {MAX_SIGNATURES} signature lines, "
            f"got {len(lines)}"
        )

    signatures = []
    for offset, line in enumerate(lines):
        where = f"note line {first_line + offset}"
        if not line.startswith(_SIGNATURE_PREFIX):
            raise MalformedInput(
                f"{where}: expected a signature line starting with an em dash "
                f"(U+2014) and a space, got {shorten(line)}"
            )
        name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not space or not name or "+" in name or any(c.isspace() for c in name):
            raise MalformedInput(
                f"{where}: expected '\u2014 <key name> <base64 signature>' with a "
                f"key name without spaces or '+', got {shorten(line)}"
            )
        blob = decode_base64(encoded, f"{where} (signature)")
        if len(blob) <= _KEY_ID_SIZE:
            raise MalformedInput(
                f"{where}: expected a 4-byte key id and a signature, got "
                f"{len(blob)} bytes in total"
            )
        signatures.append(Signature(name, blob[:_KEY_ID_SIZE], blob[_KEY_ID_SIZE:]))
    return signatures
