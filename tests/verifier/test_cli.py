"""The ``agentgate verify`` commands, run through click's CliRunner."""

import base64
import json

import pytest
from click.testing import CliRunner

from tests.verifier.signing import TestLog, TestSigner, b64, checkpoint_text, sign_note
from verifier import EMPTY_ROOT
from verifier.cli import verify

ORIGIN = "agentgate.example/cli"
SIGNER = TestSigner.from_seed_text(ORIGIN, "cli tests: log")
OTHER = TestSigner.from_seed_text(ORIGIN, "cli tests: other key")
LOG = TestLog(SIGNER, ORIGIN, 9)
KEY = SIGNER.verifier_key


@pytest.fixture
def files(tmp_path):
    """Write receipts, checkpoints and proofs into a temporary folder."""

    def write(name: str, content: str | bytes):
        path = tmp_path / name
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return str(path)

    return write


def run(*args: str):
    result = CliRunner().invoke(verify, list(args))
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exception
    return result


def flip_first_proof_line(receipt: str) -> str:
    parts = receipt.split("\n")
    digest = bytearray(base64.b64decode(parts[3]))
    digest[5] ^= 0x01
    parts[3] = b64(bytes(digest))
    return "\n".join(parts)


# verify receipt


def test_receipt_pass(files):
    path = files("r3.tlog-proof", LOG.receipt(3))
    result = run("receipt", path, "--key", KEY, "--origin", ORIGIN)

    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"PASS {path}: entry 3 (decision record) of {ORIGIN} at tree size 9, "
        f"signed by {ORIGIN}",
        "1 of 1 receipts verified, 0 failed",
    ]


def test_receipt_many_files_one_fails(files):
    good = files("good.tlog-proof", LOG.receipt(1))
    bad = files("bad.tlog-proof", flip_first_proof_line(LOG.receipt(2)))
    result = run("receipt", good, bad, "--key", KEY)

    assert result.exit_code == 1
    output = result.output.splitlines()
    assert output[0].startswith(f"PASS {good}: entry 1")
    assert output[1].startswith(
        f"FAIL {bad}: ProofMismatch: inclusion proof for index 2 in a tree of size 9"
    )
    assert output[2] == "1 of 2 receipts verified, 1 failed"


def test_receipt_malformed_file_fails(files):
    path = files("junk.tlog-proof", "hello\n\nworld\n")
    result = run("receipt", path, "--key", KEY)

    assert result.exit_code == 1
    assert (
        f"FAIL {path}: MalformedInput: receipt line 1: expected "
        "'c2sp.org/tlog-proof@v1', got 'hello'"
    ) in result.output


def test_receipt_binary_file_fails(files):
    path = files("binary.tlog-proof", b"\x89PNG\r\n")
    result = run("receipt", path, "--key", KEY)

    assert result.exit_code == 1
    assert "MalformedInput: receipt: expected UTF-8 text" in result.output


def test_receipt_wrong_origin_fails(files):
    path = files("r.tlog-proof", LOG.receipt(0))
    result = run("receipt", path, "--key", KEY, "--origin", "agentgate.example/other")

    assert result.exit_code == 1
    assert "OriginMismatch: checkpoint: expected origin 'agentgate.example/other'" in (
        result.output
    )


def test_receipt_wrong_key_fails(files):
    path = files("r.tlog-proof", LOG.receipt(0))
    result = run("receipt", path, "--key", OTHER.verifier_key)

    assert result.exit_code == 1
    assert "UnknownKey: note: expected a signature by one of" in result.output


def test_receipt_rotated_keys(files):
    path = files("r.tlog-proof", LOG.receipt(4))
    result = run("receipt", path, "--key", OTHER.verifier_key, "--key", KEY)

    assert result.exit_code == 0
    assert "1 of 1 receipts verified, 0 failed" in result.output


def test_receipt_key_file(files):
    key_file = files("log.pub", KEY + "\n")
    path = files("r.tlog-proof", LOG.receipt(4))
    result = run("receipt", path, "--key-file", key_file)

    assert result.exit_code == 0
    assert result.output.startswith(f"PASS {path}")


