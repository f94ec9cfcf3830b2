"""Strict decoders shared by the text formats: base64, decimal and UTF-8.

Each decoder accepts exactly one spelling of a value, so that two different
texts never verify as the same receipt or checkpoint.
"""

import binascii
import re

from verifier.errors import MalformedInput

# ASCII digits only: Python's int() would also take "+8", " 8", "1_0" and
# fullwidth digits.
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_SHOWN = 80


def shorten(value: object) -> str:
    """Return the repr of ``value``, cut to a length that fits in a message."""
    text = repr(value)
    if len(text) <= _MAX_SHOWN:
        return text
    return text[: _MAX_SHOWN - 3] + "..."


def encode_base64(data: bytes) -> str:
    """Return standard padded base64, the form every AgentGate text uses."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def decode_base64(text: str, label: str) -> bytes:
    """Decode standard padded base64 (RFC 4648 section 4) in canonical form.

    The canonical form (RFC 4648 section 3.5) has zero padding bits, so the
    decoded bytes re-encode to the same text. Raises ``MalformedInput`` naming
    ``label`` for any other alphabet, missing padding, stray characters or
    non-zero padding bits.
    """
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError, TypeError) as err:
        raise MalformedInput(
            f"{label}: expected standard padded base64, got {shorten(text)}"
        ) from err

    if encode_base64(data) != text:
        raise MalformedInput(
            f"{label}: expected the canonical base64 encoding "
            f"{encode_base64(data)!r}, got {shorten(text)} "
            "(the padding bits must be zero)"
        )
    return data


def decode_hash(text: str, label: str) -> bytes:
    """Decode one base64 SHA-256 hash and require exactly 32 bytes."""
    digest = decode_base64(text, label)
    if len(digest) != 32:
        raise MalformedInput(
            f"{label}: expected a 32-byte SHA-256 hash, got {len(digest)} bytes "
            f"from {shorten(text)}"
        )
    return digest


def decode_decimal(text: str, label: str, limit: int) -> int:
    """Decode an ASCII decimal without sign, spaces or leading zeros.

    Raises ``MalformedInput`` unless ``0 <= value < limit``.
    """
    # The length guard keeps int() from parsing a huge digit string.
    if len(text) > len(str(limit)) or not _DECIMAL.fullmatch(text):
        raise MalformedInput(
            f"{label}: expected a decimal number in ASCII digits with no sign, "
            f"spaces or leading zeros, less than {limit}, got {shorten(text)}"
        )

    value = int(text)
    if value >= limit:
        raise MalformedInput(
            f"{label}: expected a value less than {limit}, got {value}"
        )
    return value


def decode_utf8(data: bytes, label: str) -> str:
    """Decode strict UTF-8, rejecting encoded surrogates and invalid bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedInput(
            f"{label}: expected UTF-8 text, got invalid byte "
            f"{data[err.start:err.start + 1]!r} at offset {err.start}"
        ) from err
