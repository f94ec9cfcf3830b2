"""Reading requests: headers, the body under its limit, and parameter errors.

Each check raises ``HttpError`` with the status and code of
specs/http-api.md, naming the value it saw and the form it expected.
"""

from collections.abc import Sequence

from fastapi import Request

from ..items import MAX_IDEMPOTENCY_KEY_LENGTH
from .service import HttpError

__all__ = [
    "DECIMAL_PATTERN",
    "HEX_HASH_PATTERN",
    "accepts_gzip",
    "check_content_type",
    "check_idempotency_key",
    "describe_invalid_parameters",
    "prefers_text",
    "read_body",
]

# Sizes and indexes: digits only, no sign or leading zeros, below 10^19.
DECIMAL_PATTERN = r"^(0|[1-9][0-9]{0,18})$"
HEX_HASH_PATTERN = r"^[0-9a-fA-F]{64}$"


def check_content_type(value: str | None) -> None:
    media_type, _, parameters = (value or "").partition(";")
    charset = ""
    for parameter in parameters.split(";"):
        name, _, parameter_value = parameter.strip().partition("=")
        if name.lower() == "charset":
            charset = parameter_value.strip('"').lower()
    if media_type.strip().lower() != "application/json" or charset not in ("", "utf-8"):
        raise HttpError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json (UTF-8), got {value!r}; send "
            "the entry's RFC 8785 (JCS) bytes as application/json",
        )


def check_idempotency_key(key: str | None) -> None:
    if key is None:
        return
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise HttpError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable "
            f"characters, got {len(key)} characters: {key[:40]!r}",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, stopping with 413 as soon as it passes ``limit``."""
    too_large = HttpError(
        413,
        "payload_too_large",
        f"the entry is larger than this server's limit of {limit} bytes",
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        # ASCII digits only: str.isdigit() also takes "²", which int() rejects.
        if not (declared.isascii() and declared.isdigit()):
            raise HttpError(
                400, "invalid_request", f"Content-Length {declared!r} is not a number"
            )
        if int(declared) > limit:
            too_large.detail = (
                f"the entry is {int(declared)} bytes, larger than this server's "
                f"limit of {limit} bytes"
            )
            raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def accepts_gzip(request: Request) -> bool:
    for item in request.headers.get("accept-encoding", "").split(","):
        coding, _, parameters = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return parameters.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00")
    return False


def prefers_text(request: Request) -> bool:
    """Return whether the Accept header ranks text/plain above JSON.

    Each media type takes the weight of the most specific range that
    matches it (RFC 9110 section 12.5.1). Without an Accept header the
    response is JSON.
    """
    ranges = []
    for item in request.headers.get("accept", "").split(","):
        media_range, *parameters = item.strip().split(";")
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.strip().partition("=")
            if name.lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        ranges.append((media_range.strip().lower(), weight))

    def weight_of(media_type: str) -> float | None:
        patterns = (media_type, media_type.split("/")[0] + "/*", "*/*")
        matches = [
            (patterns.index(media_range), weight)
            for media_range, weight in ranges
            if media_range in patterns
        ]
        return min(matches)[1] if matches else None

    text, json_weight = weight_of("text/plain"), weight_of("application/json")
    if text is None or text <= 0:
        return False
    return json_weight is None or text > json_weight


def describe_invalid_parameters(errors: Sequence[dict]) -> str:
    """Return one sentence per invalid parameter, naming the value and the form."""
    sentences = []
    for error in errors:
        where, name = (list(error["loc"]) + ["", ""])[:2]
        label = f"{where} parameter {name!r}"
        if error["type"] == "missing":
            sentences.append(f"{label} is required")
        elif error.get("ctx", {}).get("pattern") == DECIMAL_PATTERN:
            sentences.append(
                f"{label} must be a decimal integer (digits only, no sign or "
                f"leading zeros, below 10^19), got {error['input']!r}"
            )
        elif error.get("ctx", {}).get("pattern") == HEX_HASH_PATTERN:
            sentences.append(
                f"{label} must be a SHA-256 hash as 64 hex digits, got "
                f"{error['input']!r}"
            )
        else:
            sentences.append(f"{label} is invalid: {error['msg']}")
    return "; ".join(sentences)