def test_receipt_json_output(files):
    good = files("good.tlog-proof", LOG.receipt(5))
    bad = files("bad.tlog-proof", "x")
    result = run("receipt", good, bad, "--key", KEY, "--json")

    assert result.exit_code == 1
    first, second, summary = [json.loads(line) for line in result.output.splitlines()]
    assert first["ok"] is True
    assert first["index"] == 5
    assert first["size"] == 9
    assert first["origin"] == ORIGIN
    assert first["key_names"] == [ORIGIN]
    assert first["record_type"] == "decision"
    assert second == {
        "file": bad,
        "ok": False,
        "error": "MalformedInput",
        "message": "receipt: expected a blank line between the proof lines and "
        "the checkpoint, found none",
    }
    assert summary == {"summary": {"total": 2, "passed": 1, "failed": 1}}


def test_receipt_bad_key_is_usage_error(files):
    path = files("r.tlog-proof", LOG.receipt(0))
    result = run("receipt", path, "--key", "not-a-key")

    assert result.exit_code == 2
    assert "Invalid value for --key: verifier key" in result.output
    assert "expected <name>+<key id hex>+<base64 key>" in result.output


def test_receipt_signer_key_file_not_echoed(files):
    seed = base64.b64encode(b"\x01" + bytes(range(32))).decode()
    key_file = files("log.key", f"PRIVATE+KEY+{ORIGIN}+{SIGNER.key_id.hex()}+{seed}\n")
    path = files("r.tlog-proof", LOG.receipt(0))
    result = run("receipt", path, "--key-file", key_file)

    assert result.exit_code == 2
    assert "got a signer (private) key" in result.output
    assert seed not in result.output


def test_receipt_empty_key_file_is_usage_error(files):
    key_file = files("empty.pub", "\n")
    path = files("r.tlog-proof", LOG.receipt(0))
    result = run("receipt", path, "--key-file", key_file)

    assert result.exit_code == 2
    assert "expected one verifier key per line, found none" in result.output


def test_receipt_without_key_is_usage_error(files):
    path = files("r.tlog-proof", LOG.receipt(0))
    result = run("receipt", path)

    assert result.exit_code == 2
    assert "expected the log's verifier key" in result.output


def test_receipt_missing_file_is_usage_error(tmp_path):
    result = run("receipt", str(tmp_path / "absent.tlog-proof"), "--key", KEY)

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_receipt_directory_is_usage_error(tmp_path):
    result = run("receipt", str(tmp_path), "--key", KEY)

    assert result.exit_code == 2
    assert "is a directory" in result.output


# verify consistency


def consistency_files(files, size1: int, size2: int, proof: list[bytes] | None = None):
    old = files("old.checkpoint", LOG.checkpoint(size1))
    new = files("new.checkpoint", LOG.checkpoint(size2))
    if proof is None:
        proof = LOG.tree.proof(size1, size2)
    proof_file = files("proof.txt", "".join(b64(digest) + "\n" for digest in proof))
    return old, new, proof_file


def test_consistency_pass(files):
    old, new, proof = consistency_files(files, 3, 9)
    result = run("consistency", old, new, proof, "--key", KEY, "--origin", ORIGIN)

    assert result.exit_code == 0
    assert result.output == (
        f"PASS {new}: {ORIGIN} at tree size 9 extends tree size 3 of {old}\n"
    )


def test_consistency_equal_checkpoints_pass(files):
    old, new, proof = consistency_files(files, 9, 9)
    result = run("consistency", old, new, proof, "--key", KEY)

    assert result.exit_code == 0


def test_consistency_flipped_proof_fails(files):
    proof = LOG.tree.proof(3, 9)
    proof[0] = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    old, new, proof_file = consistency_files(files, 3, 9, proof)
    result = run("consistency", old, new, proof_file, "--key", KEY)

    assert result.exit_code == 1
    assert result.output.startswith(
        f"FAIL {proof_file}: ProofMismatch: consistency proof for tree sizes 3 -> 9"
    )


