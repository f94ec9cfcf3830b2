"""``agentgate keygen`` and ``agentgate log ...``: key files and log operations.

Exit codes: 0 on success, 2 for bad usage or bad input (a malformed entry,
an unreadable key file, sizes the log does not have), 1 when the database
fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from .errors import LedgerError, StorageError
from .keys import Signer, load_signer, write_key_pair
from .log import Ledger
from .proofs import format_proof_text

__all__ = ["keygen", "log"]


class CommandError(click.ClickException):
    """A failure reported as ``Error: <message>`` with a chosen exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Turn ledger and file errors into one-line messages and exit codes."""
    try:
        yield
    except StorageError as err:
        raise CommandError(str(err), 1) from err
    except LedgerError as err:
        raise CommandError(str(err), 2) from err
    except OSError as err:
        name = err.filename if err.filename is not None else ""
        raise CommandError(f"{name}: {err.strerror}".lstrip(": "), 2) from err


def _open_log(database: str, key_file: str | None, *, create: bool = False) -> Ledger:
    signer = load_signer(key_file) if key_file is not None else None
    return Ledger.open(database, signer, create=create)


_database_option = click.option(
    "--db",
    "database",
    required=True,
    metavar="PATH",
    help="SQLite file of the log (or a SQLAlchemy database URL).",
)


@click.command()
@click.option(
    "--name",
    required=True,
    help="Key name; for a log key, the log's origin (e.g. agentgate.example/demo).",
)
@click.option(
    "--out",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for NAME.key and NAME.pub; created if missing.",
)
def keygen(name: str, directory: Path) -> None:
    """Generate an Ed25519 key pair and print its verifier key.

    Writes NAME.key (the signer key, mode 0600) and NAME.pub (the verifier
    key). Characters of NAME other than letters, digits, '.', '_' and '-'
    become '_' in the file names. Existing files are never overwritten.
    """
    with _reported_errors():
        signer = Signer.generate(name)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path, pub_path = write_key_pair(signer, directory)
    click.echo(f"wrote {key_path} and {pub_path}", err=True)
    click.echo(str(signer.verifier_key))


@click.group()
def log() -> None:
    """Create a transparency log, append entries and produce proofs."""


@log.command()
@_database_option
@click.option(
    "--key",
    "key_file",
    required=True,
    metavar="FILE",
    help="Signer key file of the log (mode 0600).",
)
@click.option(
    "--origin",
    default=None,
    help="Origin of the new log; must equal the key name (the default).",
)
def init(database: str, key_file: str, origin: str | None) -> None:
    """Create a new log and print its first checkpoint."""
    with _reported_errors():
        signer = load_signer(key_file)
        if Ledger.exists(database):
            raise CommandError(
                f"{database} already contains a log; choose another --db path", 2
            )
        with Ledger.open(database, signer, origin) as ledger:
            checkpoint = ledger.latest_checkpoint()
    click.echo(checkpoint, nl=False)


@log.command()
@_database_option
@click.option(
    "--key",
    "key_file",
    required=True,
    metavar="FILE",
    help="Signer key file of the log (mode 0600).",
)
@click.option(
    "--idempotency-key",
    default=None,
    help="Opaque key; repeating it returns the first entry's receipt.",
)
@click.option(
    "--out",
    "out_file",
    default="-",
    type=click.File("w", encoding="utf-8"),
    help="Receipt file to write (default: standard output).",
)
@click.argument("entry_file", type=click.File("rb"))
def append(database: str, key_file: str, idempotency_key, out_file, entry_file) -> None:
    """Append the JCS record in ENTRY_FILE ('-' for stdin) and write its receipt."""
    with _reported_errors():
        entry = entry_file.read()
        with _open_log(database, key_file) as ledger:
            receipt = ledger.append(entry, idempotency_key)
        out_file.write(receipt.text)
    click.echo(f"entry {receipt.index} sealed in {ledger.origin}", err=True)


@log.command()
@_database_option
@click.option(
    "--key",
    "key_file",
    default=None,
    metavar="FILE",
    help="Signer key file; needed only if the latest checkpoint was never stored.",
)
def checkpoint(database: str, key_file: str | None) -> None:
    """Print the latest signed checkpoint."""
    with _reported_errors():
        with _open_log(database, key_file) as ledger:
            note = ledger.latest_checkpoint()
    click.echo(note, nl=False)


@log.command("prove-consistency")
@_database_option
@click.option(
    "--out",
    "out_file",
    default="-",
    type=click.File("w", encoding="utf-8"),
    help="Proof file to write (default: standard output).",
)
@click.argument("first", type=int)
@click.argument("second", type=int)
def prove_consistency(database: str, out_file, first: int, second: int) -> None:
    """Write the consistency proof from tree size FIRST to SECOND.

    The output is one base64 hash per line (specs/merkle.md, "Proof text").
    """
    with _reported_errors():
        with _open_log(database, None) as ledger:
            proof = ledger.consistency_proof(first, second)
        out_file.write(format_proof_text(proof))
