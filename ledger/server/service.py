"""The log behind the HTTP API: settings, the write token, and ``LogService``.

``LogService`` opens the ledger, a ``Sequencer`` that batches concurrent
appends, and a ``TileReader`` over the same database. Its methods raise
``HttpError`` with the status and code that specs/http-api.md gives for each
failure; ``ledger.server.app`` turns those into JSON responses.
"""

import hmac
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..canonical import MAX_ENTRY_BYTES
from ..errors import (
    IdempotencyConflict,
    InvalidEntry,
    InvalidKey,
    InvalidRequest,
    KeyFileError,
    LedgerError,
    StorageError,
)
from ..keys import Signer
from ..log import Ledger
from ..receipt import Receipt
from ..sequencer import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT, Sequencer, SequencerClosed
from ..storage import Store
from ..tiles import TileReader
from .metrics import MeteredLedger, ServerMetrics

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "TOKEN_ENV_VAR",
    "HttpError",
    "LogService",
    "ServerSettings",
    "check_write_token",
    "error_response",
    "http_error_for",
    "load_write_token",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
TOKEN_ENV_VAR = "AGENTGATE_WRITE_TOKEN"
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 1024
_REALM = 'Bearer realm="agentgate"'
T = TypeVar("T")


# -- settings and the write token ---------------------------------------------


def check_write_token(token: str) -> str:
    """Return ``token`` if it can be a write token, else raise ``InvalidKey``.

    A token is 16 to 1024 visible ASCII characters (no spaces), so that it
    fits an ``Authorization: Bearer`` header unchanged. The message never
    contains the token.
    """
    if not isinstance(token, str):
        raise InvalidKey(f"write token must be a string, got {type(token).__name__}")
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise InvalidKey(
            f"write token is {len(token)} characters; expected {MIN_TOKEN_LENGTH} "
            f"to {MAX_TOKEN_LENGTH} (generate one with: openssl rand -hex 32)"
        )
    if not all("!" <= character <= "~" for character in token):
        raise InvalidKey(
            "write token contains a space, control or non-ASCII character; "
            "expected visible ASCII only (generate one with: openssl rand -hex 32)"
        )
    return token


def load_write_token(path: str | os.PathLike[str]) -> str:
    """Read a write token file: one line, mode 0600 or stricter, like key files."""
    try:
        with open(path, "rb") as handle:
            if os.name == "posix":
                mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
                if mode & 0o077:
                    raise KeyFileError(
                        f"token file {path} has mode {mode:04o}, so group or others "
                        f"can access it; run: chmod 600 {path}"
                    )
            data = handle.read(MAX_TOKEN_LENGTH + 2)
    except FileNotFoundError as err:
        raise KeyFileError(f"token file {path} not found") from err
    except OSError as err:
        raise KeyFileError(f"cannot read token file {path}: {err.strerror}") from err
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise KeyFileError(f"token file {path} is not ASCII text") from err
    text = text.removesuffix("\n").removesuffix("\r")
    try:
        return check_write_token(text)
    except InvalidKey as err:
        raise KeyFileError(f"token file {path}: {err}") from err


@dataclass(frozen=True)
class ServerSettings:
    """Server settings: the database and keys to open, and the request limits."""

    database: str
    signers: Sequence[Signer]
    write_token: str = field(repr=False)
    origin: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch: int = DEFAULT_MAX_BATCH
    max_wait: float = DEFAULT_MAX_WAIT

    def __post_init__(self) -> None:
        check_write_token(self.write_token)
        if not 1 <= self.max_body_bytes <= MAX_ENTRY_BYTES:
            raise InvalidRequest(
                f"body limit {self.max_body_bytes} bytes is outside [1, "
                f"{MAX_ENTRY_BYTES}]; the log stores no entry larger than "
                f"{MAX_ENTRY_BYTES} bytes"
            )


# -- errors -------------------------------------------------------------------


def error_response(
    status: int, code: str, detail: str, headers: dict | None = None
) -> Response:
    """Return the JSON error response ``{"error": code, "detail": detail}``."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    return Response(body, status, headers, media_type="application/json")


class HttpError(HTTPException):
    """An error response: status, short error code, detail sentence, headers."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict | None = None
    ) -> None:
        super().__init__(status, detail, headers)
        self.code = code


