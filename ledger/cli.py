"""``agentgate keygen``, ``agentgate log ...`` and ``agentgate serve``.

Key files, log operations, and the log served over HTTP (``ledger.server``,
which needs the ``server`` extra).

Exit codes: 0 on success, 2 for bad usage or bad input (a malformed entry,
an unreadable key file, sizes the log does not have), 1 when the database
fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from .errors import LedgerError, StorageError
from .keys import Signer, load_signer, load_verifier_key, write_key_pair
from .log import Ledger
from .migrations import upgrade_database
from .proofs import format_proof_text
from .storage import Store

__all__ = ["export", "keygen", "log", "publish", "serve"]


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


# -- publish and export ---------------------------------------------------------

_signer_keys_option = click.option(
    "--key",
    "key_files",
    multiple=True,
    metavar="FILE",
    help="Signer key file; needed only if the latest checkpoint was never "
    "stored. Repeat it to sign with several keys.",
)
_witness_policy_option = click.option(
    "--witness-policy",
    "policy_file",
    default=None,
    metavar="FILE",
    help="Witness policy (specs/witness.md): witness keys and the quorum of "
    "them that must have cosigned each checkpoint.",
)


@contextmanager
def _log_and_store(
    database: str, key_files: Sequence[str]
) -> Iterator[tuple[Ledger, Store]]:
    """Open an existing log and a second handle on its database."""
    with _open_log(database, key_files) as ledger:
        store = Store.open(database)
        try:
            yield ledger, store
        finally:
            store.close()


def _parse_witness_urls(values: Sequence[str]) -> dict[str, str]:
    urls: dict[str, str] = {}
    for value in values:
        label, equals, url = value.partition("=")
        if not equals or not label or not url:
            raise click.BadParameter(
                f"expected LABEL=URL, such as w1=http://127.0.0.1:7380, got {value!r}",
                param_hint="--witness-url",
            )
        if label in urls:
            raise click.BadParameter(
                f"witness {label!r} is given twice", param_hint="--witness-url"
            )
        urls[label] = url
    return urls


@click.command()
@_database_option
@click.option(
    "--out",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to publish into, created if missing; serve it as static files.",
)
@_signer_keys_option
@_witness_policy_option
@click.option(
    "--witness-url",
    "witness_urls",
    multiple=True,
    metavar="LABEL=URL",
    help="Where the policy's witness LABEL serves add-checkpoint, such as "
    "w1=http://127.0.0.1:7380. Repeat it for every witness of the policy.",
)
@click.option(
    "--witness-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to wait for each request to a witness.",
)
def publish(
    database: str,
    directory: Path,
    key_files: tuple[str, ...],
    policy_file: str | None,
    witness_urls: tuple[str, ...],
    witness_timeout: float,
) -> None:
    """Publish the log as C2SP tlog-tiles files in --out and print the checkpoint.

    Writes the hash tiles, entry bundles and checkpoint that a tile reader
    (agentgate monitor, agentgate audit) reads from a static web host or an
    object store. Each run writes only new or grown tiles, and the
    checkpoint last. With --witness-policy, the checkpoint is first sent to
    every witness of the policy. It is published, with their cosignatures,
    only when the policy's quorum cosigned it, and the command exits 1
    otherwise.
    """
    from .cosignatures import load_witness_policy
    from .publish import publish as publish_log
    from .witnessing import witnesses_for

    urls = _parse_witness_urls(witness_urls)
    if urls and policy_file is None:
        raise click.UsageError("--witness-url needs --witness-policy")
    with _reported_errors():
        policy = witnesses = None
        if policy_file is not None:
            policy = load_witness_policy(policy_file)
            witnesses = witnesses_for(policy, urls)
        with _log_and_store(database, key_files) as (ledger, store):
            result = publish_log(
                ledger,
                store,
                directory,
                witnesses=witnesses or (),
                policy=policy,
                timeout=witness_timeout,
            )

    for outcome in result.collection.outcomes if result.collection else ():
        label = outcome.witness.label
        if outcome.cosignature is not None:
            click.echo(f"witness {label}: cosigned size {result.size}", err=True)
        else:
            click.echo(f"witness {label}: {outcome.problem}", err=True)
    if not result.published:
        collection = result.collection
        raise CommandError(
            f"not published: the witness policy needs cosignatures by "
            f"{collection.quorum} distinct witnesses, and {collection.counted} "
            f"verified on the checkpoint of size {result.size}; {directory} still "
            f"contains size {result.previous_size}",
            1,
        )
    for index in result.skipped_bundles:
        click.echo(
            f"warning: entry bundle {index} not published, because it contains an "
            "entry over 65535 bytes; readers get it from agentgate serve's "
            "/v1/entries",
            err=True,
        )
    click.echo(
        f"published size {result.size} to {directory} ({result.files_written} files "
        f"written, from size {result.previous_size})",
        err=True,
    )
    click.echo(result.note, nl=False)


# RFC 3339 section 5.6 date-time; datetime.fromisoformat alone also takes
# ISO 8601 forms such as 20261204T090000Z that RFC 3339 does not allow.
_RFC3339_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _parse_time_option(value: str, option: str):
    from datetime import datetime, timezone

    moment = None
    if _RFC3339_TIME.fullmatch(value):
        try:
            moment = datetime.fromisoformat(value.upper().replace(" ", "T"))
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(
            f"expected an RFC 3339 time with a time zone, such as "
            f"2026-12-04T09:00:00Z, got {value!r}",
            param_hint=option,
        )
    return moment.astimezone(timezone.utc)


def _parse_disclosures(values: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        record_id, colon, argument = value.partition(":")
        if not colon or not record_id or not argument:
            raise click.BadParameter(
                f"expected RECORD:ARGUMENT, such as "
                f"d-d6f8c42b43a4fc5eaa596ef6f6890ca9:amount, got {value!r}",
                param_hint="--disclose",
            )
        pairs.append((record_id, argument))
    return pairs


def _read_disclosures(vault_path: Path, pairs: Sequence[tuple[str, str]]) -> list:
    """Read the openings of ``pairs`` from the gate's vault."""
    # The vault belongs to the gate (enforcement); only this operator command
    # reads it, so that ledger.export takes openings as data.
    from enforcement.errors import ConfigError
    from enforcement.vault import ArgumentVault

    from .export import Disclosure

    try:
        vault = ArgumentVault(str(vault_path))
    except ConfigError as err:
        raise CommandError(str(err), 2) from err
    disclosures = []
    try:
        for record_id, argument in pairs:
            try:
                commitment = vault.find(record_id, argument)
                name, salt, value = vault.open(commitment)
            except KeyError as err:
                raise CommandError(
                    f"{vault_path} contains no opening of argument {argument!r} of "
                    f"record {record_id}; check the record id and argument name",
                    1,
                ) from err
            disclosures.append(Disclosure(record_id, name, commitment, value, salt))
    finally:
        vault.close()
    return disclosures


