"""Strict JSON parsing and the RFC 8785 JSON Canonicalization Scheme (JCS).

``parse_strict`` reads JSON (RFC 8259) and rejects what would let two readers
see different values: duplicate member names, lone surrogates, NaN and
Infinity, and numbers outside the IEEE 754 double range. ``canonicalize``
writes the RFC 8785 form: members sorted by UTF-16 code units, no white space,
minimal string escapes, and numbers in the ECMAScript shortest form.

Integer literals within ``±(2^53 - 1)`` parse to ``int``. A larger integer
literal parses to the ``float`` it denotes only when it is that double's
RFC 8785 form, as the canonical form of 1e20 is ``100000000000000000000``;
any other, such as 2^53 + 1, is rejected, because readers would take it
for a number other than the one written. ``canonicalize`` rejects a Python ``int`` outside that
range for the same reason. The ledger and the gate read JSON by the same
rules, to the same nesting limit.
"""

import json
import math
import re

from verifier._encoding import decode_utf8, shorten
from verifier.errors import MalformedInput, VerificationError

# Deeper input is rejected: records nest a few levels, and the limit keeps
# parsing and serializing far from Python's recursion limit. The gate and
# the ledger use the same limit.
MAX_DEPTH = 64
MAX_SAFE_INTEGER = 2**53 - 1

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# A JSON escape of a surrogate code unit, \uD800 to \uDFFF in any case.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Characters RFC 8785 section 3.2.2.2 escapes: quote, backslash, U+0000-U+001F.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
_ESCAPES.update({"\r": "\\r", "\t": "\\t"})
for _code in range(0x20):
    _ESCAPES.setdefault(chr(_code), f"\\u{_code:04x}")
# Maximum length of an integer literal that can be a finite double: 309
# digits and a sign.
_MAX_INTEGER_LITERAL = 310


def parse_strict(data: bytes | str) -> object:
    """Parse JSON text strictly and return the Python value.

    ``bytes`` must be UTF-8 without a byte order mark. Raises
    ``MalformedInput`` for invalid JSON, a duplicate member name, a lone
    surrogate in a string, ``NaN``, ``Infinity``, a number outside the double
    range, or nesting deeper than ``MAX_DEPTH``.
    """
    if isinstance(data, (bytes, bytearray)):
        text = decode_utf8(bytes(data), "JSON")
    elif isinstance(data, str):
        text = data
    else:
        raise MalformedInput(f"JSON: expected bytes or str, got {type(data).__name__}")

    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as err:
        raise MalformedInput(
            f"JSON: invalid at line {err.lineno} column {err.colno}: {err.msg}"
        ) from err
    except RecursionError as err:
        raise MalformedInput(
            f"JSON: expected at most {MAX_DEPTH} levels of nesting, got far more"
        ) from err

    if _walk_needed(text):
        _check_parsed(value)
    return value


def canonicalize(value: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value.

    Accepts ``dict`` with ``str`` keys, ``list``, ``tuple``, ``str``, ``int``
    within ``±(2^53 - 1)``, finite ``float``, ``bool`` and ``None``. Raises
    ``MalformedInput`` for anything else, for a lone surrogate, and for
    nesting deeper than ``MAX_DEPTH``.
    """
    if _compact_form_is_canonical(value, 0):
        try:
            return _compact_sorted_json(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # A lone surrogate: the full writer names it.
    return _write_canonical(value)


def _write_canonical(value: object) -> bytes:
    """Return the RFC 8785 bytes of ``value`` by the full writer."""
    parts: list[str] = []
    _write(value, parts, 0)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise MalformedInput(
            f"JSON: expected Unicode text, got a lone surrogate "
            f"U+{ord(text[err.start]):04X}, which UTF-8 cannot encode"
        ) from err


# Python's own encoder, sorted and compact. Its output is the RFC 8785 form
# whenever ``_compact_form_is_canonical`` holds, and it runs in C.
_compact_sorted_json = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode
_float_repr = float.__repr__


def _compact_form_is_canonical(value: object, depth: int) -> bool:
    """Return whether the C encoder's sorted, compact output is RFC 8785's.

    It is when every member name is within the Basic Multilingual Plane
    (so code point order is UTF-16 order), every integer is within
    ``±(2^53 - 1)``, every float's Python form is its ECMAScript form, and
    the nesting is within ``MAX_DEPTH``. Both escape the same characters in
    strings the same way. Anything else, including values that are not
    JSON, returns False and goes to the full writer, which decides.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if kind is float:
        return math.isfinite(value) and _float_repr(value) == format_number(value)
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        for name, member in value.items():
            if type(name) is not str or (not name.isascii() and max(name) > "\uffff"):
                return False
            if not _compact_form_is_canonical(member, depth + 1):
                return False
        return True
    if kind is list:
        return all(_compact_form_is_canonical(member, depth + 1) for member in value)
    return False


def is_canonical(data: bytes) -> bool:
    """Return whether ``data`` is strict JSON in its RFC 8785 canonical form.

    Returns False for anything ``parse_strict`` rejects. Raises
    ``MalformedInput`` only when ``data`` is not bytes.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedInput(f"JSON: expected bytes, got {type(data).__name__}")
    try:
        return canonicalize(parse_strict(data)) == data
    except VerificationError:
        return False


def format_number(value: float) -> str:
    """Return the ECMAScript ``Number.prototype.toString`` form of a double.

    RFC 8785 section 3.2.2.3 adopts that form. Raises ``MalformedInput`` for
    NaN and infinities, which JSON cannot carry.
    """
    if not math.isfinite(value):
        raise MalformedInput(f"JSON number: expected a finite number, got {value!r}")
    if value == 0:
        # Negative zero is written as 0 too.
        return "0"

    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(abs(value))
    # ECMA-262 Number::toString: value = digits x 10^(point - len(digits)),
    # with k = len(digits) and n = point.
    k = len(digits)
    n = point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    exponent = n - 1
    exponent_text = ("+" if exponent >= 0 else "-") + str(abs(exponent))
    if k == 1:
        return sign + digits + "e" + exponent_text
    return sign + digits[0] + "." + digits[1:] + "e" + exponent_text


def _shortest_digits(value: float) -> tuple[str, int]:
    # repr() gives the shortest digit string that reads back as the same
    # double and, among those, the one closest to it, which are the digits
    # that ECMA-262 requires. Return them without leading or trailing zeros, with the
    # position of the decimal point relative to the first digit.
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _write(value: object, parts: list[str], depth: int) -> None:
    # bool before int, because bool is a subclass of int.
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_quote(value))
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise MalformedInput(
                f"JSON number: expected an integer within ±(2^53 - 1), got "
                f"{shorten(str(value))}; larger integers lose precision as "
                "doubles, so carry them as strings"
            )
        parts.append(str(value))
    elif isinstance(value, float):
        parts.append(format_number(value))
    elif isinstance(value, dict):
        _check_depth(depth)
        _write_object(value, parts, depth)
    elif isinstance(value, (list, tuple)):
        _check_depth(depth)
        parts.append("[")
        for position, item in enumerate(value):
            if position:
                parts.append(",")
            _write(item, parts, depth + 1)
        parts.append("]")
    else:
        raise MalformedInput(
            "JSON: expected dict, list, tuple, str, int, float, bool or None, "
            f"got {type(value).__name__}"
        )


def _write_object(value: dict, parts: list[str], depth: int) -> None:
    for key in value:
        if not isinstance(key, str):
            raise MalformedInput(
                f"JSON object: expected str member names, got {type(key).__name__} "
                f"{shorten(key)}"
            )

    # RFC 8785 section 3.2.3 sorts by UTF-16 code units. For ASCII names that
    # is the plain string order, which is cheaper to compute.
    if all(key.isascii() for key in value):
        names = sorted(value)
    else:
        names = sorted(value, key=_utf16_sort_key)

    parts.append("{")
    for position, name in enumerate(names):
        if position:
            parts.append(",")
        parts.append(_quote(name))
        parts.append(":")
        _write(value[name], parts, depth + 1)
    parts.append("}")


def _utf16_sort_key(name: str) -> bytes:
    # Big-endian code units compare bytewise in code unit order. Lone
    # surrogates pass through here and are rejected when the output is
    # encoded as UTF-8.
    return name.encode("utf-16-be", "surrogatepass")


def _quote(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:
        return '"' + text + '"'
    return '"' + _NEEDS_ESCAPE.sub(lambda match: _ESCAPES[match.group()], text) + '"'


def _check_depth(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise MalformedInput(
            f"JSON: expected at most {MAX_DEPTH} levels of nesting, got more"
        )


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise MalformedInput(
                    f"JSON object: expected unique member names, got {shorten(name)} "
                    "twice; readers would disagree on its value"
                )
            seen.add(name)
    return result


def _reject_constant(name: str) -> object:
    raise MalformedInput(
        f"JSON number: expected a finite number, got {name}, which JSON does not allow"
    )


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise MalformedInput(
            f"JSON number: expected a number within the IEEE 754 double range, "
            f"got {shorten(literal)}"
        )
    return value


def _parse_int(literal: str) -> int | float:
    if len(literal) > _MAX_INTEGER_LITERAL:
        raise MalformedInput(
            f"JSON number: expected a number within the IEEE 754 double range, "
            f"got an integer of {len(literal)} characters"
        )
    value = int(literal)
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    try:
        number = float(value)
    except OverflowError as err:
        raise MalformedInput(
            f"JSON number: expected a number within the IEEE 754 double range, "
            f"got {shorten(literal)}"
        ) from err
    if format_number(number) != literal:
        raise MalformedInput(
            f"JSON number: {shorten(literal)} is beyond ±(2^53 - 1) and is not "
            "the RFC 8785 form of any IEEE 754 double, so readers would take "
            "it for another number; carry it as a string"
        )
    return number


def _walk_needed(text: str) -> bool:
    """Return whether the parsed value of ``text`` may break a rule of the walk.

    A lone surrogate can come only from a surrogate in the text or from an
    escape such as \\ud800, and nesting deeper than ``MAX_DEPTH`` needs more
    than ``MAX_DEPTH`` brackets; counting those in strings too only makes
    the result err towards walking.
    """
    if text.count("[") + text.count("{") > MAX_DEPTH:
        return True
    return (_SURROGATE_ESCAPE.search(text) is not None
            or _LONE_SURROGATE.search(text) is not None)


def _check_parsed(value: object) -> None:
    # Walk the parsed value without recursion: reject lone surrogates, which
    # json.loads lets through from \ud800-style escapes, and deep nesting.
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            _check_depth(depth)
            for name, member in item.items():
                _check_string(name)
                pending.append((member, depth + 1))
        elif isinstance(item, list):
            _check_depth(depth)
            pending.extend((member, depth + 1) for member in item)


def _check_string(text: str) -> None:
    surrogate = _LONE_SURROGATE.search(text)
    if surrogate is not None:
        raise MalformedInput(
            f"JSON string: expected Unicode text, got a lone surrogate "
            f"U+{ord(surrogate.group()):04X} in {shorten(text)}"
        )
