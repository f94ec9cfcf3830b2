"""Strict checking of log entries: the RFC 8785 (JCS) bytes of a JSON object.

An entry is accepted only if it is UTF-8, parses as JSON without duplicate
member names, lone surrogates or non-finite numbers, is an object, and is
byte for byte equal to its own canonical serialization. Anything else would
let two different byte strings stand for the same record.

The canonical serialization comes from ``rfc8785``, which is pure Python and
costs about 100 microseconds for a 650-byte record. ``check_entry`` first
compares the entry with the C ``json`` encoder's sorted, compact output
instead, which equals the RFC 8785 form whenever all of these hold:

- no member name or string holds a character above U+FFFF, so sorting by
  code point (Python) and by UTF-16 code unit (RFC 8785 section 3.2.3)
  agree. An entry without a 4-byte UTF-8 sequence has none, unless it
  escapes a surrogate pair, and then the encoder's output differs from it;
- every integer lies in [-(2^53 - 1), 2^53 - 1], the range RFC 8785 can
  represent;
- every float token is its own RFC 8785 (ECMAScript) form, checked per token
  with ``rfc8785``; Python's ``repr`` differs from it for numbers such as
  ``1.0`` and ``1e-07``;
- both escape the same characters in strings (``"``, ``\\`` and controls
  below 0x20, with the same short forms and lowercase ``\\u00xx``).

Any entry that fails this comparison goes through ``rfc8785``, which gives
the exact answer and the message.

Numbers and nesting follow the verifier's reading rules, so the log stores
exactly the entries the verifier accepts: an integer literal beyond 2^53 is
the double it denotes when it is that double's RFC 8785 form (as
``100000000000000000000`` is 1e20's) and is refused otherwise, and arrays
and objects nest at most ``MAX_DEPTH`` levels.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import rfc8785

from .errors import InvalidEntry

__all__ = ["MAX_DEPTH", "MAX_ENTRY_BYTES", "canonical_bytes", "check_entry"]

# Records are small (a decision is about 2 KiB); a larger entry is a bug.
MAX_ENTRY_BYTES = 1 << 20
# RFC 8785 represents integers in this range exactly (IEEE 754 doubles).
_MAX_SAFE_INTEGER = 2**53 - 1
# Levels of arrays and objects an entry may nest, as in the verifier.
MAX_DEPTH = 64
# Longest integer literal that can be a finite double: 309 digits and a sign.
_MAX_INTEGER_LITERAL = 310
# Lead bytes of 4-byte UTF-8 sequences: characters above U+FFFF.
_ASTRAL_LEAD_BYTE = re.compile(rb"[\xf0-\xf4]")
_compact_sorted_json = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


def _reject_constant(name: str) -> Any:
    raise InvalidEntry(f"entry contains {name}; JSON numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidEntry(
            f"entry contains the number {text}, which is outside the IEEE 754 "
            "double range"
        )
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise InvalidEntry(f"entry has a duplicate member name {name!r}")
        members[name] = value
    return members


def canonical_bytes(value: Any) -> bytes:
    """Return the RFC 8785 serialization of ``value``, raising ``InvalidEntry``."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError as err:
        raise InvalidEntry(
            f"entry has an integer outside [-(2^53 - 1), 2^53 - 1]: {err}"
        ) from err
    except rfc8785.FloatDomainError as err:
        raise InvalidEntry(f"entry has a number JCS cannot represent: {err}") from err
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as err:
        # rfc8785 0.1.4 raises UnicodeEncodeError for a lone surrogate in a
        # member name and CanonicalizationError for one in a string value.
        raise InvalidEntry(
            "entry has a string with a lone surrogate (such as \\ud800 without "
            f"its pair): {err}"
        ) from err
    except RecursionError as err:
        raise InvalidEntry("entry is nested too deeply to canonicalize") from err