def test_consistency_swapped_checkpoints_fail(files):
    old, new, proof = consistency_files(files, 3, 9)
    result = run("consistency", new, old, proof, "--key", KEY)

    assert result.exit_code == 1
    assert "the first size must not exceed the second" in result.output


def test_consistency_from_empty_tree_fails(files):
    empty = sign_note(checkpoint_text(ORIGIN, 0, EMPTY_ROOT), SIGNER)
    old = files("empty.checkpoint", empty)
    new = files("new.checkpoint", LOG.checkpoint(9))
    proof = files("proof.txt", "")
    result = run("consistency", old, new, proof, "--key", KEY)

    assert result.exit_code == 1
    assert "sizes 0 -> 9: the first size must be at least 1" in result.output


def test_consistency_malformed_proof_fails(files):
    old, new, _ = consistency_files(files, 3, 9)
    proof = files("proof.txt", "not base64\n")
    result = run("consistency", old, new, proof, "--key", KEY)

    assert result.exit_code == 1
    assert f"FAIL {proof}: MalformedInput: proof line 1: expected standard" in (
        result.output
    )


def test_consistency_different_origins_fail(files):
    other = TestLog(SIGNER, "agentgate.example/elsewhere", 9)
    old = files("old.checkpoint", LOG.checkpoint(3))
    new = files("new.checkpoint", other.checkpoint(9))
    proof = files("proof.txt", "".join(b64(d) + "\n" for d in LOG.tree.proof(3, 9)))
    result = run("consistency", old, new, proof, "--key", KEY)

    assert result.exit_code == 1
    assert f"FAIL {new}: OriginMismatch: checkpoint: expected origin '{ORIGIN}'" in (
        result.output
    )


def test_consistency_wrong_key_fails(files):
    old, new, proof = consistency_files(files, 3, 9)
    result = run("consistency", old, new, proof, "--key", OTHER.verifier_key)

    assert result.exit_code == 1
    assert f"FAIL {old}: UnknownKey" in result.output


def test_consistency_bad_key_is_usage_error(files):
    old, new, proof = consistency_files(files, 3, 9)
    result = run("consistency", old, new, proof, "--key", KEY[:-4])

    assert result.exit_code == 2
    assert "Invalid value for --key: verifier key" in result.output


def test_root_command_loads_verify_lazily(files):
    from enforcement.cli import main

    path = files("r.tlog-proof", LOG.receipt(2))
    result = CliRunner().invoke(main, ["verify", "receipt", path, "--key", KEY])

    assert result.exit_code == 0
    assert "1 of 1 receipts verified, 0 failed" in result.output


def test_consistency_with_receipt_as_checkpoint_is_named(tmp_path):
    from click.testing import CliRunner

    from verifier.cli import verify

    receipt = tmp_path / "r.tlog-proof"
    receipt.write_text("c2sp.org/tlog-proof@v1\nextra e30=\nindex 0\n\nx\n")
    proof = tmp_path / "p.txt"
    proof.write_text("")
    key = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"

    result = CliRunner().invoke(
        verify, ["consistency", str(receipt), str(receipt), str(proof), "--key", key]
    )

    assert result.exit_code == 1
    assert "expected a checkpoint (a signed note), got a receipt" in result.output


def test_empty_receipt_is_named(tmp_path):
    from click.testing import CliRunner

    from verifier.cli import verify

    empty = tmp_path / "empty.tlog-proof"
    empty.write_text("")
    key = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"

    result = CliRunner().invoke(verify, ["receipt", str(empty), "--key", key])

    assert result.exit_code == 1
    assert "receipt is empty" in result.output


def test_binary_key_file_is_named(tmp_path):
    from click.testing import CliRunner

    from verifier.cli import verify

    binary = tmp_path / "key.pub"
    binary.write_bytes(b"\x83\xff\x00garbage")
    receipt = tmp_path / "r.tlog-proof"
    receipt.write_text("x")

    result = CliRunner().invoke(verify, ["receipt", str(receipt), "--key-file",
                                         str(binary)])

    assert result.exit_code == 2
    assert "expected a text file of verifier keys, got binary data" in result.output
