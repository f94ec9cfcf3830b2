"""Check a disclosed commitment opening against a sealed record.

The log holds, for each argument of a decision (and for each result), a
commitment ``SHA-256(salt || JCS(value))``. When an operator discloses one
(``agentgate disclose``), the auditor checks three things: the record is in
the log (its receipt verifies), the commitment sits in that record under the
disclosed name, and the value and salt recompute it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from verifier.errors import MalformedInput, ProofMismatch
from verifier.jcs import canonicalize, parse_strict

_FIELDS = {"commitment", "record", "argument", "value", "salt"}
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Opening:
    """A disclosed value and salt, with the commitment and record they open."""

    commitment: str
    record: str
    argument: str
    value: Any
    salt: bytes


def parse_opening(data: bytes | str) -> Opening:
    """Parse the JSON that ``agentgate disclose`` prints, strictly."""
    document = parse_strict(data)
    if not isinstance(document, dict) or set(document) != _FIELDS:
        found = sorted(document) if isinstance(document, dict) else type(document)
        raise MalformedInput(
            f"opening: expected an object with {sorted(_FIELDS)}, got {found}"
        )
    commitment, salt = document["commitment"], document["salt"]
    if not _is_hex(commitment, 64):
        raise MalformedInput(
            f"opening: commitment must be 64 lowercase hex digits, got {commitment!r}"
        )
    if not _is_hex(salt, 64):
        raise MalformedInput(
            f"opening: salt must be 64 lowercase hex digits (32 bytes), got {salt!r}"
        )
    for name in ("record", "argument"):
        if not isinstance(document[name], str) or not document[name]:
            raise MalformedInput(f"opening: {name} must be a non-empty string")
    return Opening(commitment, document["record"], document["argument"],
                   document["value"], bytes.fromhex(salt))


def compute_commitment(salt: bytes, value: Any) -> str:
    """Return ``SHA-256(salt || JCS(value))`` as lowercase hex."""
    return hashlib.sha256(salt + canonicalize(value)).hexdigest()


def verify_opening(opening: Opening, record: dict) -> str:
    """Check ``opening`` against a record proved to be in the log.

    Plan:

    1. the record's id is the one the opening names;
    2. the record holds the commitment under the opening's name: a decision's
       ``arguments[name]``, an approval request's ``arguments``, or an
       outcome's ``result``;
    3. ``SHA-256(salt || JCS(value))`` equals the commitment.

    Returns where the commitment sits in the record (``arguments.recipient``).
    Raises ``ProofMismatch`` when a step fails.
    """
    # Step 1.
    if record.get("id") != opening.record:
        raise ProofMismatch(
            f"opening is for record {opening.record!r}, but the receipt proves "
            f"record {record.get('id')!r}"
        )
    # Step 2.
    location, sealed = _sealed_commitment(record, opening.argument)
    if sealed is None:
        raise ProofMismatch(
            f"record {opening.record} has no commitment named {opening.argument!r}"
        )
    if not hmac.compare_digest(sealed, opening.commitment):
        raise ProofMismatch(
            f"{location} in record {opening.record} is {sealed}, but the opening "
            f"is for {opening.commitment}"
        )
    # Step 3.
    computed = compute_commitment(opening.salt, opening.value)
    if not hmac.compare_digest(computed, opening.commitment):
        raise ProofMismatch(
            f"value and salt give {computed}, not the sealed commitment "
            f"{opening.commitment}"
        )
    return location


def _sealed_commitment(record: dict, name: str) -> tuple[str, str | None]:
    # A decision commits to each argument; an approval request commits to the
    # whole arguments object under "arguments"; an outcome to its "result".
    arguments = record.get("arguments")
    if isinstance(arguments, dict) and name in arguments:
        value = arguments[name]
        return f"arguments.{name}", value if isinstance(value, str) else None
    if name in ("result", "arguments") and isinstance(record.get(name), str):
        return name, record[name]
    return name, None


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX
