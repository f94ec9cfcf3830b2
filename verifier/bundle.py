"""Regulator bundles: a period of a log, checked offline with the log's key.

A bundle is a directory, or a ZIP archive of the same files, laid out as
``specs/bundle.md`` defines:

    manifest.json                         origin, period, file digests
    checkpoints/<size>.checkpoint         signed checkpoints (with cosignatures)
    consistency/<first>-<second>.proof    proofs between consecutive checkpoints
    receipts/<index>.tlog-proof           receipts of selected records
    openings/<record id>.<argument>.json  disclosed commitment openings

``verify_bundle`` checks every file and returns the list of problems; an
empty list means the bundle verified.
"""

import hashlib
import hmac
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from verifier._time import parse_time
from verifier.checkpoint import Checkpoint, open_checkpoint
from verifier.errors import (
    MalformedInput,
    OriginMismatch,
    Unavailable,
    VerificationError,
)
from verifier.jcs import parse_strict
from verifier.merkle import parse_proof_text, verify_consistency
from verifier.note import VerifierKey
from verifier.opening import parse_opening, verify_opening
from verifier.receipt import VerifiedReceipt, verify_receipt
from verifier.witness_policy import WitnessPolicy

MANIFEST = "manifest.json"
BUNDLE_TYPE = "agentgate.bundle"
# A bundle contains text files of a few kilobytes each; an archive that expands
# beyond this is refused before it fills memory.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024

