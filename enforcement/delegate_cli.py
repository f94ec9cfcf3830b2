"""``agentgate delegate``: issue a delegation certificate from key files.

The certificate is written as the JSON object that ``Certificate.from_bytes``
reads and that a gate configuration names in ``chain``. A child of an
existing certificate is checked against its parents with the gate's own chain
verifier before anything is written. Exit codes: 0 when the file is written,
2 for every kind of bad input, with nothing written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from enforcement import jcs
from enforcement.delegation import Certificate, ChainVerifier, issue_certificate
from enforcement.errors import GateError
from enforcement.identity import Identity, parse_verifier_key
from enforcement.scope import Scope
from enforcement.timeutil import format_seconds, parse_time, utc_now

__all__ = ["delegate"]


class DelegateError(click.ClickException):
    """Bad input to ``agentgate delegate``, reported as one line with exit 2."""

    exit_code = 2


def _read_issuer(path: Path) -> Identity:
    try:
        return Identity.load(path)
    except GateError as err:
        raise DelegateError(f"--issuer: {err}") from err


def _read_subject(value: str) -> str:
    """Return the subject's verifier key, given as text or as a NAME.pub file."""
    try:
        return parse_verifier_key(value.strip()).verifier_key
    except GateError:
        pass
    if value.startswith("PRIVATE+KEY+"):
        raise DelegateError("--subject: got a signer (private) key, not shown; "
                            "pass the subject's verifier key or its NAME.pub file")
    try:
        text = Path(value).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise DelegateError(f"--subject: {value!r} is neither a verifier key nor "
                            f"a readable key file ({err})") from err
    if text.startswith("PRIVATE+KEY+"):
        raise DelegateError(f"--subject: {value} contains a signer (private) key; "
                            "pass the subject's NAME.pub file instead")
    try:
        return parse_verifier_key(text).verifier_key
    except GateError as err:
        raise DelegateError(f"--subject: {value} does not contain a verifier key: "
                            f"{err}; pass the NAME.pub file written by "
                            "`agentgate keygen`") from err


def _check_json_values(value: Any, where: str) -> None:
    """Reject TOML values that JSON cannot carry, such as dates."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_json_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _check_json_values(item, f"{where}[{position}]")
    elif isinstance(value, (dt.datetime, dt.date, dt.time)):
        raise DelegateError(f"--scope: {where} is a TOML date or time "
                            f"({value}); write it as a string")


def _read_scope(path: Path) -> dict[str, Any]:
    """Read the scope object from a JSON file, or from TOML if named ``*.toml``."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DelegateError(f"--scope: cannot read {path}: {err.strerror}") from err
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(data.decode("utf-8"))
            _check_json_values(raw, "scope")
        else:
            raw = jcs.parse_strict(data)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, GateError) as err:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise DelegateError(f"--scope: {path} is not valid {kind}: {err}") from err
    try:
        Scope.parse(raw)
    except GateError as err:
        raise DelegateError(f"--scope: {path}: {err}; see specs/delegation.md "
                            "for the scope format") from err
    return raw


def _read_time(text: str, option: str) -> dt.datetime:
    try:
        moment = parse_time(text, option)
    except GateError as err:
        raise DelegateError(str(err)) from err
    if moment.microsecond:
        raise DelegateError(f"{option}: {text!r} has a fraction of a second; "
                            "certificates carry whole seconds")
    return moment


def _read_parents(paths: Sequence[Path]) -> list[Certificate]:
    parents = []
    for path in paths:
        try:
            parents.append(Certificate.from_bytes(path.read_bytes()))
        except OSError as err:
            raise DelegateError(f"--parent: cannot read {path}: "
                                f"{err.strerror}") from err
        except GateError as err:
            raise DelegateError(f"--parent: {path} is not a certificate: "
                                f"{err}") from err
    return parents


