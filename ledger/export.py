"""Regulator bundles: a period of the log, checked offline with the log's key.

``build_bundle`` collects the files of specs/bundle.md for the records whose
``time`` lies in ``[since, until]``, and ``write_bundle`` writes them with
their manifest as a directory or a ZIP archive::

    manifest.json                         origin, period, SHA-256 of each file
    checkpoints/<size>.checkpoint         checkpoints, with their cosignatures
    consistency/<first>-<second>.proof    proofs between consecutive checkpoints
    receipts/<index>.tlog-proof           receipts of the selected records
    openings/<record id>.<argument>.json  the openings the operator discloses

The checkpoints are those stored for the trees that end inside the period:
from the first tree that contains a record of the period to the first tree
that contains all of them, the anchor. With a witness policy, only checkpoints
that meet it are taken. Every receipt is proved again against the anchor,
so that all of them name one checkpoint of the bundle.

Openings come in as data (``Disclosure``): the gate keeps the values and
salts in its vault, and the ledger does not read it. Each opening is
checked against its record before it is written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .canonical import canonical_bytes
from .errors import InvalidRequest, StorageError
from .log import Ledger
from .note import parse_own_checkpoint
from .proofs import format_proof_text
from .receipt import Receipt
from .storage import Store, checkpoints
from .cosignatures import WitnessPolicy, read_cosignatures

__all__ = [
    "BUNDLE_TYPE",
    "Bundle",
    "Disclosure",
    "build_bundle",
    "format_time",
    "write_bundle",
]

logger = logging.getLogger(__name__)

BUNDLE_TYPE = "agentgate.bundle"
MANIFEST = "manifest.json"
# Verifiers refuse a bundle with more bytes of files than this.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
# Entries read from the database per query while scanning for records.
_SCAN_CHUNK = 1000
# Record ids as the gate writes them; the bundle's file names need this form.
_RECORD_ID = re.compile(r"[a-z]-[0-9a-f]{32}")


@dataclass(frozen=True)
class Disclosure:
    """A commitment opening to disclose: the value and salt behind a commitment."""

    record: str
    argument: str
    commitment: str
    value: Any
    salt: bytes


@dataclass(frozen=True)
class Bundle:
    """The files of a bundle, without the manifest, and what they cover."""

    origin: str
    since: datetime
    until: datetime
    files: dict[str, bytes]
    checkpoint_sizes: list[int]
    receipt_indexes: list[int]

    def manifest(self) -> bytes:
        """Return ``manifest.json``: origin, period and each file's SHA-256."""
        document = {
            "type": BUNDLE_TYPE,
            "version": 1,
            "origin": self.origin,
            "since": format_time(self.since),
            "until": format_time(self.until),
            "files": {
                name: hashlib.sha256(data).hexdigest()
                for name, data in sorted(self.files.items())
            },
        }
        return canonical_bytes(document) + b"\n"


@dataclass(frozen=True)
class _Record:
    index: int
    id: str | None
    time: datetime | None
    entry: bytes
    body: dict[str, Any]