def check_entry(entry: bytes) -> dict[str, Any]:
    """Return the parsed object if ``entry`` is canonical JCS, else raise.

    Raises ``InvalidEntry`` naming the first problem found: not bytes, too
    large, not UTF-8, not JSON, a duplicate member, a non-finite number, a
    lone surrogate, not an object, or not in canonical form. For the last,
    the message gives the offset of the first differing byte and both sides.
    """
    if not isinstance(entry, (bytes, bytearray)):
        raise InvalidEntry(f"entry must be bytes, got {type(entry).__name__}")
    entry = bytes(entry)
    if len(entry) > MAX_ENTRY_BYTES:
        raise InvalidEntry(
            f"entry is {len(entry)} bytes; the maximum is {MAX_ENTRY_BYTES}"
        )
    try:
        text = entry.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidEntry(
            f"entry is not UTF-8: byte 0x{entry[err.start]:02x} at offset {err.start}"
        ) from err

    # Numbers whose text the fast comparison cannot vouch for (see the
    # module docstring): float tokens, and integers outside the safe range.
    float_tokens: list[str] = []
    unsafe_integers: list[str] = []

    def parse_float(token: str) -> float:
        float_tokens.append(token)
        return _finite_float(token)

    def parse_int(token: str) -> int | float:
        if len(token) > _MAX_INTEGER_LITERAL:
            raise InvalidEntry(
                f"entry contains an integer of {len(token)} digits, outside the "
                "double range; carry it as a string"
            )
        number = int(token)
        if -_MAX_SAFE_INTEGER <= number <= _MAX_SAFE_INTEGER:
            return number
        unsafe_integers.append(token)
        try:
            double = float(number)
        except OverflowError as err:
            raise InvalidEntry(
                f"entry contains the integer {token[:40]}, outside the double "
                "range; carry it as a string"
            ) from err
        if not _is_canonical_float(token):
            raise InvalidEntry(
                f"entry contains the integer {token[:40]}, beyond 2^53 - 1 and not "
                "the RFC 8785 form of any double, so readers would take it for "
                "another number; carry it as a string"
            )
        return double

    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_constant=_reject_constant,
            parse_float=parse_float,
            parse_int=parse_int,
        )
    except json.JSONDecodeError as err:
        raise InvalidEntry(
            f"entry is not JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from err
    except RecursionError as err:
        raise InvalidEntry("entry is nested too deeply to parse") from err
    if not isinstance(value, dict):
        raise InvalidEntry(
            f"entry must be a JSON object, got a JSON {_json_kind(value)}"
        )
    if entry.count(b"[") + entry.count(b"{") > MAX_DEPTH:
        _check_depth(value)

    if not unsafe_integers and _matches_compact_form(entry, text, value):
        if all(_is_canonical_float(token) for token in float_tokens):
            return value
    canonical = canonical_bytes(value)
    if canonical != entry:
        offset = next(
            (i for i, (a, b) in enumerate(zip(canonical, entry)) if a != b),
            min(len(canonical), len(entry)),
        )
        raise InvalidEntry(
            f"entry is not in RFC 8785 canonical form: it differs from the "
            f"canonical bytes at offset {offset} (entry has "
            f"{entry[offset:offset + 16]!r}, canonical has "
            f"{canonical[offset:offset + 16]!r}); send the canonical bytes"
        )
    return value


def _check_depth(value: dict[str, Any]) -> None:
    """Raise ``InvalidEntry`` when containers nest more than ``MAX_DEPTH`` levels."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise InvalidEntry(
                    f"entry is nested deeper than {MAX_DEPTH} levels of arrays "
                    "and objects"
                )
            members = item.values() if isinstance(item, dict) else item
            pending.extend((member, depth + 1) for member in members)


def _matches_compact_form(entry: bytes, text: str, value: dict[str, Any]) -> bool:
    """Return whether ``text`` is the C encoder's sorted, compact form of ``value``.

    False also when the comparison proves nothing: for an entry with
    characters above U+FFFF, or one the encoder cannot serialize.
    """
    if not entry.isascii() and _ASTRAL_LEAD_BYTE.search(entry):
        return False
    try:
        return _compact_sorted_json(value) == text
    except (ValueError, RecursionError):
        return False


def _is_canonical_float(token: str) -> bool:
    """Return whether a JSON float token is its own RFC 8785 serialization."""
    try:
        return rfc8785.dumps(float(token)) == token.encode("ascii")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return False


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