_MANIFEST_FIELDS = {"type", "version", "origin", "since", "until", "files"}
_CHECKPOINT = re.compile(r"checkpoints/([1-9][0-9]{0,18})\.checkpoint")
_PROOF = re.compile(r"consistency/([1-9][0-9]{0,18})-([1-9][0-9]{0,18})\.proof")
_RECEIPT = re.compile(r"receipts/(0|[1-9][0-9]{0,18})\.tlog-proof")
_OPENING = re.compile(r"openings/([a-z]-[0-9a-f]{32})\.([^/]+)\.json")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class BundleReport:
    """The result of ``verify_bundle``: the counts it checked and every problem."""

    origin: str = ""
    checkpoints: list[int] = field(default_factory=list)
    proofs: int = 0
    receipts: int = 0
    openings: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Files:
    """The files of a bundle, from a directory or a ZIP archive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._contents: dict[str, bytes] = {}
        if path.is_dir():
            total = 0
            for file in sorted(path.rglob("*")):
                if file.is_symlink():
                    raise MalformedInput(f"bundle {path}: {file} is a symbolic link")
                if file.is_file():
                    name = file.relative_to(path).as_posix()
                    self._contents[name] = file.read_bytes()
                    total += len(self._contents[name])
                    _check_total(total, path)
        elif zipfile.is_zipfile(path):
            self._read_zip(path)
        elif path.exists():
            raise MalformedInput(
                f"bundle {path}: expected a directory or a ZIP archive"
            )
        else:
            raise Unavailable(f"bundle {path} does not exist")

    def _read_zip(self, path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            _check_total(sum(m.file_size for m in members), path)
            for member in members:
                name = member.filename
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts or "\\" in name:
                    raise MalformedInput(f"bundle {path}: unsafe member name {name!r}")
                if name in self._contents:
                    raise MalformedInput(
                        f"bundle {path}: member {name!r} appears twice"
                    )
                data = archive.read(member)
                if len(data) != member.file_size:
                    raise MalformedInput(f"bundle {path}: member {name!r} is damaged")
                self._contents[name] = data

    def names(self) -> list[str]:
        return sorted(self._contents)

    def read(self, name: str) -> bytes:
        return self._contents[name]


def verify_bundle(
    path: str | Path,
    keys: list[VerifierKey],
    policy: WitnessPolicy | None = None,
    now: int | None = None,
    origin: str | None = None,
) -> BundleReport:
    """Verify the bundle at ``path``; see ``specs/bundle.md`` for each step.

    Plan:

    1. the manifest: its format, and that the bundle contains exactly the files
       it lists, with their SHA-256 digests;
    2. every checkpoint: signed by the log's key, of the manifest's origin,
       its size in its file name, and meeting the witness policy if given;
    3. a consistency proof between every two consecutive checkpoints;
    4. every receipt: it verifies, its index is its file name, its
       checkpoint is one of the bundle's, and its record's time lies in the
       manifest's period;
    5. every opening: its record is one a receipt proves, and the value and
       salt recompute the sealed commitment.

    ``origin``, when given, must be the manifest's origin. ``now`` (POSIX
    seconds) bounds cosignature timestamps. Raises ``VerificationError``
    only when the bundle cannot be read at all
    (``Unavailable``, or ``MalformedInput`` for an unusable archive or
    manifest); every other problem is listed in the report.
    """
    report = BundleReport()
    files = _Files(Path(path))

    # 1. Manifest and file list.
    manifest = _read_manifest(files)
    if origin is not None and manifest["origin"] != origin:
        raise OriginMismatch(
            f"{MANIFEST}: expected origin {origin!r}, got {manifest['origin']!r}"
        )
    report.origin = manifest["origin"]
    since = parse_time(manifest["since"], "manifest since")
    until = parse_time(manifest["until"], "manifest until")
    listed = manifest["files"]
    present = set(files.names()) - {MANIFEST}
    for name in sorted(present - set(listed)):
        report.problems.append(f"{name}: the manifest does not list it")
    for name in sorted(set(listed) - present):
        report.problems.append(f"{name}: listed in the manifest but missing")
    for name in sorted(present & set(listed)):
        digest = hashlib.sha256(files.read(name)).hexdigest()
        if not hmac.compare_digest(digest, listed[name]):
            report.problems.append(
                f"{name}: SHA-256 is {digest}, but the manifest lists {listed[name]}"
            )
    names = sorted(present & set(listed))

    # 2. Checkpoints.
    checkpoints = _check_checkpoints(
        files, names, keys, manifest["origin"], policy, now, report
    )

    # 3. Consistency between consecutive checkpoints.
    _check_proofs(files, names, checkpoints, report)

    # 4. Receipts.
    records = _check_receipts(
        files, names, keys, manifest["origin"], checkpoints, since, until, report
    )

    # 5. Openings.
    for name in names:
        match = _OPENING.fullmatch(name)
        if match is None:
            continue
        report.openings += 1
        try:
            opening = parse_opening(files.read(name))
            if (opening.record, opening.argument) != match.groups():
                raise MalformedInput(
                    f"the file name names record {match.group(1)} argument "
                    f"{match.group(2)!r}, the opening record {opening.record} argument "
                    f"{opening.argument!r}"
                )
            record = records.get(opening.record)
            if record is None:
                raise MalformedInput(
                    f"record {opening.record} is proved by no receipt in the bundle"
                )
            verify_opening(opening, record.record)
        except VerificationError as err:
            report.problems.append(f"{name}: {type(err).__name__}: {err}")
    return report


def _read_manifest(files: _Files) -> dict:
    try:
        data = files.read(MANIFEST)
    except KeyError:
        raise MalformedInput(f"bundle {files.path}: no {MANIFEST}") from None
    manifest = parse_strict(data)
    if not isinstance(manifest, dict) or set(manifest) != _MANIFEST_FIELDS:
        found = (
            sorted(manifest) if isinstance(manifest, dict) else type(manifest).__name__
        )
        raise MalformedInput(
            f"{MANIFEST}: expected the members {sorted(_MANIFEST_FIELDS)}, got {found}"
        )
    if manifest["type"] != BUNDLE_TYPE or manifest["version"] != 1:
        raise MalformedInput(
            f"{MANIFEST}: expected type {BUNDLE_TYPE!r} version 1, got "
            f"{manifest['type']!r} version {manifest['version']!r}"
        )
    if not isinstance(manifest["origin"], str) or not manifest["origin"]:
        raise MalformedInput(f"{MANIFEST}: origin must be a non-empty string")
    if parse_time(manifest["since"], "since") > parse_time(manifest["until"], "until"):
        raise MalformedInput(f"{MANIFEST}: since must not be after until")
    listed = manifest["files"]
    if not isinstance(listed, dict):
        raise MalformedInput(
            f"{MANIFEST}: files must map file names to SHA-256 digests"
        )
    for name, digest in listed.items():
        if not any(
            p.fullmatch(name) for p in (_CHECKPOINT, _PROOF, _RECEIPT, _OPENING)
        ):
            raise MalformedInput(f"{MANIFEST}: {name!r} is not a bundle file name")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise MalformedInput(
                f"{MANIFEST}: the digest of {name} is not 64 hex digits"
            )
    return manifest


def _check_checkpoints(
    files: _Files,
    names: list[str],
    keys: list[VerifierKey],
    origin: str,
    policy: WitnessPolicy | None,
    now: int | None,
    report: BundleReport,
) -> dict[int, Checkpoint]:
    checkpoints: dict[int, Checkpoint] = {}
    for name in names:
        match = _CHECKPOINT.fullmatch(name)
        if match is None:
            continue
        try:
            checkpoint, note = open_checkpoint(files.read(name), keys, origin)
            if checkpoint.size != int(match.group(1)):
                raise MalformedInput(
                    f"the checkpoint has tree size {checkpoint.size}, not the "
                    f"{match.group(1)} of its file name"
                )
            if policy is not None:
                policy.check(note, now)
        except VerificationError as err:
            report.problems.append(f"{name}: {type(err).__name__}: {err}")
            continue
        checkpoints[checkpoint.size] = checkpoint
    if not checkpoints:
        report.problems.append("the bundle holds no valid checkpoint")
    report.checkpoints = sorted(checkpoints)
    return checkpoints


def _check_proofs(
    files: _Files,
    names: list[str],
    checkpoints: dict[int, Checkpoint],
    report: BundleReport,
) -> None:
    sizes = sorted(checkpoints)
    pairs = zip(sizes, sizes[1:], strict=False)
    expected = {f"consistency/{a}-{b}.proof": (a, b) for a, b in pairs}
    for name in names:
        if _PROOF.fullmatch(name) and name not in expected:
            report.problems.append(
                f"{name}: connects no two consecutive checkpoints of the bundle"
            )
    for name, (first, second) in expected.items():
        if name not in names:
            report.problems.append(
                f"{name}: missing, so the checkpoints of sizes {first} and {second} "
                "are not shown to be consistent"
            )
            continue
        report.proofs += 1
        try:
            proof = parse_proof_text(files.read(name))
            verify_consistency(
                first, second, proof, checkpoints[first].root, checkpoints[second].root
            )
        except VerificationError as err:
            report.problems.append(f"{name}: {type(err).__name__}: {err}")


def _check_receipts(
    files: _Files,
    names: list[str],
    keys: list[VerifierKey],
    origin: str,
    checkpoints: dict[int, Checkpoint],
    since: datetime,
    until: datetime,
    report: BundleReport,
) -> dict[str, VerifiedReceipt]:
    records: dict[str, VerifiedReceipt] = {}
    for name in names:
        match = _RECEIPT.fullmatch(name)
        if match is None:
            continue
        report.receipts += 1
        try:
            receipt = verify_receipt(files.read(name), keys, origin)
            if receipt.index != int(match.group(1)):
                raise MalformedInput(
                    f"the receipt proves index {receipt.index}, not the "
                    f"{match.group(1)} of its file name"
                )
            anchor = checkpoints.get(receipt.checkpoint.size)
            if anchor is None or not hmac.compare_digest(
                anchor.root, receipt.checkpoint.root
            ):
                raise MalformedInput(
                    f"its checkpoint of tree size {receipt.checkpoint.size} is not "
                    "one of the bundle's checkpoints"
                )
            moment = parse_time(receipt.record.get("time"), "record time")
            if not since <= moment <= until:
                raise MalformedInput(
                    f"record time {receipt.record['time']} lies outside the bundle's "
                    "period"
                )
        except VerificationError as err:
            report.problems.append(f"{name}: {type(err).__name__}: {err}")
            continue
        record_id = receipt.record.get("id")
        if isinstance(record_id, str):
            records[record_id] = receipt
    return records


def _check_total(total: int, path: Path) -> None:
    if total > MAX_BUNDLE_BYTES:
        raise MalformedInput(
            f"bundle {path}: more than {MAX_BUNDLE_BYTES} bytes of files, which no "
            "bundle of text files needs"
        )
