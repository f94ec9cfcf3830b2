"""Signed notes and checkpoints, signing side (C2SP signed-note, tlog-checkpoint).

A signed note is UTF-8 text ending in a newline, a blank line, and one
signature line per key::

    <text>\\n
    \\n
    \\u2014 <key name> <base64(key id || Ed25519 signature of text)>\\n

A checkpoint is a note whose text is the log's origin, the tree size in
decimal and the root hash in base64, one per line. The ledger writes no
extension lines. Verification lives in the separate ``verifier`` package.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidRequest, StorageError
from .keys import Signer, validate_key_name

__all__ = [
    "MAX_SIGNATURES",
    "Checkpoint",
    "check_own_checkpoint",
    "format_checkpoint_body",
    "parse_own_checkpoint",
    "sign_checkpoint",
    "sign_note",
]

# Verifiers reject notes with more signature lines than this.
MAX_SIGNATURES = 100
# Tree sizes are in [0, 2^63) so that every implementation reads them exactly.
_MAX_TREE_SIZE = 1 << 63
_SIGNATURE_PREFIX = "\u2014 "


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: origin, size, root hash and the signed note text."""

    origin: str
    size: int
    root: bytes
    note: str


def format_checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """Return the three-line checkpoint text for ``origin``, ``size`` and ``root``."""
    validate_key_name(origin)
    if not isinstance(size, int) or not 0 <= size < _MAX_TREE_SIZE:
        raise InvalidRequest(f"tree size must be an integer in [0, 2^63), got {size!r}")
    if not isinstance(root, bytes) or len(root) != 32:
        raise InvalidRequest(f"root hash must be 32 bytes, got {root!r}")
    encoded_root = base64.b64encode(root).decode("ascii")
    return f"{origin}\n{size}\n{encoded_root}\n"


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign ``text`` with every signer and return the signed note.

    Each signer adds one line, in the order given. ``text`` must be non-empty,
    end in a newline and hold no carriage return; signers must be distinct.
    """
    if not isinstance(text, str) or not text.endswith("\n"):
        raise InvalidRequest(f"note text must end in a newline, got {text!r}")
    if "\r" in text:
        raise InvalidRequest("note text must not contain a carriage return")
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRequest(f"note text is not valid Unicode: {err}") from err
    if not 1 <= len(signers) <= MAX_SIGNATURES:
        raise InvalidRequest(
            f"a note needs between 1 and {MAX_SIGNATURES} signers, got {len(signers)}"
        )
    seen = set()
    for signer in signers:
        identity = (signer.name, signer.key_id)
        if identity in seen:
            raise InvalidRequest(f"signer {signer.verifier_key} is listed twice")
        seen.add(identity)

    lines = []
    for signer in signers:
        signature = base64.b64encode(signer.key_id + signer.sign(message))
        lines.append(f"{_SIGNATURE_PREFIX}{signer.name} {signature.decode('ascii')}\n")
    return text + "\n" + "".join(lines)


def sign_checkpoint(
    origin: str, size: int, root: bytes, signers: Sequence[Signer]
) -> Checkpoint:
    """Format and sign the checkpoint for a tree of ``size`` leaves and ``root``."""
    body = format_checkpoint_body(origin, size, root)
    return Checkpoint(
        origin=origin, size=size, root=root, note=sign_note(body, signers)
    )


def parse_own_checkpoint(note: str) -> Checkpoint:
    """Read origin, size and root back from a note this ledger stored.

    This checks the form, not the signatures: it is for state that the
    ledger wrote itself, and raises ``StorageError`` when that state is
    damaged. Auditors use ``verifier.parse_checkpoint`` instead.
    """
    split = note.rfind("\n\n")
    lines = note[: split + 1].split("\n") if split >= 0 else []
    if len(lines) != 4 or lines[3] != "":
        raise StorageError(f"stored checkpoint is malformed: {note!r}")
    origin, size_text, root_text = lines[:3]
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise StorageError(
            f"stored checkpoint has a bad root line {root_text!r}"
        ) from err
    if not size_text.isascii() or not size_text.isdigit() or len(root) != 32:
        raise StorageError(f"stored checkpoint is malformed: {note!r}")
    return Checkpoint(origin=origin, size=int(size_text), root=root, note=note)


def check_own_checkpoint(note: str, origin: str, size: int, root: bytes) -> Checkpoint:
    """Parse a stored checkpoint and check that it names ``origin``, ``size``, ``root``.

    Raises ``StorageError`` for a note that is malformed or names another
    tree: the database is damaged.
    """
    checkpoint = parse_own_checkpoint(note)
    if (
        checkpoint.origin != origin
        or checkpoint.size != size
        or not hmac.compare_digest(checkpoint.root, root)
    ):
        raise StorageError(
            f"stored checkpoint of size {checkpoint.size} names origin "
            f"{checkpoint.origin!r} and root {checkpoint.root.hex()}, but the tree "
            f"of size {size} has {origin!r} and {root.hex()}; the database is "
            "damaged"
        )
    return checkpoint