def format_time(moment: datetime) -> str:
    """Return ``moment`` in RFC 3339 UTC, such as ``2026-12-04T09:00:00Z``.

    Microseconds are kept when there are any.
    """
    if moment.tzinfo is None:
        raise InvalidRequest(f"time {moment!r} has no time zone; pass an aware time")
    moment = moment.astimezone(timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_bundle(
    ledger: Ledger,
    store: Store,
    since: datetime,
    until: datetime,
    *,
    record_ids: Sequence[str] = (),
    disclosures: Sequence[Disclosure] = (),
    policy: WitnessPolicy | None = None,
) -> Bundle:
    """Collect the bundle of the records whose ``time`` lies in ``[since, until]``.

    Plan:

    1. read every record and keep those of the period; select the records
       named in ``record_ids`` and ``disclosures``, or all of the period
       when none is named;
    2. choose the checkpoints: the stored ones from the first tree that
       contains a record of the period up to the anchor, the first that
       contains them all, keeping only those that meet ``policy`` when one is given;
    3. prove each pair of consecutive checkpoints consistent;
    4. prove each selected record against the anchor;
    5. check each disclosure against its record and add its opening.

    ``store`` is a second handle on the log's database, for the checkpoint
    list. Raises ``InvalidRequest`` when the period contains no record, a named
    record is missing or outside the period, no checkpoint covers the
    period, or a disclosure does not open its record's commitment.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment.tzinfo is None:
            raise InvalidRequest(f"{name} {moment!r} has no time zone")
    if since > until:
        raise InvalidRequest(
            f"since {format_time(since)} is after until {format_time(until)}"
        )

    # Step 1.
    ledger.refresh()
    period, named = _scan(ledger, since, until, _named_ids(record_ids, disclosures))
    if not period:
        raise InvalidRequest(
            f"log {ledger.origin!r} contains no record with a time from "
            f"{format_time(since)} to {format_time(until)}; choose another period"
        )
    selected = _select(period, named, record_ids, disclosures, since, until)
    first, last = period[0].index, period[-1].index

    # Step 2.
    chosen = _choose_checkpoints(ledger, store, first, last, policy)
    anchor_size, anchor_note = chosen[-1]
    files: dict[str, bytes] = {}
    for size, note in chosen:
        files[f"checkpoints/{size}.checkpoint"] = note.encode("utf-8")

    # Step 3.
    for (older, _), (newer, _) in zip(chosen, chosen[1:]):
        proof = ledger.consistency_proof(older, newer)
        files[f"consistency/{older}-{newer}.proof"] = format_proof_text(
            proof
        ).encode("ascii")

    # Step 4.
    for record in selected:
        proof = ledger.inclusion_proof(record.index, anchor_size)
        receipt = Receipt.build(record.entry, record.index, proof, anchor_note)
        files[f"receipts/{record.index}.tlog-proof"] = receipt.text.encode("utf-8")

    # Step 5.
    by_id = {record.id: record for record in selected}
    for disclosure in disclosures:
        name, data = _opening_file(disclosure, by_id[disclosure.record])
        files[name] = data

    total = sum(len(data) for data in files.values())
    if total > MAX_BUNDLE_BYTES:
        raise InvalidRequest(
            f"the bundle would contain {total} bytes of files, more than the "
            f"{MAX_BUNDLE_BYTES} that verifiers read; choose a shorter period or "
            "fewer records with --record"
        )
    logger.info(
        "bundle of %s: %d checkpoints (sizes %d to %d), %d receipts, %d openings",
        ledger.origin,
        len(chosen),
        chosen[0][0],
        anchor_size,
        len(selected),
        len(disclosures),
    )
    return Bundle(
        origin=ledger.origin,
        since=since,
        until=until,
        files=files,
        checkpoint_sizes=[size for size, _ in chosen],
        receipt_indexes=[record.index for record in selected],
    )


def write_bundle(bundle: Bundle, path: str | os.PathLike[str]) -> Path:
    """Write ``bundle`` to ``path``: a ZIP archive for ``*.zip``, else a directory.

    The bundle is written under a temporary name next to ``path`` and renamed
    when complete, so ``path`` never contains half a bundle. Files are readable
    by their owner only, because openings disclose argument values. Raises
    ``InvalidRequest`` when ``path`` exists.
    """
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise InvalidRequest(f"{target} already exists; choose a new --out path")
    contents = dict(bundle.files)
    contents[MANIFEST] = bundle.manifest()
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)

    if target.suffix.lower() == ".zip":
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=parent
        )
        try:
            with os.fdopen(handle, "wb") as stream:
                with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
                    for name in sorted(contents):
                        archive.writestr(name, contents[name])
                stream.flush()
                os.fsync(stream.fileno())
            os.rename(temporary, target)
        except BaseException:
            _remove(Path(temporary))
            raise
        return target

    temporary_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        for name in sorted(contents):
            file_path = temporary_dir / name
            file_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(file_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(contents[name])
                stream.flush()
                os.fsync(stream.fileno())
        os.rename(temporary_dir, target)
    except BaseException:
        _remove(temporary_dir)
        raise
    return target


def _named_ids(
    record_ids: Iterable[str], disclosures: Iterable[Disclosure]
) -> set[str]:
    named = set(record_ids) | {d.record for d in disclosures}
    for record_id in sorted(named):
        if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
            raise InvalidRequest(
                f"record id {record_id!r} is invalid; expected a letter, '-' and 32 "
                "lowercase hex digits, like d-d6f8c42b43a4fc5eaa596ef6f6890ca9"
            )
    return named


def _scan(
    ledger: Ledger, since: datetime, until: datetime, named: set[str]
) -> tuple[list[_Record], dict[str, list[_Record]]]:
    """Return the records of the period in leaf order, and the named ones by id."""
    period: list[_Record] = []
    found: dict[str, list[_Record]] = {}
    for record in _records(ledger):
        if record.time is not None and since <= record.time <= until:
            period.append(record)
        if record.id in named:
            found.setdefault(record.id, []).append(record)
    return period, found


def _records(ledger: Ledger) -> Iterator[_Record]:
    size = ledger.size
    for start in range(0, size, _SCAN_CHUNK):
        entries = ledger.entries(start, min(start + _SCAN_CHUNK, size))
        for index, entry in enumerate(entries, start=start):
            try:
                body = json.loads(entry)
            except ValueError as err:
                raise StorageError(
                    f"entry {index} of log {ledger.origin!r} is not JSON; the "
                    "database is damaged"
                ) from err
            record_id = body.get("id")
            yield _Record(
                index=index,
                id=record_id if isinstance(record_id, str) else None,
                time=_record_time(body.get("time")),
                entry=entry,
                body=body,
            )


def _record_time(value: object) -> datetime | None:
    """Return a record's RFC 3339 UTC time, or None when it has none."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(timezone.utc)
    except ValueError:
        return None


def _select(
    period: list[_Record],
    found: dict[str, list[_Record]],
    record_ids: Sequence[str],
    disclosures: Sequence[Disclosure],
    since: datetime,
    until: datetime,
) -> list[_Record]:
    """Return the records whose receipts the bundle carries, in leaf order."""
    if not record_ids:
        in_period = {record.id for record in period}
        for disclosure in disclosures:
            if disclosure.record not in in_period:
                raise InvalidRequest(
                    f"disclosed record {disclosure.record} has no time in the "
                    f"period {format_time(since)} to {format_time(until)}"
                )
        return period

    selected = []
    for record_id in sorted(set(record_ids) | {d.record for d in disclosures}):
        matches = found.get(record_id, [])
        if not matches:
            raise InvalidRequest(
                f"record {record_id} is not in the log; check the id"
            )
        if len(matches) > 1:
            indexes = ", ".join(str(record.index) for record in matches)
            raise InvalidRequest(
                f"record id {record_id} appears at leaves {indexes}; a record id "
                "must be unique, so audit the log"
            )
        record = matches[0]
        if record.time is None or not since <= record.time <= until:
            recorded_time = record.body.get("time")
            raise InvalidRequest(
                f"record {record_id} (leaf {record.index}) has time {recorded_time!r}, "
                f"outside the period {format_time(since)} to {format_time(until)}; "
                "widen --since and --until or leave the record out"
            )
        selected.append(record)
    return sorted(selected, key=lambda record: record.index)


def _choose_checkpoints(
    ledger: Ledger,
    store: Store,
    first: int,
    last: int,
    policy: WitnessPolicy | None,
) -> list[tuple[int, str]]:
    """Return ``(size, note)`` of the bundle's checkpoints, the anchor last."""
    query = (
        select(checkpoints.c.size, checkpoints.c.note)
        .where(checkpoints.c.size > first)
        .order_by(checkpoints.c.size)
    )
    with store.read() as reads:
        rows = [(row.size, row.note) for row in reads.connection.execute(query)]
    if policy is not None:
        rows = [
            (size, note)
            for size, note in rows
            if policy.count(read_cosignatures(note, policy.keys)) >= policy.quorum
        ]

    chosen = []
    for size, note in rows:
        chosen.append((size, note))
        if size > last:
            return chosen
    if policy is None:
        # The latest checkpoint may not be stored yet; a writer stores it later.
        note = ledger.latest_checkpoint()
        size = parse_own_checkpoint(note).size
        if size > last:
            return chosen + [(size, note)]
    needed = "that meets the witness policy " if policy is not None else ""
    fix = (
        "publish the log with its witnesses (agentgate publish) first"
        if policy is not None
        else "open the log with its key to sign one (agentgate log checkpoint --key)"
    )
    raise InvalidRequest(
        f"no checkpoint {needed}of log {ledger.origin!r} covers leaf {last}, the "
        f"last record of the period; {fix}"
    )


def _opening_file(disclosure: Disclosure, record: _Record) -> tuple[str, bytes]:
    """Return the file name and JSON of an opening that ``record`` seals.

    Raises ``InvalidRequest`` unless the record contains the commitment under
    the argument's name and the value and salt recompute it.
    """
    argument = disclosure.argument
    if (
        not isinstance(argument, str)
        or not argument
        or any(c in argument for c in "/\\") or not argument.isprintable()
    ):
        raise InvalidRequest(
            f"argument name {argument!r} of record {disclosure.record} cannot be a "
            "bundle file name; it must be printable and contain no '/' or '\\'"
        )
    body = record.body
    arguments = body.get("arguments")
    if isinstance(arguments, dict) and argument in arguments:
        sealed = arguments[argument]
    elif argument in ("result", "arguments"):
        sealed = body.get(argument)
    else:
        sealed = None
    if not isinstance(sealed, str) or not hmac.compare_digest(
        sealed, disclosure.commitment
    ):
        raise InvalidRequest(
            f"record {disclosure.record} seals {sealed!r} under {argument!r}, not "
            f"the commitment {disclosure.commitment} that the vault opens; check "
            "the record id and argument name"
        )
    computed = hashlib.sha256(
        disclosure.salt + canonical_bytes(disclosure.value)
    ).hexdigest()
    if not hmac.compare_digest(computed, disclosure.commitment):
        raise InvalidRequest(
            f"the vault's value and salt for {argument!r} of record "
            f"{disclosure.record} give {computed}, not the sealed commitment "
            f"{disclosure.commitment}; the vault is damaged"
        )
    document = {
        "commitment": disclosure.commitment,
        "record": disclosure.record,
        "argument": argument,
        "value": disclosure.value,
        "salt": disclosure.salt.hex(),
    }
    name = f"openings/{disclosure.record}.{argument}.json"
    return name, canonical_bytes(document) + b"\n"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
