"""``agentgate keygen`` and ``agentgate log`` through click's CliRunner."""

import base64
import stat

import pytest
from click.testing import CliRunner

from enforcement.cli import main
from ledger import Ledger, VerifierKey, load_signer, write_key_pair

from .conftest import ORIGIN, record
from .notes import check_receipt, open_checkpoint
from .rfc9162 import ReferenceTree


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def key_file(tmp_path, signer):
    directory = tmp_path / "keys"
    directory.mkdir()
    key_path, _ = write_key_pair(signer, directory)
    return key_path


@pytest.fixture
def log_db(tmp_path, runner, key_file):
    db = tmp_path / "log.db"
    result = runner.invoke(
        main, ["log", "init", "--db", str(db), "--key", str(key_file)]
    )
    assert result.exit_code == 0, result.output
    return db


def test_keygen_writes_files_and_prints_key(runner, tmp_path):
    out = tmp_path / "new-keys"
    result = runner.invoke(
        main, ["keygen", "--name", "agentgate.example/demo", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    key = VerifierKey.parse(printed)
    assert key.name == "agentgate.example/demo"
    key_path = out / "agentgate.example_demo.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert (out / "agentgate.example_demo.pub").read_text() == printed + "\n"
    assert load_signer(key_path).verifier_key == key
    assert f"wrote {key_path}" in result.stderr


def test_keygen_refuses_to_overwrite(runner, tmp_path):
    args = ["keygen", "--name", "n", "--out", str(tmp_path)]
    assert runner.invoke(main, args).exit_code == 0
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "n.key already exists; remove it" in result.stderr
    assert "Traceback" not in result.output


def test_keygen_bad_name(runner, tmp_path):
    result = runner.invoke(
        main, ["keygen", "--name", "bad name", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "Error: key name 'bad name' contains ' '" in result.stderr


def test_init_prints_first_checkpoint(runner, tmp_path, key_file, signer):
    db = tmp_path / "log.db"
    result = runner.invoke(
        main, ["log", "init", "--db", str(db), "--key", str(key_file)]
    )
    assert result.exit_code == 0, result.output
    assert open_checkpoint(result.stdout, signer.verifier_key)[:2] == (ORIGIN, 1)


def test_init_existing_log_rejected(runner, log_db, key_file):
    result = runner.invoke(
        main, ["log", "init", "--db", str(log_db), "--key", str(key_file)]
    )
    assert result.exit_code == 2
    assert f"{log_db} already contains a log; choose another --db path" in result.stderr


def test_init_with_world_readable_key_rejected(runner, tmp_path, key_file):
    key_file.chmod(0o644)
    result = runner.invoke(
        main, ["log", "init", "--db", str(tmp_path / "x.db"), "--key", str(key_file)]
    )
    assert result.exit_code == 2
    assert f"run: chmod 600 {key_file}" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_append_writes_receipt(runner, tmp_path, log_db, key_file, signer):
    entry = tmp_path / "entry.json"
    entry.write_bytes(record(1))
    out = tmp_path / "entry.tlog-proof"
    result = runner.invoke(
        main,
        [
            "log",
            "append",
            "--db",
            str(log_db),
            "--key",
            str(key_file),
            "--out",
            str(out),
            str(entry),
        ],
    )
    assert result.exit_code == 0, result.output
    assert check_receipt(out.read_text(), signer.verifier_key, ORIGIN) == (
        1,
        record(1),
        2,
    )
    assert f"entry 1 sealed in {ORIGIN}" in result.stderr


def test_append_from_stdin_to_stdout(runner, log_db, key_file, signer):
    result = runner.invoke(
        main,
        [
            "log",
            "append",
            "--db",
            str(log_db),
            "--key",
            str(key_file),
            "--idempotency-key",
            "k",
            "-",
        ],
        input=record(5),
    )
    assert result.exit_code == 0, result.output
    assert check_receipt(result.stdout, signer.verifier_key, ORIGIN)[0] == 1


def test_append_non_canonical_entry(runner, tmp_path, log_db, key_file):
    entry = tmp_path / "entry.json"
    entry.write_bytes(record(1) + b"\n")
    result = runner.invoke(
        main, ["log", "append", "--db", str(log_db), "--key", str(key_file), str(entry)]
    )
    assert result.exit_code == 2
    assert "Error: entry is not in RFC 8785 canonical form" in result.stderr
    assert "Traceback" not in result.output
    with Ledger.open(log_db) as ledger:
        assert ledger.size == 1


def test_append_missing_entry_file(runner, tmp_path, log_db, key_file):
    result = runner.invoke(
        main,
        [
            "log",
            "append",
            "--db",
            str(log_db),
            "--key",
            str(key_file),
            str(tmp_path / "none.json"),
        ],
    )
    assert result.exit_code == 2
    assert "none.json': No such file or directory" in result.stderr


def test_append_to_missing_log(runner, tmp_path, key_file):
    entry = tmp_path / "entry.json"
    entry.write_bytes(record(1))
    db = tmp_path / "none.db"
    result = runner.invoke(
        main, ["log", "append", "--db", str(db), "--key", str(key_file), str(entry)]
    )
    assert result.exit_code == 2
    assert "contains no log; create it first (agentgate log init)" in result.stderr


def test_checkpoint_without_key(runner, log_db, signer):
    result = runner.invoke(main, ["log", "checkpoint", "--db", str(log_db)])
    assert result.exit_code == 0, result.output
    assert open_checkpoint(result.stdout, signer.verifier_key)[:2] == (ORIGIN, 1)


def test_prove_consistency(runner, tmp_path, log_db, signer):
    with Ledger.open(log_db, signer) as ledger:
        ledger.append_batch([(record(i), None) for i in range(9)])
        reference = ReferenceTree(ledger.entries(0, ledger.size))
    out = tmp_path / "proof.txt"
    result = runner.invoke(
        main,
        ["log", "prove-consistency", "--db", str(log_db), "--out", str(out), "3", "10"],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert [base64.b64decode(line) for line in lines] == reference.proof(3, 10)
    assert out.read_text().endswith("\n")


def test_prove_consistency_equal_sizes_is_empty(runner, log_db):
    result = runner.invoke(
        main, ["log", "prove-consistency", "--db", str(log_db), "1", "1"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    "first, second, message",
    [
        ("0", "1", "sizes 0 -> 1: first size must be at least 1"),
        ("2", "1", "sizes 2 -> 1: first size must not exceed second"),
        ("1", "5", "sizes 1 -> 5: second size exceeds the log size 1"),
    ],
)
def test_prove_consistency_bad_sizes(runner, log_db, first, second, message):
    result = runner.invoke(
        main, ["log", "prove-consistency", "--db", str(log_db), first, second]
    )
    assert result.exit_code == 2
    assert f"Error: consistency proof for {message}" in result.stderr


def test_prove_consistency_non_integer(runner, log_db):
    result = runner.invoke(
        main, ["log", "prove-consistency", "--db", str(log_db), "one", "2"]
    )
    assert result.exit_code == 2
    assert "'one' is not a valid integer" in result.stderr
