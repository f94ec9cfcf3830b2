"""The worked examples in specs/vectors: reproducible, and valid where they claim."""

import base64
import importlib.util
import json
from pathlib import Path

import pytest

from ledger import Signer, VerifierKey
from ledger.canonical import check_entry

from .notes import check_receipt, open_checkpoint

EXAMPLES = Path(__file__).resolve().parents[2] / "specs" / "vectors"
DECISION_FIELDS = {
    "type",
    "version",
    "id",
    "time",
    "agent",
    "session",
    "tool",
    "arguments",
    "delegation",
    "alignment",
    "sequence",
    "policy",
    "verdict",
    "reasons",
}


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "vectors_generate", EXAMPLES / "generate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return _load_generator()


@pytest.fixture(scope="module")
def built(generator):
    return generator.build()


@pytest.fixture(scope="module")
def log_key():
    return VerifierKey.parse((EXAMPLES / "example-log.pub").read_text().strip())


def _split_parts(text):
    """Split consistency-example.txt at blank lines that follow a signature line."""
    parts, current = [], []
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if line == "" and number > 0 and lines[number - 1].startswith("\u2014 "):
            parts.append("\n".join(current) + "\n")
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current))
    return parts


@pytest.mark.parametrize(
    "name",
    [
        "example-log.key",
        "example-log.pub",
        "checkpoint-example.txt",
        "decision-example.json",
        "receipt-example.tlog-proof",
        "consistency-example.txt",
    ],
)
def test_files_are_reproducible(built, name):
    assert (EXAMPLES / name).read_bytes() == built[
        name
    ], f"rerun specs/vectors/generate.py ({name})"


def test_key_files_match_documented_seed(generator, log_key):
    signer = Signer.parse((EXAMPLES / "example-log.key").read_text().strip())
    assert signer.verifier_key == log_key
    expected = Signer.from_seed(
        generator.ORIGIN, generator.public_test_seed(generator.ORIGIN)
    )
    assert expected.verifier_key == log_key
    assert log_key.name == "agentgate.example/public-test-log"


def test_checkpoint_example(log_key):
    note = (EXAMPLES / "checkpoint-example.txt").read_text()
    origin, size, root = open_checkpoint(note, log_key)
    assert (origin, size) == ("agentgate.example/public-test-log", 7)
    assert len(root) == 32


def test_decision_example_is_canonical_decision():
    entry = (EXAMPLES / "decision-example.json").read_bytes()
    record = check_entry(entry)
    assert set(record) == DECISION_FIELDS
    assert record["type"] == "decision"
    assert record["verdict"] in {"allow", "deny", "hold"}
    assert not entry.endswith(b"\n")


def test_receipt_example_seals_decision(log_key):
    text = (EXAMPLES / "receipt-example.tlog-proof").read_text()
    index, entry, size = check_receipt(
        text, log_key, "agentgate.example/public-test-log"
    )
    assert (index, size) == (5, 7)
    assert entry == (EXAMPLES / "decision-example.json").read_bytes()
    assert text.endswith((EXAMPLES / "checkpoint-example.txt").read_text())


def test_consistency_example_parts(log_key):
    old, new, proof_text = _split_parts(
        (EXAMPLES / "consistency-example.txt").read_text()
    )
    assert open_checkpoint(old, log_key)[1] == 3
    assert new == (EXAMPLES / "checkpoint-example.txt").read_text()
    proof = [base64.b64decode(line, validate=True) for line in proof_text.splitlines()]
    assert len(proof) == 4
    assert all(len(digest) == 32 for digest in proof)


def test_examples_pass_the_verifier(log_key):
    verifier = pytest.importorskip(
        "verifier", reason="the verifier package is not importable"
    )
    key = str(log_key)
    origin = "agentgate.example/public-test-log"
    verified = verifier.verify_receipt(
        (EXAMPLES / "receipt-example.tlog-proof").read_text(), [key], origin=origin
    )
    assert verified.index == 5
    assert verified.record == json.loads(
        (EXAMPLES / "decision-example.json").read_bytes()
    )

    old, new, proof_text = _split_parts(
        (EXAMPLES / "consistency-example.txt").read_text()
    )
    old_checkpoint = verifier.verify_checkpoint(old, [key], origin=origin)
    new_checkpoint = verifier.verify_checkpoint(new, [key], origin=origin)
    verifier.verify_consistency(
        old_checkpoint.size,
        new_checkpoint.size,
        verifier.parse_proof_text(proof_text),
        old_checkpoint.root,
        new_checkpoint.root,
    )


@pytest.mark.parametrize(
    "spec, names",
    [
        (
            "checkpoint.md",
            [
                "example-log.pub",
                "example-log.key",
                "checkpoint-example.txt",
                "consistency-example.txt",
            ],
        ),
        ("receipt.md", ["receipt-example.tlog-proof"]),
        ("records.md", ["decision-example.json"]),
    ],
)
def test_specs_quote_the_files(spec, names):
    text = (EXAMPLES.parent / spec).read_text()
    for name in names:
        assert (
            EXAMPLES / name
        ).read_text() in text, f"{spec} must quote {name} verbatim"
