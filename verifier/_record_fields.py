"""Shape checks shared by the record audits: members and hex digests."""

import re
from typing import Any

from verifier._encoding import shorten
from verifier.errors import MalformedInput

_COMMON = frozenset({"type", "version", "id", "time"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def require_members(
    record: dict, required: set[str], optional: frozenset[str] | set[str] = frozenset()
) -> None:
    """Raise ``MalformedInput`` for a missing required or an unknown member."""
    missing = required - set(record)
    unknown = set(record) - required - optional - _COMMON
    if missing or unknown:
        raise MalformedInput(
            f"missing members {sorted(missing)}, unknown members {sorted(unknown)}"
        )


def require_hex64(value: Any, label: str) -> str:
    """Return ``value`` when it is 64 lowercase hex digits, else raise."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise MalformedInput(
            f"{label} must be 64 lowercase hex digits, got {shorten(value)}"
        )
    return value
