"""Canonical JSON (RFC 8785) for everything the gate hashes, signs or seals.

Python objects are checked before they are canonicalized: a value that JSON
cannot carry exactly (a lone surrogate, a non-finite float, an integer beyond
2^53, a non-string key) raises ``InvalidRequest`` naming where it sits, so
nothing ambiguous is ever signed. Parsing rejects duplicate member names.

Parsing follows the verifier's rules (``verifier/jcs.py``), so the two accept
the same texts: an integer literal beyond 2^53 becomes the double it denotes
only when it is that double's RFC 8785 form (as ``100000000000000000000`` is
1e20's) and is rejected otherwise, and at most ``_MAX_DEPTH`` levels of
arrays and objects nest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import rfc8785

from enforcement.errors import InvalidRequest

_MAX_SAFE_INTEGER = 2**53 - 1
# Arrays and objects nest at most this many levels: the root container is at
# depth 0, and a container at depth _MAX_DEPTH is refused.
_MAX_DEPTH = 64
# Longest integer literal that can be a finite double: 309 digits and a sign.
_MAX_INTEGER_LITERAL = 310


def canonical(value: Any) -> bytes:
    """Return the RFC 8785 bytes of ``value`` after checking it is plain JSON."""
    check_json_value(value)
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as err:
        raise InvalidRequest(f"value cannot be canonicalized: {err}") from err


def digest(value: Any) -> str:
    """Return the lowercase hex SHA-256 of the canonical form of ``value``."""
    return hashlib.sha256(canonical(value)).hexdigest()


def check_json_value(value: Any, path: str = "$", depth: int = 0) -> None:
    """Raise ``InvalidRequest`` unless ``value`` is exactly representable as JSON."""
    if _is_plain_json(value, depth):
        return
    _check_value(value, path, depth)


def _is_plain_json(value: Any, depth: int) -> bool:
    """Return True when ``value`` certainly passes ``_check_value``.

    This is the fast path for the common case: only the exact built-in types
    are accepted, and nothing is formatted. Anything else returns False, and
    ``_check_value`` decides and names the problem.
    """
    kind = type(value)
    if kind is str:
        return value.isascii() or _encodes(value)
    if value is None or kind is bool:
        return True
    if kind is int:
        return -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER
    if kind is float:
        return math.isfinite(value)
    if depth >= _MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or _encodes(key)):
                return False
            if not _is_plain_json(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_is_plain_json(item, depth + 1) for item in value)
    return False


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_value(value: Any, path: str, depth: int) -> None:
    if depth >= _MAX_DEPTH and isinstance(value, (Mapping, list, tuple)):
        raise InvalidRequest(f"{path}: nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise InvalidRequest(
                f"{path}: integer {value} is outside +-(2^53 - 1); "
                "send it as a string"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"{path}: {value} is not a finite number")
        return
    if isinstance(value, str):
        _check_string(value, path)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequest(
                    f"{path}: object key {key!r} is a {type(key).__name__}, "
                    "expected a string"
                )
            _check_string(key, f"{path} key")
            _check_value(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        for position, item in enumerate(value):
            _check_value(item, f"{path}[{position}]", depth + 1)
        return
    raise InvalidRequest(
        f"{path}: a {type(value).__name__} is not a JSON value; "
        "pass str, int, float, bool, None, list or dict"
    )


def _check_string(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRequest(
            f"{path}: string holds a lone surrogate at position {err.start}"
        ) from err


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidRequest(f"duplicate member name {key!r} in JSON object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidRequest(f"{name} is not valid JSON; numbers must be finite")


def _parse_int(literal: str) -> int | float:
    if len(literal) > _MAX_INTEGER_LITERAL:
        raise InvalidRequest(
            f"integer of {len(literal)} digits is outside the double range; "
            "send it as a string"
        )
    value = int(literal)
    if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return value
    try:
        number = float(value)
    except OverflowError as err:
        raise InvalidRequest(
            f"integer {literal[:40]} is outside the double range; send it as a string"
        ) from err
    if rfc8785.dumps(number) != literal.encode("ascii"):
        raise InvalidRequest(
            f"integer {literal[:40]} is outside +-(2^53 - 1) and is not the "
            "RFC 8785 form of any double, so readers would take it for another "
            "number; send it as a string"
        )
    return number


def parse_strict(data: bytes | str) -> Any:
    """Parse JSON, rejecting duplicate names, NaN/Infinity and lone surrogates."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidRequest(f"JSON is not valid UTF-8: {err}") from err
    try:
        value = json.loads(
            data,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as err:
        raise InvalidRequest(f"invalid JSON: {err}") from err
    except RecursionError as err:
        raise InvalidRequest(
            f"JSON is nested deeper than {_MAX_DEPTH} levels"
        ) from err
    check_json_value(value)
    return value
