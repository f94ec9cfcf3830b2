"""A C2SP tlog-witness: cosign checkpoints that extend what the witness saw.

The witness serves ``POST /add-checkpoint`` (https://c2sp.org/tlog-witness).
The body is ``old <size>``, the consistency proof lines, a blank line and a
signed checkpoint. The witness cosigns the checkpoint only when the log's
key signed it and the proof shows that it extends the latest checkpoint the
witness cosigned for that origin. Its state, one size and root per log, is
written atomically before the cosignature is returned, and the check and
the write happen under one lock, so two requests can never roll it back.

The status codes are those the protocol names. 200 carries the cosignature
lines. 400 is a malformed body or an old size above the checkpoint's, 403 a
checkpoint that no known key of the log signed, and 404 an unknown origin.
409 (with the latest cosigned size as its body) is an old size other than
that size, or the same size with another root. 422 is a consistency proof
that does not verify.
The file formats are in ``specs/witness.md``.
"""

import fcntl
import hmac
import http.server
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from verifier._encoding import decode_decimal, decode_hash, encode_base64, shorten
from verifier._files import write_atomic
from verifier.checkpoint import MAX_TREE_SIZE, parse_checkpoint
from verifier.cosignature import Cosigner
from verifier.errors import (
    BadSignature,
    MalformedInput,
    ProofMismatch,
    Unavailable,
    VerificationError,
)
from verifier.jcs import canonicalize, parse_strict
from verifier.merkle import verify_consistency
from verifier.note import VerifierKey, open_note, parse_note, parse_verifier_key

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_CONTENT_LENGTH = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Answer:
    """An HTTP response: status, content type and body."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class LogState:
    """The latest checkpoint the witness cosigned for one log."""

    size: int
    root: bytes


class _Rejected(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        content_type: str | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.answer = Answer(
            status,
            body if body is not None else (message + "\n").encode("utf-8"),
            content_type or "text/plain; charset=utf-8",
        )


def parse_witness_config(
    text: str, where: str = "witness config"
) -> dict[str, list[VerifierKey]]:
    """Parse the known logs: ``log <verifier key> [<origin>]`` per line.

    The origin defaults to the key's name and may contain spaces. Several
    lines with one origin give the log several keys (a key rotation). Blank
    lines and lines starting with ``#`` are ignored.
    """
    logs: dict[str, list[VerifierKey]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        key_text, _, origin = rest.strip().partition(" ")
        if keyword != "log" or not key_text:
            raise MalformedInput(
                f"{where} line {number}: expected 'log <verifier key> [<origin>]', "
                f"got {shorten(line)}"
            )
        try:
            key = parse_verifier_key(key_text)
        except MalformedInput as err:
            raise MalformedInput(f"{where} line {number}: {err}") from err
        logs.setdefault(origin.strip() or key.name, []).append(key)
    if not logs:
        raise MalformedInput(f"{where}: expected at least one 'log' line, found none")
    return logs


class WitnessState:
    """The per-log state in a JSON file, replaced atomically on every change.

    A lock file next to it is held while the witness runs, so a second
    witness process on the same state cannot roll it back.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_file = open(self.path.with_name(self.path.name + ".lock"), "a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise Unavailable(
                f"witness state {self.path} is in use by another process; run "
                "one witness per state file"
            ) from None
        self.logs = self._load()

    def close(self) -> None:
        self._lock_file.close()

    def get(self, origin: str) -> LogState | None:
        return self.logs.get(origin)

    def put(self, origin: str, state: LogState) -> None:
        """Store ``state`` for ``origin`` and write the file durably."""
        logs = dict(self.logs)
        logs[origin] = state
        document = {
            "version": 1,
            "logs": {
                name: {"size": entry.size, "root": encode_base64(entry.root)}
                for name, entry in sorted(logs.items())
            },
        }
        write_atomic(self.path, canonicalize(document) + b"\n")
        self.logs = logs

    def _load(self) -> dict[str, LogState]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise Unavailable(
                f"cannot read {self.path}: {err.strerror or err}"
            ) from err
        document = parse_strict(data)
        if (
            not isinstance(document, dict)
            or document.get("version") != 1
            or not isinstance(document.get("logs"), dict)
        ):
            raise MalformedInput(
                f'witness state {self.path}: expected {{"version": 1, "logs": '
                "{...}}; restore it from a backup rather than deleting it, "
                "because a witness that forgets its state can be rolled back"
            )
        logs = {}
        for origin, entry in document["logs"].items():
            if not isinstance(entry, dict) or set(entry) != {"size", "root"}:
                raise MalformedInput(
                    f"witness state {self.path}: log {origin!r} needs size and root"
                )
            size = entry["size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise MalformedInput(
                    f"witness state {self.path}: log {origin!r} has size {size!r}"
                )
            logs[origin] = LogState(size, decode_hash(entry["root"], f"state {origin}"))
        return logs


