"""Coverage-guided fuzzing of the verifier's receipt, note and checkpoint parsers.

Run by hand, from the repository root, after installing the ``fuzz`` extra
(``.venv/bin/pip install -e '.[fuzz]'``):

    PYTHONPATH=. .venv/bin/python tests/fuzz/atheris/fuzz_verifier.py \\
        -max_total_time=600 -rss_limit_mb=4096 CORPUS_DIR

``CORPUS_DIR`` is created and seeded with the sample log's receipts and
checkpoints. The first byte of an input picks the parser (receipt, note or
checkpoint), the rest is its input. An input fails when a parser raises
anything but ``VerificationError``, or when it accepts something that is
not one of the receipts or checkpoints the ledger signed, in meaning.
"""

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["verifier"]):
    from verifier import VerificationError, open_checkpoint, open_note, verify_receipt

from tests.fuzz.samples import LOG_KEY, ORIGIN, sample_log  # noqa: E402

LOG = sample_log()
RECEIPTS = {
    (r.index, r.entry, r.checkpoint)
    for r in (verify_receipt(text, [LOG_KEY], ORIGIN) for text in LOG.receipts)
}
NOTE_TEXTS = {open_note(text, [LOG_KEY]).text for text in LOG.checkpoints.values()}
CHECKPOINTS = {
    open_checkpoint(text, [LOG_KEY])[0] for text in LOG.checkpoints.values()
}


def check_receipt(data: bytes) -> None:
    verified = verify_receipt(data, [LOG_KEY], ORIGIN)
    found = (verified.index, verified.entry, verified.checkpoint)
    if found not in RECEIPTS:
        raise AssertionError(f"accepted a receipt the ledger never issued: {data!r}")


def check_note(data: bytes) -> None:
    if open_note(data, [LOG_KEY]).text not in NOTE_TEXTS:
        raise AssertionError(f"opened a note the ledger never signed: {data!r}")


def check_checkpoint(data: bytes) -> None:
    if open_checkpoint(data, [LOG_KEY], ORIGIN)[0] not in CHECKPOINTS:
        raise AssertionError(f"accepted a checkpoint never signed: {data!r}")


TARGETS = [check_receipt, check_note, check_checkpoint]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target = TARGETS[data[0] % len(TARGETS)]
    try:
        target(data[1:])
    except VerificationError:
        pass


def seed(corpus: Path) -> None:
    """Write the valid inputs, each behind the byte that picks its parser."""
    corpus.mkdir(parents=True, exist_ok=True)
    for number, text in enumerate(LOG.receipts):
        (corpus / f"receipt-{number}").write_bytes(b"\x00" + text.encode())
    for size, text in LOG.checkpoints.items():
        (corpus / f"note-{size}").write_bytes(b"\x01" + text.encode())
        (corpus / f"checkpoint-{size}").write_bytes(b"\x02" + text.encode())


def main() -> None:
    for argument in sys.argv[1:]:
        if not argument.startswith("-"):
            seed(Path(argument))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
