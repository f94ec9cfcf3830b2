"""The ``agentgate verify`` commands: check receipts, proofs and bundles offline.

Exit codes: 0 when everything verified, 1 when any receipt, checkpoint or
proof failed verification (malformed content included), 2 for bad usage such
as an unreadable file or an invalid verifier key.
"""

import json
import time
from pathlib import Path

import click

from verifier._encoding import encode_base64
from verifier.bundle import verify_bundle
from verifier.checkpoint import verify_checkpoint
from verifier.errors import MalformedInput, VerificationError
from verifier.merkle import parse_proof_text, verify_consistency
from verifier.note import VerifierKey, parse_verifier_key
from verifier.opening import parse_opening, verify_opening
from verifier.receipt import VerifiedReceipt, verify_receipt
from verifier.witness_policy import load_witness_policy

_EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class _UsageError(click.ClickException):
    """A usage error found after click parsed the arguments."""

    exit_code = 2


def _key_options(command):
    # click lists options in the order of the decorators, which apply from the
    # bottom up, so the last one applied here is listed first.
    command = click.option(
        "--origin",
        default=None,
        help="Origin the checkpoint must name, such as agentgate.example/demo.",
    )(command)
    command = click.option(
        "--key-file",
        "key_files",
        multiple=True,
        type=_EXISTING_FILE,
        help="File with one verifier key per line, such as NAME.pub. Repeatable.",
    )(command)
    return click.option(
        "--key",
        "keys",
        multiple=True,
        metavar="VKEY",
        help="Verifier key NAME+KEYID+BASE64 of the log. Repeat it during a key "
        "rotation; a note verifies when any of the keys signed it.",
    )(command)


@click.group(name="verify")
def verify():
    """Verify receipts, proofs, openings and bundles offline with the log's key."""


@verify.command(name="receipt")
@click.argument("files", nargs=-1, required=True, type=_EXISTING_FILE)
@_key_options
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line."
)
def verify_receipt_command(files, keys, key_files, origin, as_json):
    """Verify one or more .tlog-proof receipt FILES.

    Prints one line per file and a summary. Exits 0 when every receipt
    verified, 1 when any failed, 2 for bad usage.
    """
    verifier_keys = load_keys(keys, key_files)
    contents = [(path, _read(path)) for path in files]

    failed = 0
    for path, data in contents:
        try:
            result = verify_receipt(data, verifier_keys, origin)
        except VerificationError as err:
            failed += 1
            _echo_failure(path, err, as_json)
        else:
            _echo_receipt(path, result, as_json)

    passed = len(contents) - failed
    if as_json:
        summary = {"total": len(contents), "passed": passed, "failed": failed}
        click.echo(json.dumps({"summary": summary}, sort_keys=True))
    else:
        click.echo(f"{passed} of {len(contents)} receipts verified, {failed} failed")
    click.get_current_context().exit(1 if failed else 0)


@verify.command(name="consistency")
@click.argument("old_checkpoint", type=_EXISTING_FILE)
@click.argument("new_checkpoint", type=_EXISTING_FILE)
@click.argument("proof_file", type=_EXISTING_FILE)
@_key_options
def verify_consistency_command(
    old_checkpoint, new_checkpoint, proof_file, keys, key_files, origin
):
    """Verify a consistency proof between two checkpoints.

    Checks that NEW_CHECKPOINT extends OLD_CHECKPOINT, using the proof in
    PROOF_FILE. Both checkpoints must be signed by a given key and name the same origin
    (the --origin value when given). PROOF_FILE contains one base64 hash per
    line. Exits 0 when the proof verifies, 1 when it does not, 2 for bad usage.
    """
    verifier_keys = load_keys(keys, key_files)
    old_data = _read(old_checkpoint)
    new_data = _read(new_checkpoint)
    proof_data = _read(proof_file)

    current = old_checkpoint
    try:
        old = verify_checkpoint(old_data, verifier_keys, origin)
        current = new_checkpoint
        new = verify_checkpoint(new_data, verifier_keys, old.origin)
        current = proof_file
        proof = parse_proof_text(proof_data)
        verify_consistency(old.size, new.size, proof, old.root, new.root)
    except VerificationError as err:
        _echo_failure(current, err, as_json=False)
        click.get_current_context().exit(1)

    click.echo(
        f"PASS {new_checkpoint}: {old.origin} at tree size {new.size} extends "
        f"tree size {old.size} of {old_checkpoint}"
    )