class Witness:
    """Checks and cosigns checkpoints for the configured logs."""

    def __init__(
        self,
        cosigner: Cosigner,
        logs: dict[str, list[VerifierKey]],
        state: WitnessState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cosigner = cosigner
        self.logs = logs
        self.state = state
        self.clock = clock
        self._lock = threading.Lock()

    def add_checkpoint(self, body: bytes) -> Answer:
        """Handle one add-checkpoint request body and return the response."""
        try:
            return self._add_checkpoint(body)
        except _Rejected as rejection:
            logger.info(
                "add-checkpoint rejected (%d): %s", rejection.answer.status, rejection
            )
            return rejection.answer
        except Unavailable as err:
            logger.error("add-checkpoint failed, nothing was cosigned: %s", err)
            return Answer(503, b"the witness could not store its state; try again\n")

    def _add_checkpoint(self, body: bytes) -> Answer:
        # 1. Parse the request: old size, proof lines, checkpoint note.
        old, proof, note_text = _parse_request(body)
        try:
            note = parse_note(note_text)
            checkpoint = parse_checkpoint(note.text)
        except VerificationError as err:
            raise _Rejected(400, f"malformed checkpoint: {err}") from err

        # 2. The origin must be a configured log (404), signed by its key (403).
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            raise _Rejected(404, f"unknown log origin {checkpoint.origin!r}")
        try:
            open_note(note_text, keys)
        except (BadSignature, MalformedInput) as err:
            raise _Rejected(403, f"checkpoint of {checkpoint.origin!r}: {err}") from err

        # 3. The old size may not exceed the checkpoint's size (400).
        if old > checkpoint.size:
            raise _Rejected(
                400, f"old size {old} exceeds the checkpoint size {checkpoint.size}"
            )

        with self._lock:
            # 4. The old size must be the latest cosigned size (409).
            stored = self.state.get(checkpoint.origin) or LogState(0, b"")
            if old != stored.size:
                raise _Rejected(
                    409,
                    f"old size {old} is not the latest cosigned size {stored.size}",
                    SIZE_CONTENT_TYPE,
                    f"{stored.size}\n".encode(),
                )

            # 5. Consistency from the stored tree (422); none from size 0.
            if old == 0:
                if proof:
                    raise _Rejected(
                        400, f"old size 0 needs an empty proof, got {len(proof)} lines"
                    )
            elif old == checkpoint.size and not hmac.compare_digest(
                stored.root, checkpoint.root
            ):
                raise _Rejected(
                    409,
                    f"checkpoint of size {old} has root "
                    f"{encode_base64(checkpoint.root)}, but the witness cosigned "
                    f"root {encode_base64(stored.root)} at that size",
                    SIZE_CONTENT_TYPE,
                    f"{stored.size}\n".encode(),
                )
            else:
                try:
                    verify_consistency(
                        old, checkpoint.size, proof, stored.root, checkpoint.root
                    )
                except (ProofMismatch, MalformedInput) as err:
                    logger.warning(
                        "log %r sent a signed checkpoint of size %d that is not "
                        "proved consistent with size %d: %s",
                        checkpoint.origin,
                        checkpoint.size,
                        old,
                        err,
                    )
                    raise _Rejected(422, str(err)) from err

            # 6. Persist, then cosign.
            self.state.put(
                checkpoint.origin, LogState(checkpoint.size, checkpoint.root)
            )
            line = self.cosigner.cosign(note.text, int(self.clock()))
        logger.info(
            "cosigned %s at size %d (old size %d)",
            checkpoint.origin,
            checkpoint.size,
            old,
        )
        return Answer(200, line.encode("utf-8"))


def _parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Rejected(400, "request body is not UTF-8") from err
    head, blank, note_text = text.partition("\n\n")
    if not blank:
        raise _Rejected(
            400,
            "expected 'old <size>', proof lines, a blank line and "
            "a checkpoint; found no blank line",
        )
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise _Rejected(400, f"line 1: expected 'old <size>', got {shorten(lines[0])}")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _Rejected(
            400, f"expected at most {MAX_PROOF_LINES} proof lines, got {len(lines) - 1}"
        )
    try:
        old = decode_decimal(lines[0][4:], "line 1 (old size)", MAX_TREE_SIZE + 1)
        proof = [
            decode_hash(line, f"line {n} (proof hash)")
            for n, line in enumerate(lines[1:], start=2)
        ]
    except MalformedInput as err:
        raise _Rejected(400, str(err)) from err
    return old, proof, note_text


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "agentgate-witness"
    protocol_version = "HTTP/1.1"
    # Seconds a connection may stay idle or send a body slower than this.
    timeout = 30
    witness: Witness

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/add-checkpoint":
            self._send(
                Answer(404, b"not found; the witness serves POST /add-checkpoint\n")
            )
            return
        length_text = self.headers.get("Content-Length")
        # ASCII digits only: str.isdigit() also takes "²", which int() rejects.
        if length_text is None or not _CONTENT_LENGTH.fullmatch(length_text):
            self._send(
                Answer(411, b"Content-Length required, in ASCII digits\n"), close=True
            )
            return
        # The length guard keeps int() from parsing a huge digit string.
        if len(length_text) > 20 or int(length_text) > MAX_REQUEST_BYTES:
            self._send(
                Answer(
                    413,
                    f"request body of {shorten(length_text)} bytes exceeds "
                    f"{MAX_REQUEST_BYTES}\n".encode(),
                ),
                close=True,
            )
            return
        body = self.rfile.read(int(length_text))
        self._send(self.witness.add_checkpoint(body))

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/add-checkpoint":
            self._send(Answer(405, b"use POST\n"), allow="POST")
        else:
            self._send(Answer(404, b"not found\n"))

    def _send(
        self, answer: Answer, close: bool = False, allow: str | None = None
    ) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if allow:
            self.send_header("Allow", allow)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        logger.debug("%s %s", self.address_string(), format % args)


def make_server(
    witness: Witness, host: str = "127.0.0.1", port: int = 0
) -> http.server.ThreadingHTTPServer:
    """Return an HTTP server for ``witness``, bound but not yet serving."""
    handler = type("WitnessHandler", (_Handler,), {"witness": witness})
    server = _Server((host, port), handler)
    server.daemon_threads = True
    return server


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # The standard library prints a traceback to standard error. A client
        # that hangs up early is routine, and any other error goes to the log.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            logger.debug("client %s hung up: %s", client_address[0], error)
        else:
            logger.exception("request from %s failed", client_address[0])
