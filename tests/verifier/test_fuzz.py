"""Random and mutated input never escapes as anything but a VerificationError."""

import ast
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.verifier.signing import TestLog, TestSigner
from verifier import (
    VerificationError,
    open_note,
    parse_proof_text,
    parse_strict,
    parse_verifier_key,
    verify_receipt,
)

ORIGIN = "agentgate.example/fuzz"
SIGNER = TestSigner.from_seed_text(ORIGIN, "fuzz tests: log")
RECEIPT = TestLog(SIGNER, ORIGIN, 6).receipt(4).encode()
PACKAGE = Path(__file__).parent.parent.parent / "verifier"


def returns_or_rejects(function, *args) -> None:
    try:
        function(*args)
    except VerificationError:
        pass


@st.composite
def mutated_receipts(draw) -> bytes:
    data = bytearray(RECEIPT)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "delete":
            del data[position]
        elif action == "insert":
            data.insert(position, draw(st.sampled_from(b"\n\r =+/A0\xe2\x80\x94\xff")))
        else:
            del data[position:]
        if not data:
            break
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(mutated_receipts())
def test_mutated_receipt_is_rejected_cleanly(data):
    returns_or_rejects(verify_receipt, data, [SIGNER.verifier_key], ORIGIN)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_input_is_rejected_cleanly(data):
    returns_or_rejects(verify_receipt, data, [SIGNER.verifier_key])
    returns_or_rejects(open_note, data, [SIGNER.verifier_key])
    returns_or_rejects(parse_strict, data)
    returns_or_rejects(parse_proof_text, data)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_random_verifier_key_is_rejected_cleanly(text):
    returns_or_rejects(parse_verifier_key, text)


def test_package_imports_only_stdlib_and_cryptography():
    allowed = set(sys.stdlib_module_names) | {"cryptography", "verifier"}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                is_cli = path.name == "cli.py" or path.name.endswith("_cli.py")
                permitted = allowed | ({"click"} if is_cli else set())
                assert top in permitted, f"{path.name} imports {module}"
