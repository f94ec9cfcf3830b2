"""Durable file writes and secret key files for the witness and the monitor.

A state file is replaced atomically. The new content goes to a temporary
file in the same directory, which is flushed to disk and renamed over the
old file, and then the directory is flushed. A crash therefore leaves either
the old or the new state, never a torn one.
"""

import os
import stat
import tempfile
from pathlib import Path

from verifier.errors import MalformedInput, Unavailable


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, fsync dir.

    Raises ``Unavailable`` when the directory cannot be written.
    """
    target = Path(path)
    directory = target.parent
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=directory
        )
    except OSError as err:
        raise Unavailable(
            f"cannot create a temporary file in {directory}: {err.strerror or err}"
        ) from err

    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
        _fsync_directory(directory)
    except OSError as err:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise Unavailable(f"cannot write {target}: {err.strerror or err}") from err


def read_secret_file(path: str | os.PathLike[str], what: str) -> str:
    """Return the one-line content of a secret file that only its owner can read.

    Raises ``MalformedInput`` when the file is readable or writable by group
    or others, naming the mode and the ``chmod`` that fixes it, and
    ``Unavailable`` when it cannot be read.
    """
    target = Path(path)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
        data = target.read_bytes()
    except OSError as err:
        raise Unavailable(
            f"cannot read {what} {target}: {err.strerror or err}"
        ) from err
    if mode & 0o077:
        raise MalformedInput(
            f"{what} {target} has mode {mode:04o}, so other users can read it; "
            f"expected 0600 or stricter: run chmod 600 {target}"
        )
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError as err:
        raise MalformedInput(
            f"{what} {target}: expected one line of ASCII, got binary data"
        ) from err
    if not text or "\n" in text:
        raise MalformedInput(
            f"{what} {target}: expected exactly one line, got {text.count(chr(10)) + 1}"
            if text
            else f"{what} {target} is empty"
        )
    return text


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
