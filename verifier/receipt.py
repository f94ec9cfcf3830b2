"""Receipts: C2SP tlog-proof@v1 files that carry their log entry.

    c2sp.org/tlog-proof@v1
    extra <standard base64 of the entry bytes>
    index <0-based leaf index, ASCII decimal>
    <inclusion proof hash, base64>        (zero or more lines)

    <the checkpoint, a signed note, verbatim>

The ``extra`` line is optional in C2SP tlog-proof but required here, because
an AgentGate receipt must carry the record it proves. The entry is trusted
only after its leaf hash is proved to be in a signed tree.
"""

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from verifier._encoding import (
    decode_base64,
    decode_decimal,
    decode_hash,
    decode_utf8,
    shorten,
)
from verifier.checkpoint import MAX_TREE_SIZE, Checkpoint, open_checkpoint
from verifier.errors import MalformedInput
from verifier.jcs import canonicalize, parse_strict
from verifier.merkle import leaf_hash, verify_inclusion
from verifier.note import VerifierKey

logger = logging.getLogger(__name__)

HEADER = "c2sp.org/tlog-proof@v1"

_EXTRA_PREFIX = "extra "
_INDEX_PREFIX = "index "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_MAX_PROOF_HASHES = 63


@dataclass(frozen=True)
class ParsedReceipt:
    """A receipt split into its parts, none of them verified yet."""

    index: int
    entry: bytes
    proof: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose entry is proved to be in a checkpoint a known key signed."""

    index: int
    entry: bytes
    leaf_hash: bytes
    record: dict
    checkpoint: Checkpoint
    key_names: tuple[str, ...]


def parse_receipt(text: str | bytes) -> ParsedReceipt:
    """Split a receipt into entry, index, proof and checkpoint, without verifying.

    Requires the header line, an ``extra`` line with the entry in canonical
    standard base64, an ``index`` line in ASCII decimal, proof lines of one
    32-byte hash each, a blank line and a checkpoint. Raises
    ``MalformedInput`` naming the line and what was expected.
    """
    text = _decode_receipt(text)
    if not text.strip():
        raise MalformedInput("receipt is empty; expected a c2sp.org/tlog-proof@v1 file")

    control = _CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        raise MalformedInput(
            f"receipt line {line}: expected no control character but newline, got "
            f"U+{ord(control.group()):04X}; receipts use LF line endings, not CRLF"
        )

    split = text.find("\n\n")
    if split < 0:
        raise MalformedInput(
            "receipt: expected a blank line between the proof lines and the "
            "checkpoint, found none"
        )
    lines = text[:split].split("\n")
    checkpoint = text[split + 2 :]

    if lines[0] != HEADER:
        raise MalformedInput(
            f"receipt line 1: expected {HEADER!r}, got {shorten(lines[0])}"
        )
    if len(lines) < 2 or not lines[1].startswith(_EXTRA_PREFIX):
        seen = shorten(lines[1]) if len(lines) > 1 else "the blank line"
        raise MalformedInput(
            "receipt line 2: expected 'extra <base64 entry>', because an AgentGate "
            f"receipt must carry its entry, got {seen}"
        )
    entry = decode_base64(lines[1][len(_EXTRA_PREFIX) :], "receipt line 2 (extra)")
    if not entry:
        raise MalformedInput("receipt line 2 (extra): expected the entry, got 0 bytes")

    if len(lines) < 3 or not lines[2].startswith(_INDEX_PREFIX):
        seen = shorten(lines[2]) if len(lines) > 2 else "the blank line"
        raise MalformedInput(
            f"receipt line 3: expected 'index <decimal leaf index>', got {seen}"
        )
    index = decode_decimal(
        lines[2][len(_INDEX_PREFIX) :], "receipt line 3 (index)", MAX_TREE_SIZE
    )

    # A tree smaller than 2^63 has inclusion proofs of at most 63 hashes.
    if len(lines) - 3 > _MAX_PROOF_HASHES:
        raise MalformedInput(
            f"receipt: expected at most {_MAX_PROOF_HASHES} proof lines, "
            f"got {len(lines) - 3}"
        )
    proof = tuple(
        decode_hash(line, f"receipt line {number} (proof hash)")
        for number, line in enumerate(lines[3:], start=4)
    )
    if not checkpoint:
        raise MalformedInput(
            "receipt: expected a checkpoint after the blank line, got nothing"
        )
    return ParsedReceipt(index, entry, proof, checkpoint)


def verify_receipt(
    text: str | bytes,
    verifier_keys: Iterable[VerifierKey | str] | VerifierKey | str,
    origin: str | None = None,
) -> VerifiedReceipt:
    """Verify a receipt offline against the log's verifier key(s).

    Plan (the receipt verification steps of the receipt format):

    1. parse the header, ``extra``, ``index`` and proof lines;
    2. open the checkpoint note with the verifier keys, parse its body, and
       check the origin when one is given;
    3. require ``index < size``;
    4. hash the entry as a leaf and verify the inclusion proof against the
       checkpoint's root;
    5. parse the entry as strict JSON, require a JSON object, and require the
       entry bytes to be its canonical RFC 8785 form.

    Raises ``MalformedInput``, ``BadSignature``, ``UnknownKey``,
    ``OriginMismatch`` or ``ProofMismatch``; all are ``VerificationError``.
    """
    # Step 1.
    receipt = parse_receipt(text)

    # Step 2.
    checkpoint, note = open_checkpoint(receipt.checkpoint, verifier_keys, origin)

    # Step 3.
    if receipt.index >= checkpoint.size:
        raise MalformedInput(
            f"receipt: expected an index less than the checkpoint's tree size "
            f"{checkpoint.size}, got index {receipt.index}"
        )

    # Step 4.
    entry_hash = leaf_hash(receipt.entry)
    verify_inclusion(
        entry_hash, receipt.index, checkpoint.size, receipt.proof, checkpoint.root
    )

    # Step 5.
    try:
        record = parse_strict(receipt.entry)
    except MalformedInput as err:
        raise MalformedInput(f"receipt entry: {err}") from err
    if not isinstance(record, dict):
        raise MalformedInput(
            f"receipt entry: expected a JSON object, got {_json_kind(record)}"
        )
    canonical = canonicalize(record)
    if canonical != receipt.entry:
        offset = _first_difference(canonical, receipt.entry)
        raise MalformedInput(
            "receipt entry: expected the RFC 8785 canonical form of the record, "
            f"got bytes that differ from it at offset {offset}: expected "
            f"{shorten(canonical[offset:offset + 20])}, "
            f"got {shorten(receipt.entry[offset:offset + 20])}"
        )

    logger.debug(
        "verified receipt for index %d in %s at size %d",
        receipt.index,
        checkpoint.origin,
        checkpoint.size,
    )
    return VerifiedReceipt(
        receipt.index, receipt.entry, entry_hash, record, checkpoint, note.key_names
    )


def _decode_receipt(text: str | bytes) -> str:
    if isinstance(text, (bytes, bytearray)):
        return decode_utf8(bytes(text), "receipt")
    if isinstance(text, str):
        return text
    raise MalformedInput(f"receipt: expected str or bytes, got {type(text).__name__}")


def _first_difference(expected: bytes, seen: bytes) -> int:
    for offset, (left, right) in enumerate(zip(expected, seen)):
        if left != right:
            return offset
    return min(len(expected), len(seen))


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return f"the literal {canonicalize(value).decode()}"
    return "a number"
