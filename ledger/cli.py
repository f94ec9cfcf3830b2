"""``agentgate keygen``, ``agentgate log ...`` and ``agentgate serve``.

Key files, log operations, and the log served over HTTP (``ledger.server``,
which needs the ``server`` extra).

Exit codes: 0 on success, 2 for bad usage or bad input (a malformed entry,
an unreadable key file, sizes the log does not have), 1 when the database
fails.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from .errors import LedgerError, StorageError
from .keys import Signer, load_signer, load_verifier_key, write_key_pair
from .log import Ledger
from .migrations import upgrade_database
from .proofs import format_proof_text

__all__ = ["keygen", "log", "serve"]


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


def _open_log(
    database: str, key_files: Sequence[str], *, create: bool = False
) -> Ledger:
    signers = [load_signer(key_file) for key_file in key_files]
    return Ledger.open(database, signers, create=create)


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
    become '_' in the file names, and so do leading dots, so the files are
    never hidden and always land in --out: '.x' gives _x.key and 'a/../b'
    gives a_.._b.key. Existing files are never overwritten.
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
    "key_files",
    required=True,
    multiple=True,
    metavar="FILE",
    help="Signer key file of an active key of the log (mode 0600); repeat it "
    "to sign with several keys during a key rotation.",
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
def append(
    database: str, key_files: tuple[str, ...], idempotency_key, out_file, entry_file
) -> None:
    """Append the JCS record in ENTRY_FILE ('-' for stdin) and write its receipt.

    The entry is the file's exact bytes: the RFC 8785 (JCS) form of a JSON
    object, with no trailing newline. Write it with printf, not echo, which
    adds one: printf '%s' '{"type":"note","version":1}' > entry.json
    """
    with _reported_errors():
        entry = entry_file.read()
        if entry.endswith(b"\n"):
            raise CommandError(
                f"{entry_file.name} ends with a newline, but an entry is its exact "
                "canonical JSON (RFC 8785) bytes without a trailing newline; write "
                "it with printf '%s' '{...}', not echo, which adds the newline",
                2,
            )
        with _open_log(database, key_files) as ledger:
            receipt = ledger.append(entry, idempotency_key)
        out_file.write(receipt.text)
    click.echo(f"entry {receipt.index} sealed in {ledger.origin}", err=True)


@log.command()
@_database_option
@click.option(
    "--key",
    "key_files",
    multiple=True,
    metavar="FILE",
    help="Signer key file; needed only if the latest checkpoint was never "
    "stored. Repeat it to sign with several keys.",
)
def checkpoint(database: str, key_files: tuple[str, ...]) -> None:
    """Print the latest signed checkpoint."""
    with _reported_errors():
        with _open_log(database, key_files) as ledger:
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
        with _open_log(database, ()) as ledger:
            proof = ledger.consistency_proof(first, second)
        out_file.write(format_proof_text(proof))


_active_keys_option = click.option(
    "--key",
    "key_files",
    required=True,
    multiple=True,
    metavar="FILE",
    help="Signer key file of an active key of the log (mode 0600); repeat it "
    "for several keys.",
)


@log.command("add-key")
@_database_option
@_active_keys_option
@click.option(
    "--new-key",
    "new_key_file",
    required=True,
    metavar="FILE",
    help="Signer key file of the key to introduce (mode 0600), made by "
    "agentgate keygen with the log's origin as its name.",
)
def add_key(database: str, key_files: tuple[str, ...], new_key_file: str) -> None:
    """Introduce a new signing key and print the checkpoint that covers it.

    Appends a key record for the new key. Its checkpoint, and every later one
    written with both keys configured, is signed by both. Next, give every
    process that writes the log the new key too, then retire the old key
    with agentgate log retire-key.
    """
    with _reported_errors():
        new_signer = load_signer(new_key_file)
        with _open_log(database, key_files) as ledger:
            receipt = ledger.add_key(new_signer)
    click.echo(receipt.checkpoint, nl=False)
    click.echo(
        f"key {new_signer.verifier_key} added by entry {receipt.index}", err=True
    )


@log.command("retire-key")
@_database_option
@_active_keys_option
@click.option(
    "--old-key",
    "old_key_file",
    required=True,
    metavar="FILE",
    help="Verifier key file (NAME.pub) of the key to retire.",
)
def retire_key(database: str, key_files: tuple[str, ...], old_key_file: str) -> None:
    """Retire a signing key and print the checkpoint that covers the retirement.

    Appends a key record that retires the old key; from that checkpoint on,
    the old key signs nothing. --key must name a key that stays active, and
    processes still configured with only the old key can no longer append.
    """
    with _reported_errors():
        old_key = load_verifier_key(old_key_file)
        with _open_log(database, key_files) as ledger:
            receipt = ledger.retire_key(old_key)
    click.echo(receipt.checkpoint, nl=False)
    click.echo(f"key {old_key} retired by entry {receipt.index}", err=True)


@log.command()
@_database_option
def migrate(database: str) -> None:
    """Upgrade the log database to the schema this AgentGate uses.

    Back the database up first. The upgrade runs in one transaction. A
    database at the current schema is left as it is. A database with a
    newer schema is rejected (exit 1).
    """
    with _reported_errors():
        before, after = upgrade_database(database)
    if before == after:
        click.echo(f"schema already at revision {after}")
    else:
        click.echo(f"schema upgraded from revision {before or 'none'} to {after}")


@click.command()
@click.option(
    "--db",
    "database",
    required=True,
    metavar="PATH_OR_URL",
    help="SQLite file of the log (or a SQLAlchemy database URL); created if missing.",
)
@click.option(
    "--key",
    "key_files",
    required=True,
    multiple=True,
    metavar="FILE",
    help="Signer key file of the log (mode 0600); repeat for several keys.",
)
@click.option(
    "--origin",
    default=None,
    help="Origin of the log; must equal the key name (the default).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on; 0 picks a free port.",
)
@click.option(
    "--token-file",
    default=None,
    metavar="FILE",
    help="File holding the write token (mode 0600). Default: the "
    "AGENTGATE_WRITE_TOKEN environment variable.",
)
@click.option(
    "--max-body-bytes",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(1, 1 << 20),
    help="Largest entry accepted, in bytes. At most 65535 keeps every entry "
    "in the tile entry bundles.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Level of the server's log messages (written to standard error).",
)
def serve(
    database: str,
    key_files: tuple[str, ...],
    origin: str | None,
    host: str,
    port: int,
    token_file: str | None,
    max_body_bytes: int,
    log_level: str,
) -> None:
    """Serve the log over HTTP until interrupted.

    Appends (POST /v1/entries) need the write token as a bearer token; the
    checkpoint, proofs, entries and C2SP tlog-tiles paths are public. The
    endpoints are described in specs/http-api.md.
    """
    import gc
    import logging
    import os
    import socket

    try:
        import uvicorn

        from .server import (
            TOKEN_ENV_VAR,
            LogService,
            ServerSettings,
            create_app,
            load_write_token,
        )
    except ImportError as err:
        raise CommandError(
            f"agentgate serve needs the server extra, but {err.name} is not "
            "installed; run: pip install 'agentgate-runtime[server]'",
            2,
        ) from err

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with _reported_errors():
        signers = [load_signer(path) for path in key_files]
        if token_file is not None:
            token = load_write_token(token_file)
        elif os.environ.get(TOKEN_ENV_VAR):
            token = os.environ[TOKEN_ENV_VAR]
        else:
            raise CommandError(
                f"no write token: pass --token-file FILE (mode 0600) or set "
                f"{TOKEN_ENV_VAR}",
                2,
            )
        settings = ServerSettings(
            database=database,
            signers=signers,
            write_token=token,
            origin=origin,
            max_body_bytes=max_body_bytes,
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family)
    except OSError as err:
        raise CommandError(
            f"cannot listen on {host} port {port}: {err.strerror}; choose another "
            "--host or --port",
            2,
        ) from err

    service = LogService(settings)
    try:
        with _reported_errors():
            service.start()
        address, bound_port = listener.getsockname()[:2]
        display_host = f"[{address}]" if family == socket.AF_INET6 else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            click.echo(
                f"warning: listening on {host} without TLS, so the write token "
                "crosses the network in clear text; put a TLS proxy in front",
                err=True,
            )
        click.echo(
            f"serving log {service.ledger.origin} on "
            f"http://{display_host}:{bound_port}",
            err=True,
        )
        config = uvicorn.Config(
            create_app(service),
            log_level=log_level,
            access_log=False,
            server_header=False,
        )
        config.load()
        # Everything loaded so far lives as long as the server. Freezing it
        # keeps the garbage collector's full passes from walking it: they
        # took 40 to 90 ms each and set the p99 latency of appends.
        gc.freeze()
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        service.stop()
        listener.close()
