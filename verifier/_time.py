"""RFC 3339 UTC timestamps as records and certificates write them."""

import re
from datetime import UTC, datetime

from verifier._encoding import shorten
from verifier.errors import MalformedInput

# re.ASCII: without it \d takes every script's digits.
_RFC3339_UTC = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", re.ASCII
)


def parse_time(text: object, label: str) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` into an aware UTC datetime."""
    if not isinstance(text, str) or not _RFC3339_UTC.fullmatch(text):
        raise MalformedInput(
            f"{label}: expected an RFC 3339 UTC time like 2026-12-04T09:00:00Z, "
            f"got {shorten(text)}"
        )
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as err:
        raise MalformedInput(f"{label}: {text!r} is not a valid date: {err}") from err