def http_error_for(err: LedgerError) -> HttpError:
    """Return the HTTP error for a ledger error; the caller raises it ``from``."""
    if isinstance(err, InvalidEntry):
        return HttpError(400, "invalid_entry", str(err))
    if isinstance(err, IdempotencyConflict):
        return HttpError(409, "idempotency_conflict", str(err))
    if isinstance(err, InvalidRequest):
        return HttpError(400, "invalid_request", str(err))
    if isinstance(err, (StorageError, SequencerClosed)):
        logger.warning("request failed: %s", err)
        return HttpError(503, "unavailable", f"the log cannot serve this now: {err}")
    logger.error("request failed: %r", err)
    return HttpError(500, "internal_error", f"the log failed: {err}")


# -- the open log -------------------------------------------------------------


class LogService:
    """The log behind the app: ledger, sequencer, tile reader and metrics.

    Constructing one does no I/O; ``start`` opens the database and ``stop``
    writes what is queued and closes it. The app calls both from its
    lifespan, and ``start`` does nothing the second time, so a caller may
    start the service first to report open errors before serving.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.ledger: Ledger | None = None
        self.sequencer: Sequencer | None = None
        self.tiles: TileReader | None = None
        self._token = settings.write_token.encode("ascii")

    def start(self) -> None:
        """Open the log, its tile reader and the sequencer. Idempotent."""
        if self.ledger is not None:
            return
        settings = self.settings
        ledger = Ledger.open(settings.database, list(settings.signers), settings.origin)
        try:
            store = Store.open(settings.database)
        except BaseException:
            ledger.close()
            raise
        self.tiles = TileReader(store)
        self.sequencer = Sequencer(
            MeteredLedger(ledger, self.metrics),
            max_batch=settings.max_batch,
            max_wait=settings.max_wait,
        )
        self.ledger = ledger
        self.metrics.tree_size.set_function(lambda: ledger.size)
        logger.info("serving log %s at size %d", ledger.origin, ledger.size)

    def stop(self) -> None:
        """Write queued entries, then close the sequencer and the database."""
        if self.ledger is None:
            return
        ledger, self.ledger = self.ledger, None
        try:
            self.sequencer.close()
        finally:
            try:
                self.tiles.store.close()
            finally:
                ledger.close()
        logger.info("stopped serving log %s at size %d", ledger.origin, ledger.size)

    def open_ledger(self) -> Ledger:
        """Return the open ledger, or raise a 503 error while it is closed."""
        ledger = self.ledger
        if ledger is None:
            raise HttpError(503, "unavailable", "the log is not open; retry shortly")
        return ledger

    def read_at_size(self, read: Callable[[int], T | None]) -> tuple[T | None, int]:
        """Return ``read(size)`` and the size, retrying at a larger size on None.

        ``read`` first gets the tree size this process has loaded. When it
        returns None, the ledger catches up with appends by other writer
        processes, and ``read`` runs once more if the log grew.
        """
        ledger = self.open_ledger()
        size = ledger.size
        found = read(size)
        if found is None and ledger.refresh():
            size = ledger.size
            found = read(size)
        return found, size

    def check_token(self, authorization: str | None) -> None:
        """Raise a 401 error unless ``authorization`` is ``Bearer <write token>``."""
        scheme, _, offered = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not offered.strip():
            raise HttpError(
                401,
                "unauthorized",
                "appending needs the write token: send 'Authorization: Bearer "
                "<token>'",
                {"WWW-Authenticate": _REALM},
            )
        offered_bytes = offered.strip().encode("latin-1", "replace")
        if not hmac.compare_digest(offered_bytes, self._token):
            raise HttpError(
                401,
                "unauthorized",
                "the bearer token is not the server's write token",
                {"WWW-Authenticate": _REALM + ', error="invalid_token"'},
            )

    async def append(self, entry: bytes, key: str | None) -> Receipt:
        """Append through the sequencer and count the receipt."""
        self.open_ledger()
        started = time.perf_counter()
        try:
            receipt = await self.sequencer.append_async(entry, key)
        except LedgerError as err:
            raise http_error_for(err) from err
        self.metrics.append_seconds.observe(time.perf_counter() - started)
        self.metrics.appends.inc()
        return receipt
