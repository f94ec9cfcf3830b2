"""``HttpLedgerClient``: the ``LedgerClient`` of a log served over HTTP.

It calls the JSON API of ``agentgate serve`` (specs/http-api.md) and behaves
like ``LocalLedgerClient``: ``append`` returns a ``Receipt``, the proof
methods return lists of 32-byte hashes, and errors are ``LedgerError``
subclasses. A 4xx response raises what the local client raises for the same
call: ``InvalidEntry`` for a bad entry, ``IdempotencyConflict`` for a reused
idempotency key with other bytes, and ``InvalidRequest`` for the rest.
A network failure, a timeout, a 5xx response or a malformed response raises
``LedgerUnavailable``.

The client checks that each response is well formed and that a receipt
carries the entry it sent, but it does not verify proofs or signatures: the
gate verifies every receipt itself with the independent ``verifier``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import httpx

from .errors import (
    IdempotencyConflict,
    InvalidEntry,
    InvalidKey,
    InvalidRequest,
    LedgerUnavailable,
)
from .keys import validate_key_name
from .receipt import RECEIPT_HEADER, Receipt

__all__ = ["DEFAULT_TIMEOUT", "HttpLedgerClient"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# The server returns at most this many entries per request.
ENTRIES_PAGE = 1000
_HASH_BYTES = 32
_JSON_TYPES = {int: "integer", str: "string", list: "array"}


class HttpLedgerClient:
    """A ``LedgerClient`` that reaches a log through its HTTP API.

    ``base_url`` is the server's root, such as ``http://127.0.0.1:8080``.
    ``token`` is the write token, needed only to append. ``timeout`` bounds
    each request in seconds. ``origin`` is the log's origin; when it is not
    given, the constructor reads it from the latest checkpoint, so the
    server must be reachable then.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        origin: str | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(
            ("http://", "https://")
        ):
            raise InvalidRequest(
                f"base URL {base_url!r} is invalid; expected http://HOST:PORT or "
                "https://HOST:PORT"
            )
        if not timeout > 0:
            raise InvalidRequest(f"timeout must be positive seconds, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)
        try:
            self.origin = origin if origin is not None else self._read_origin()
        except BaseException:
            self._client.close()
            raise

    def _read_origin(self) -> str:
        origin = self.latest_checkpoint().split("\n", 1)[0]
        try:
            validate_key_name(origin)
        except InvalidKey as err:
            raise LedgerUnavailable(
                f"the log at {self.base_url} sent a checkpoint whose origin line "
                f"{origin!r} is not a valid origin: {err}"
            ) from err
        return origin

    # -- LedgerClient ---------------------------------------------------------

    def append(self, entry: bytes, key: str | None = None) -> Receipt:
        """Append one entry and return its receipt."""
        if not isinstance(entry, (bytes, bytearray)):
            raise InvalidEntry(f"entry must be bytes, got {type(entry).__name__}")
        entry = bytes(entry)
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        if key is not None:
            if not isinstance(key, str) or not key.isascii():
                raise InvalidRequest(
                    f"idempotency key must be an ASCII string to travel in the "
                    f"Idempotency-Key header, got {key!r}"
                )
            headers["Idempotency-Key"] = key
        document = self._json("POST", "/v1/entries", content=entry, headers=headers)
        index = _field(document, "index", int, self.base_url)
        text = _field(document, "receipt", str, self.base_url)
        receipt = self._rebuild_receipt(text, entry, index)
        if _field(document, "leaf_hash", str, self.base_url) != receipt.leaf_hash.hex():
            raise self._malformed("a leaf_hash that is not the hash of the entry sent")
        return receipt

    def latest_checkpoint(self) -> str:
        """Return the signed note of the latest checkpoint."""
        note = self._request("GET", "/v1/checkpoint").text
        if not note.endswith("\n"):
            raise self._malformed("a checkpoint that does not end in a newline")
        return note

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Return the RFC 9162 consistency proof from ``first`` to ``second``."""
        _check_integers(f"consistency proof for sizes {first!r} -> {second!r}",
                        first=first, second=second)
        document = self._json(
            "GET", "/v1/proofs/consistency", params={"first": first, "second": second}
        )
        return self._hashes(document, "proof")

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the RFC 9162 audit path for ``index`` in the tree of ``size``."""
        _check_integers(f"inclusion proof for index {index!r} in size {size!r}",
                        index=index, size=size)
        document = self._json(
            "GET", "/v1/proofs/inclusion", params={"index": index, "size": size}
        )
        return self._hashes(document, "proof")

    def entries(self, start: int, stop: int) -> list[bytes]:
        """Return the entries of leaves ``[start, stop)``, in pages of 1000."""
        _check_integers(f"entries [{start!r}, {stop!r})", start=start, stop=stop)
        found: list[bytes] = []
        position = start
        while True:
            end = stop if stop - position <= ENTRIES_PAGE else position + ENTRIES_PAGE
            document = self._json(
                "GET", "/v1/entries", params={"start": position, "end": end}
            )
            page = [_b64decode(item, "entry", self.base_url)
                    for item in _field(document, "entries", list, self.base_url)]
            if len(page) != max(end - position, 0):
                raise self._malformed(
                    f"{len(page)} entries for [{position}, {end})"
                )
            found.extend(page)
            position = end
            if position >= stop:
                return found

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpLedgerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpLedgerClient({self.base_url!r}, origin={self.origin!r})"

    # -- requests -------------------------------------------------------------

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """Send one request; raise the ledger error that its failure maps to."""
        target = f"{method} {self.base_url}{path}"
        try:
            response = self._client.request(method, path, **options)
        except httpx.TimeoutException as err:
            raise LedgerUnavailable(
                f"{target} timed out after {self.timeout} s: {err!r}"
            ) from err
        except httpx.HTTPError as err:
            raise LedgerUnavailable(
                f"{target} failed: {err!r}; is the log server running?"
            ) from err

        status = response.status_code
        if status == 200:
            return response
        code, detail = _error_body(response)
        message = f"{detail} (HTTP {status} {code} from {target})"
        if status >= 500:
            raise LedgerUnavailable(message)
        if status == 413 or code == "invalid_entry":
            raise InvalidEntry(message)
        if status == 409 and code == "idempotency_conflict":
            raise IdempotencyConflict(message)
        if 400 <= status < 500:
            raise InvalidRequest(message)
        raise LedgerUnavailable(f"unexpected response: {message}")

    def _json(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        response = self._request(method, path, **options)
        try:
            document = response.json()
        except ValueError as err:
            raise self._malformed(f"a body that is not JSON: {err}") from err
        if not isinstance(document, dict):
            raise self._malformed(f"a JSON {type(document).__name__}, not an object")
        return document

    def _hashes(self, document: dict[str, Any], name: str) -> list[bytes]:
        hashes = [_b64decode(item, name, self.base_url)
                  for item in _field(document, name, list, self.base_url)]
        for digest in hashes:
            if len(digest) != _HASH_BYTES:
                raise self._malformed(
                    f"a {name} hash of {len(digest)} bytes; expected {_HASH_BYTES}"
                )
        return hashes

    def _rebuild_receipt(self, text: str, entry: bytes, index: int) -> Receipt:
        """Return the ``Receipt`` whose text is ``text``, checking what it carries."""
        head, separator, checkpoint = text.partition("\n\n")
        lines = head.split("\n")
        if not separator or len(lines) < 3 or lines[0] != RECEIPT_HEADER:
            raise self._malformed("a receipt that is not a tlog-proof@v1 file")
        if not lines[1].startswith("extra "):
            raise self._malformed("a receipt without its extra line")
        carried = _b64decode(lines[1].removeprefix("extra "), "extra", self.base_url)
        if carried != entry:
            raise self._malformed("a receipt for an entry other than the one sent")
        if lines[2] != f"index {index}":
            raise self._malformed(f"a receipt whose index line is {lines[2]!r}")
        proof = [_b64decode(line, "proof", self.base_url) for line in lines[3:]]
        receipt = Receipt.build(entry, index, proof, checkpoint)
        if receipt.text != text:
            raise self._malformed("a receipt that is not in canonical form")
        return receipt

    def _malformed(self, description: str) -> LedgerUnavailable:
        return LedgerUnavailable(f"the log at {self.base_url} sent {description}")


def _check_integers(request: str, **values: object) -> None:
    """Raise ``InvalidRequest`` as the local log does for a non-integer argument."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidRequest(
                f"{request}: {name} must be an integer, got {type(value).__name__}"
            )


def _error_body(response: httpx.Response) -> tuple[str, str]:
    """Return ``(error, detail)`` from an error response, tolerating any body."""
    try:
        document = response.json()
        return str(document["error"]), str(document["detail"])
    except (ValueError, KeyError, TypeError):
        return "unknown", response.text[:200] or response.reason_phrase


def _field(document: dict[str, Any], name: str, kind: type, base_url: str) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise LedgerUnavailable(
            f"the log at {base_url} sent a response whose {name!r} is {value!r}; "
            f"expected a JSON {_JSON_TYPES[kind]}"
        )
    return value


def _b64decode(text: object, name: str, base_url: str) -> bytes:
    try:
        if not isinstance(text, str):
            raise TypeError(f"expected a string, got {type(text).__name__}")
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError) as err:
        raise LedgerUnavailable(
            f"the log at {base_url} sent a {name} value {text!r:.60} that is not "
            f"standard base64: {err}"
        ) from err