def _check_chain(parents: Sequence[Certificate], child: Certificate,
                 now: dt.datetime) -> None:
    """Verify the parents and the child as one chain, anchored at the first issuer.

    This runs the gate's checks: signatures, issuer equal to the parent's
    subject, parent hash, depth, nested windows and a scope within the
    parent's. Whether the first issuer is a trust anchor is for the gate
    to decide.
    """
    if parents[0].body["parent"] is not None:
        raise DelegateError(
            f"--parent: the first certificate has parent {parents[0].body['parent']}, "
            "so it is not a root; pass the whole chain, root first, by repeating "
            "--parent")
    verifier = ChainVerifier([parents[0].issuer])
    try:
        verified = verifier.verify_links([*parents, child])
    except GateError as err:
        raise DelegateError(f"the new certificate does not attenuate --parent: "
                            f"{err}") from err
    if verified.not_after <= now:
        raise DelegateError(f"--parent: the chain expired at "
                            f"{format_seconds(verified.not_after)}")


def _write_new(path: Path, data: bytes) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as err:
        raise DelegateError(f"--out: {path} already exists; choose a new file "
                            "name or remove the old one") from err
    except OSError as err:
        raise DelegateError(f"--out: cannot create {path}: {err.strerror}") from err
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
    except OSError as err:
        path.unlink(missing_ok=True)
        raise DelegateError(f"--out: cannot write {path}: {err.strerror}") from err


@click.command()
@click.option("--issuer", "issuer_path", required=True, metavar="KEYFILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Signer key file of the issuer (mode 0600), from "
                   "`agentgate keygen`.")
@click.option("--subject", required=True, metavar="PUBFILE|KEY",
              help="Verifier key of the subject, or the NAME.pub file containing it.")
@click.option("--scope", "scope_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Scope object ({\"capabilities\": [...]}) as JSON, or as TOML "
                   "when FILE ends in .toml.")
@click.option("--purpose", required=True, help="Why the subject is given this scope.")
@click.option("--not-before", default=None, metavar="TIME",
              help="Start of validity, RFC 3339 UTC such as 2026-01-31T12:00:00Z "
                   "[default: now].")
@click.option("--not-after", required=True, metavar="TIME",
              help="End of validity (exclusive), RFC 3339 UTC.")
@click.option("--max-depth", default=0, show_default=True, type=click.IntRange(0, 15),
              help="How many further delegations may follow this certificate.")
@click.option("--parent", "parent_paths", multiple=True, metavar="CERTFILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Certificate this one is delegated under; for a deeper chain "
                   "repeat it for each link, root first.")
@click.option("--out", "out_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="New file for the certificate JSON; must not exist.")
def delegate(issuer_path: Path, subject: str, scope_path: Path, purpose: str,
             not_before: str | None, not_after: str, max_depth: int,
             parent_paths: tuple[Path, ...], out_path: Path) -> None:
    """Issue a delegation certificate and print its hash.

    With --parent, the issuer must be the subject of the last parent and the
    new scope, window and depth must fit within the parents'. The chain is
    verified before the file is written.
    """
    now = utc_now()
    if out_path.exists():
        raise DelegateError(f"--out: {out_path} already exists; choose a new file "
                            "name or remove the old one")
    issuer = _read_issuer(issuer_path)
    subject_key = _read_subject(subject)
    scope = _read_scope(scope_path)
    start = (_read_time(not_before, "--not-before") if not_before is not None
             else now.replace(microsecond=0))
    end = _read_time(not_after, "--not-after")
    if end <= start:
        raise DelegateError(f"--not-after {format_seconds(end)} must be later than "
                            f"--not-before {format_seconds(start)}")
    if end <= now:
        raise DelegateError(f"--not-after {format_seconds(end)} is in the past; "
                            "the certificate would never be valid")
    parents = _read_parents(parent_paths)

    try:
        certificate = issue_certificate(
            issuer=issuer, subject=subject_key, scope=scope, purpose=purpose,
            not_before=start, not_after=end, max_depth=max_depth,
            parent=parents[-1] if parents else None)
    except GateError as err:
        raise DelegateError(f"cannot issue the certificate: {err}") from err
    if parents:
        _check_chain(parents, certificate, now)

    _write_new(out_path, json.dumps(certificate.to_json(), indent=2).encode() + b"\n")
    click.echo(f"wrote {out_path}", err=True)
    click.echo(certificate.hash)