@click.command()
@_database_option
@click.option(
    "--vault",
    "vault_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The gate's vault (its private SQLite file), which contains the values "
    "and salts that --disclose opens.",
)
@click.option(
    "--since",
    required=True,
    metavar="TIME",
    help="Start of the period (RFC 3339 with a time zone, e.g. 2026-12-04T09:00:00Z).",
)
@click.option(
    "--until",
    required=True,
    metavar="TIME",
    help="End of the period, included (RFC 3339 with a time zone).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Bundle to create: a ZIP archive if the name ends in .zip, else a "
    "directory. It must not exist.",
)
@click.option(
    "--record",
    "record_ids",
    multiple=True,
    metavar="ID",
    help="Record whose receipt the bundle carries; repeat it. Default: every "
    "record whose time lies in the period.",
)
@click.option(
    "--disclose",
    "disclose_values",
    multiple=True,
    metavar="RECORD:ARGUMENT",
    help="Commitment opening to read from --vault and disclose; repeat it.",
)
@_witness_policy_option
@_signer_keys_option
def export(
    database: str,
    vault_path: Path | None,
    since: str,
    until: str,
    out_path: Path,
    record_ids: tuple[str, ...],
    disclose_values: tuple[str, ...],
    policy_file: str | None,
    key_files: tuple[str, ...],
) -> None:
    """Write a regulator bundle of the records of a period (specs/bundle.md).

    The bundle contains the checkpoints of the period with their cosignatures,
    the consistency proofs between them, a receipt of each selected record
    proved against the last checkpoint, and the disclosed openings.
    agentgate verify bundle checks it offline with the log's verifier key.
    With --witness-policy, only checkpoints that meet the policy go in.
    """
    from .cosignatures import load_witness_policy
    from .export import build_bundle, write_bundle

    start = _parse_time_option(since, "--since")
    end = _parse_time_option(until, "--until")
    if start > end:
        raise click.BadParameter(
            f"--since {since} is after --until {until}", param_hint="--since"
        )
    pairs = _parse_disclosures(disclose_values)
    if pairs and vault_path is None:
        raise click.UsageError("--disclose needs --vault, the gate's vault file")
    if out_path.exists():
        raise click.BadParameter(
            f"{out_path} already exists; choose a new path", param_hint="--out"
        )

    disclosures = _read_disclosures(vault_path, pairs) if pairs else []
    with _reported_errors():
        policy = load_witness_policy(policy_file) if policy_file else None
        with _log_and_store(database, key_files) as (ledger, store):
            bundle = build_bundle(
                ledger,
                store,
                start,
                end,
                record_ids=record_ids,
                disclosures=disclosures,
                policy=policy,
            )
        write_bundle(bundle, out_path)
    sizes = bundle.checkpoint_sizes
    click.echo(
        f"wrote {out_path}: {len(sizes)} checkpoints (tree sizes {sizes[0]} to "
        f"{sizes[-1]}), {len(bundle.receipt_indexes)} receipts, "
        f"{len(disclosures)} openings",
        err=True,
    )
