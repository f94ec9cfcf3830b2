"""RFC 3339 timestamps in UTC, the only form records and certificates use."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from enforcement.errors import InvalidRequest

# re.ASCII: without it \d takes every script's digits.
_RFC3339_UTC = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", re.ASCII
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Format as RFC 3339 UTC with six fractional digits, as records require."""
    return _as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_seconds(moment: datetime) -> str:
    """Format as RFC 3339 UTC to the second, as certificates use."""
    return _as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, what: str) -> datetime:
    """Parse an RFC 3339 UTC timestamp ending in ``Z``."""
    if not isinstance(text, str) or not _RFC3339_UTC.fullmatch(text):
        raise InvalidRequest(
            f"{what}: expected an RFC 3339 UTC time like 2026-01-31T12:00:00Z, "
            f"got {text!r}"
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError as err:
        raise InvalidRequest(f"{what}: {text!r} is not a valid date: {err}") from err


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidRequest(
            f"time {moment.isoformat()} has no time zone; pass an aware datetime"
        )
    return moment.astimezone(UTC)
