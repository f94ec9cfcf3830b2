"""Coverage-guided fuzzing of the three strict JSON parsers and the two
certificate parsers, which must agree.

Run by hand, from the repository root, after installing the ``fuzz`` extra
(``.venv/bin/pip install -e '.[fuzz]'``):

    PYTHONPATH=. .venv/bin/python tests/fuzz/atheris/fuzz_json.py \\
        -max_total_time=300 -rss_limit_mb=4096 CORPUS_DIR

``CORPUS_DIR`` is created and seeded with a decision record and a signed
certificate. The first byte of an input picks the check, the rest is its
input:

- JSON: the verifier, the gate and the ledger parse the bytes. They must
  accept the same inputs and canonicalize an accepted value to the same
  bytes, and the ledger must take exactly the canonical objects as entries.
- certificate: the gate's and the verifier's certificate parsers must
  accept the same documents with the same hash, and a certificate whose
  signature verifies must be the one the principal signed. The verifier
  may reject a host name outside ASCII that the gate accepts.

Each parser may raise only its package's error type.
"""

import json
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["verifier", "enforcement", "ledger"]):
    from enforcement import jcs as gate_jcs
    from enforcement.delegation import Certificate as GateCertificate
    from enforcement.errors import GateError
    from ledger.canonical import check_entry
    from ledger.errors import LedgerError
    from verifier import (
        VerificationError,
        canonicalize,
        is_canonical,
        parse_certificate,
        parse_strict,
    )

from tests.fuzz.samples import certificate  # noqa: E402

DECISION = (
    Path(__file__).resolve().parents[3] / "specs" / "vectors" / "decision-example.json"
).read_bytes()
CERTIFICATE = certificate()
NOT_ASCII_HOST = "is not ASCII; write it as A-labels"


def check_json(data: bytes) -> None:
    try:
        ours = parse_strict(data)
        ours_ok = True
    except VerificationError:
        ours, ours_ok = None, False
    try:
        theirs = gate_jcs.parse_strict(data)
        theirs_ok = True
    except GateError:
        theirs, theirs_ok = None, False
    try:
        check_entry(data)
        entry_ok = True
    except LedgerError:
        entry_ok = False

    if ours_ok != theirs_ok:
        raise AssertionError(f"verifier {ours_ok}, gate {theirs_ok} on {data!r}")
    if ours_ok and canonicalize(ours) != gate_jcs.canonical(theirs):
        raise AssertionError(f"the canonical bytes differ for {data!r}")
    canonical_object = ours_ok and isinstance(ours, dict) and is_canonical(data)
    if entry_ok != canonical_object:
        raise AssertionError(
            f"ledger {entry_ok}, canonical {canonical_object}: {data!r}"
        )


def check_certificate(data: bytes) -> None:
    try:
        ours = GateCertificate.from_bytes(data)
    except GateError:
        ours = None
    try:
        theirs = parse_certificate(parse_strict(data))
    except VerificationError as err:
        # The verifier has no IDNA tables, so it rejects host names outside
        # ASCII that the gate maps to A-labels: allowed, and fails closed.
        if ours is not None and NOT_ASCII_HOST in str(err):
            return
        theirs = None

    if (ours is None) != (theirs is None):
        raise AssertionError(f"gate {ours}, verifier {theirs} on {data!r}")
    if ours is None:
        return
    if ours.hash != theirs.hash:
        raise AssertionError(f"the parsers hash {data!r} differently")
    if theirs.signature_valid() and ours.hash != CERTIFICATE.hash:
        raise AssertionError(f"a changed certificate verifies: {data!r}")


TARGETS = [check_json, check_certificate]


def test_one_input(data: bytes) -> None:
    if data:
        TARGETS[data[0] % len(TARGETS)](data[1:])


def seed(corpus: Path) -> None:
    """Write the valid inputs, each behind the byte that picks its check."""
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "decision").write_bytes(b"\x00" + DECISION)
    signed = json.dumps(CERTIFICATE.to_json()).encode()
    (corpus / "certificate").write_bytes(b"\x01" + signed)


def main() -> None:
    for argument in sys.argv[1:]:
        if not argument.startswith("-"):
            seed(Path(argument))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