def load_keys(
    keys: tuple[str, ...], key_files: tuple[Path, ...] = ()
) -> list[VerifierKey]:
    """Parse ``--key`` values and read ``--key-file`` files; exit 2 on bad input.

    A ``--key`` value that names an existing file, such as ``LOG.pub``, is
    read as a key file.
    """
    if not keys and not key_files:
        raise click.UsageError(
            "expected the log's verifier key: pass --key NAME+KEYID+BASE64 or "
            "--key-file NAME.pub"
        )

    parsed = []
    named_files = tuple(Path(text) for text in keys if _is_file(text))
    key_files = tuple(key_files) + named_files
    keys = tuple(text for text in keys if Path(text) not in named_files)
    for text in keys:
        try:
            parsed.append(parse_verifier_key(text.strip()))
        except MalformedInput as err:
            raise click.BadParameter(str(err), param_hint="--key") from None
    for path in key_files:
        data = _read(path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise click.BadParameter(
                f"{path}: expected a text file of verifier keys, got binary data",
                param_hint="--key-file",
            ) from None
        try:
            lines = [line.strip() for line in text.splitlines()]
            file_keys = [parse_verifier_key(line) for line in lines if line]
        except MalformedInput as err:
            raise click.BadParameter(
                f"{path}: {err}", param_hint="--key-file"
            ) from None
        if not file_keys:
            raise click.BadParameter(
                f"{path}: expected one verifier key per line, found none",
                param_hint="--key-file",
            )
        parsed.extend(file_keys)
    return parsed


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise _UsageError(f"cannot read {path}: {err.strerror or err}") from None


def _echo_failure(path: Path, err: VerificationError, as_json: bool) -> None:
    kind = type(err).__name__
    if as_json:
        line = {"file": str(path), "ok": False, "error": kind, "message": str(err)}
        click.echo(json.dumps(line, sort_keys=True))
    else:
        click.echo(f"FAIL {path}: {kind}: {err}")


def _echo_receipt(path: Path, result: VerifiedReceipt, as_json: bool) -> None:
    checkpoint = result.checkpoint
    if as_json:
        line = {
            "file": str(path),
            "ok": True,
            "index": result.index,
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": encode_base64(checkpoint.root),
            "leaf_hash": encode_base64(result.leaf_hash),
            "key_names": list(result.key_names),
            "record_type": result.record.get("type"),
        }
        click.echo(json.dumps(line, sort_keys=True))
        return

    record_type = result.record.get("type")
    kind = f" ({record_type} record)" if isinstance(record_type, str) else ""
    click.echo(
        f"PASS {path}: entry {result.index}{kind} of {checkpoint.origin} at tree "
        f"size {checkpoint.size}, signed by {', '.join(result.key_names)}"
    )


@verify.command(name="opening")
@click.argument("opening_file", type=_EXISTING_FILE)
@click.argument("receipt_file", type=_EXISTING_FILE)
@_key_options
def verify_opening_command(opening_file, receipt_file, keys, key_files, origin):
    """Check a disclosed argument against the sealed record in RECEIPT_FILE.

    OPENING_FILE is the JSON that `agentgate disclose` prints. The receipt must
    verify, its record must hold the commitment under the disclosed name, and
    the value and salt must recompute it.
    """
    verifier_keys = load_keys(keys, key_files)
    try:
        opening = parse_opening(_read(opening_file))
        verified = verify_receipt(_read(receipt_file), verifier_keys, origin=origin)
        location = verify_opening(opening, verified.record)
    except VerificationError as err:
        click.echo(f"FAIL {opening_file}: {type(err).__name__}: {err}")
        raise SystemExit(1) from None
    click.echo(
        f"PASS {opening_file}: {location} of record {opening.record} "
        f"(leaf {verified.index}) opens to the disclosed value"
    )


@verify.command(name="bundle")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_key_options
@click.option("--witness-policy", "policy_file", default=None, type=_EXISTING_FILE,
              help="Witness policy that every checkpoint of the bundle must meet.")
def verify_bundle_command(path, keys, key_files, origin, policy_file):
    """Verify a regulator bundle: a directory or ZIP archive (specs/bundle.md).

    Checks the manifest's file digests, every checkpoint's signature (and the
    witness policy), the consistency proofs between consecutive checkpoints,
    every receipt and every disclosed opening. Exits 0 when everything
    verified, 1 when anything failed, 2 for bad usage.
    """
    verifier_keys = load_keys(keys, key_files)
    policy = None
    if policy_file is not None:
        try:
            policy = load_witness_policy(policy_file)
        except VerificationError as err:
            raise click.BadParameter(str(err), param_hint="--witness-policy") from None
    try:
        report = verify_bundle(path, verifier_keys, policy, now=int(time.time()),
                               origin=origin)
    except VerificationError as err:
        click.echo(f"FAIL {path}: {type(err).__name__}: {err}")
        raise SystemExit(1) from None

    for problem in report.problems:
        click.echo(f"FAIL {path}: {problem}")
    sizes = report.checkpoints
    span = f"tree sizes {sizes[0]} to {sizes[-1]}" if sizes else "no tree size"
    summary = (f"{report.origin}: {len(sizes)} checkpoints ({span}), "
               f"{report.proofs} consistency proofs, {report.receipts} receipts, "
               f"{report.openings} openings")
    if report.ok:
        click.echo(f"PASS {path}: {summary}")
    else:
        count = len(report.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} in {path}: {summary}")
    raise SystemExit(0 if report.ok else 1)
