"""C2SP tlog-checkpoint bodies: the signed tree head of a log.

The body is the text of a signed note:

    <origin>
    <tree size, ASCII decimal, no leading zeros>
    <root hash, standard padded base64 of 32 bytes>
    [<extension line> ...]

Extension lines are returned as they are and never interpreted.
"""

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from verifier._encoding import decode_decimal, decode_hash, decode_utf8, shorten
from verifier.errors import MalformedInput, OriginMismatch
from verifier.merkle import EMPTY_ROOT
from verifier.note import Note, VerifierKey, open_note

# Tree sizes are non-negative signed 64-bit integers in every checkpoint
# implementation AgentGate talks to.
MAX_TREE_SIZE = 2**63 - 1

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint body."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Parse the text of a checkpoint note (without its signature lines).

    Requires a non-empty origin, a tree size in ``[0, 2^63)`` written as ASCII
    decimal without sign, spaces or leading zeros, and a root hash in
    canonical standard base64 of exactly 32 bytes. A tree of size 0 must have
    the empty-tree root ``SHA-256("")``. Extension lines must not be empty.
    Raises ``MalformedInput`` naming the line otherwise.
    """
    if isinstance(text, (bytes, bytearray)):
        text = decode_utf8(bytes(text), "checkpoint")
    elif not isinstance(text, str):
        raise MalformedInput(
            f"checkpoint: expected str or bytes, got {type(text).__name__}"
        )

    control = _CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        raise MalformedInput(
            f"checkpoint line {line}: expected no control character but newline, "
            f"got U+{ord(control.group()):04X}"
        )
    if not text.endswith("\n"):
        raise MalformedInput(
            "checkpoint: expected the last line to end with a newline, got "
            f"{shorten(text[-20:])} at the end"
        )
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedInput(
            "checkpoint: expected at least 3 lines (origin, tree size, root hash), "
            f"got {len(lines)}"
        )

    origin = lines[0]
    if not origin:
        raise MalformedInput(
            "checkpoint line 1: expected the origin, got an empty line"
        )
    size = decode_decimal(lines[1], "checkpoint line 2 (tree size)", MAX_TREE_SIZE + 1)
    root = decode_hash(lines[2], "checkpoint line 3 (root hash)")
    if size == 0 and not hmac.compare_digest(root, EMPTY_ROOT):
        raise MalformedInput(
            "checkpoint line 3 (root hash): a tree of size 0 must have the "
            f'empty-tree root SHA-256(""), got {shorten(lines[2])}'
        )

    extensions = tuple(lines[3:])
    for number, extension in enumerate(extensions, start=4):
        if not extension:
            raise MalformedInput(
                f"checkpoint line {number}: expected an extension line, got an "
                "empty line"
            )
    return Checkpoint(origin, size, root, extensions)


def check_origin(checkpoint: Checkpoint, origin: str | None) -> None:
    """Raise ``OriginMismatch`` unless ``origin`` is None or the checkpoint's origin."""
    if origin is None:
        return
    if not isinstance(origin, str):
        raise MalformedInput(
            f"expected origin: expected str or None, got {type(origin).__name__}"
        )
    if checkpoint.origin != origin:
        raise OriginMismatch(
            f"checkpoint: expected origin {origin!r}, got {checkpoint.origin!r}; "
            "the checkpoint belongs to another log"
        )


def open_checkpoint(
    text: str | bytes,
    verifier_keys: Iterable[VerifierKey | str] | VerifierKey | str,
    origin: str | None = None,
) -> tuple[Checkpoint, Note]:
    """Open a signed checkpoint and return the parsed body and the opened note.

    Runs the same checks as ``verify_checkpoint``. The note lists the keys
    whose signatures verified.
    """
    _reject_receipt(text)
    note = open_note(text, verifier_keys)
    checkpoint = parse_checkpoint(note.text)
    check_origin(checkpoint, origin)
    return checkpoint, note


def verify_checkpoint(
    text: str | bytes,
    verifier_keys: Iterable[VerifierKey | str] | VerifierKey | str,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note and return its parsed body.

    Plan:

    1. open the note with the verifier keys (C2SP signed-note);
    2. parse the body (C2SP tlog-checkpoint);
    3. when ``origin`` is given, require the checkpoint's origin to equal it.

    Raises ``MalformedInput``, ``BadSignature``, ``UnknownKey`` or
    ``OriginMismatch``.
    """
    checkpoint, _ = open_checkpoint(text, verifier_keys, origin)
    return checkpoint


def _reject_receipt(text: str | bytes) -> None:
    """Name the mix-up when a receipt is passed where a checkpoint belongs."""
    head = text[:40] if isinstance(text, (str, bytes, bytearray)) else ""
    if isinstance(head, (bytes, bytearray)):
        head = bytes(head).decode("utf-8", "replace")
    if head.startswith("c2sp.org/tlog-proof@v1"):
        raise MalformedInput(
            "expected a checkpoint (a signed note), got a receipt; a receipt "
            "ends with its checkpoint, which can be cut out after its blank line"
        )
