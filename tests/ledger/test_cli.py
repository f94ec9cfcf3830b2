"""``agentgate keygen`` and ``agentgate log`` through click's CliRunner."""

import base64
import stat

import pytest
from click.testing import CliRunner

from enforcement.cli import main
from ledger import Ledger, VerifierKey, load_signer, write_key_pair
from verifier import UnknownKey, verify_checkpoint, verify_receipt

from .conftest import ORIGIN, record, run_sql
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
    entry.write_bytes(b'{"version":1,"type":"decision"}')
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
    assert f"Error: no log at {db}: the file does not exist" in result.stderr
    assert "create the log first (agentgate log init)" in result.stderr
    assert not db.exists()


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


# -- key rotation and migration -----------------------------------------------


@pytest.fixture
def new_key_files(tmp_path, other_signer):
    directory = tmp_path / "new-keys"
    directory.mkdir()
    return write_key_pair(other_signer, directory)


def _log(runner, command, log_db, *arguments):
    """Run ``agentgate log COMMAND --db LOG_DB ARGUMENTS...``."""
    return runner.invoke(
        main, ["log", command, "--db", str(log_db), *map(str, arguments)]
    )


def _append(runner, log_db, entry_file, *key_files):
    options = [value for key_file in key_files for value in ("--key", key_file)]
    return _log(runner, "append", log_db, *options, entry_file)


def test_key_rotation_commands(
    runner, tmp_path, log_db, key_file, new_key_files, signer, other_signer
):
    new_key, new_pub = new_key_files
    old_pub = key_file.with_suffix(".pub")
    old_text, new_text = str(signer.verifier_key), str(other_signer.verifier_key)
    entry = tmp_path / "entry.json"
    entry.write_bytes(record(1))

    added = _log(runner, "add-key", log_db, "--key", key_file, "--new-key", new_key)
    assert added.exit_code == 0, added.output
    assert verify_checkpoint(added.stdout, [old_text], ORIGIN).size == 2
    assert verify_checkpoint(added.stdout, [new_text], ORIGIN).size == 2
    assert f"key {new_text} added by entry 1" in added.stderr

    overlap = _append(runner, log_db, entry, key_file, new_key)
    assert overlap.exit_code == 0, overlap.output
    for key in (old_text, new_text):
        assert verify_receipt(overlap.stdout, [key], ORIGIN).index == 2

    retired = _log(
        runner, "retire-key", log_db, "--key", new_key, "--old-key", old_pub
    )
    assert retired.exit_code == 0, retired.output
    assert verify_checkpoint(retired.stdout, [new_text], ORIGIN).size == 4
    with pytest.raises(UnknownKey):
        verify_checkpoint(retired.stdout, [old_text], ORIGIN)
    assert f"key {old_text} retired by entry 3" in retired.stderr

    refused = _append(runner, log_db, entry, key_file)
    assert refused.exit_code == 2
    assert f"signer key {old_text} of log '{ORIGIN}' was retired by leaf 3" in (
        refused.stderr
    )
    after = _append(runner, log_db, entry, new_key)
    assert after.exit_code == 0, after.output
    assert verify_receipt(after.stdout, [new_text], ORIGIN).index == 4
    with pytest.raises(UnknownKey):
        verify_receipt(after.stdout, [old_text], ORIGIN)
    assert new_pub.read_text() == new_text + "\n"


def test_retire_only_key_refused(runner, log_db, key_file):
    old_pub = key_file.with_suffix(".pub")
    result = _log(
        runner, "retire-key", log_db, "--key", key_file, "--old-key", old_pub
    )
    assert result.exit_code == 2
    assert "none of this process's signer keys" in result.stderr
    assert "Traceback" not in result.output


def test_add_key_twice_refused(runner, log_db, key_file, new_key_files):
    arguments = ["--key", key_file, "--new-key", new_key_files[0]]
    assert _log(runner, "add-key", log_db, *arguments).exit_code == 0
    again = _log(runner, "add-key", log_db, *arguments)
    assert again.exit_code == 2
    assert "is already a key of log 'agentgate.test/log', introduced by leaf 1" in (
        again.stderr
    )


def test_migrate_current_database(runner, log_db):
    result = _log(runner, "migrate", log_db)
    assert result.exit_code == 0, result.output
    assert result.stdout == "schema already at revision 0003\n"


def test_migrate_bad_url(runner):
    result = runner.invoke(main, ["log", "migrate", "--db", "nosuch://x/y"])
    assert result.exit_code == 1
    assert "Error: cannot open database nosuch://x/y" in result.stderr
    assert "Traceback" not in result.output


# -- faults a new user meets ------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["log", "checkpoint"],
        ["log", "prove-consistency", "1", "1"],
    ],
    ids=["checkpoint", "prove-consistency"],
)
def test_missing_database_not_created(runner, tmp_path, command):
    missing = tmp_path / "missing.db"
    result = runner.invoke(main, [*command[:2], "--db", str(missing), *command[2:]])
    assert result.exit_code == 2
    assert f"Error: no log at {missing}: the file does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_database_without_log_left_alone(runner, tmp_path):
    other = tmp_path / "other.db"
    run_sql(other, "CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    result = runner.invoke(main, ["log", "checkpoint", "--db", str(other)])
    assert result.exit_code == 2
    assert f"Error: {other} contains no log; create it first" in result.stderr
    tables = run_sql(other, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert [name for (name,) in tables] == ["notes"]


def test_init_with_verifier_key_file(runner, tmp_path, key_file):
    public = key_file.with_suffix(".pub")
    result = runner.invoke(
        main, ["log", "init", "--db", str(tmp_path / "log.db"), "--key", str(public)]
    )
    assert result.exit_code == 2
    assert (
        f"Error: key file {public} contains a verifier (public) key, but a signer "
        "(private) key is needed here" in result.stderr
    )
    assert f"({key_file}, if keygen wrote both)" in result.stderr
    assert "chmod" not in result.stderr
    assert not (tmp_path / "log.db").exists()


def test_append_entry_with_trailing_newline(runner, tmp_path, log_db, key_file):
    entry = tmp_path / "entry.json"
    entry.write_bytes(record(1) + b"\n")
    result = runner.invoke(
        main, ["log", "append", "--db", str(log_db), "--key", str(key_file), str(entry)]
    )
    assert result.exit_code == 2
    assert f"Error: {entry} ends with a newline" in result.stderr
    assert "without a trailing newline" in result.stderr
    assert "printf" in result.stderr
    with Ledger.open(log_db) as ledger:
        assert ledger.size == 1


def test_append_help_explains_exact_bytes(runner):
    result = runner.invoke(main, ["log", "append", "--help"])
    assert result.exit_code == 0
    help_text = " ".join(result.stdout.split())
    assert "with no trailing newline" in help_text
    assert "Write it with printf, not echo" in help_text


@pytest.mark.parametrize(
    "name, stem",
    [
        (".hidden", "_hidden"),
        ("..", "__"),
        ("a/../b", "a_.._b"),
        ("../../etc/x", "___.._etc_x"),
        ("...x.y", "___x.y"),
    ],
)
def test_keygen_names_stay_in_directory(runner, tmp_path, name, stem):
    out = tmp_path / "keys"
    result = runner.invoke(main, ["keygen", "--name", name, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == [f"{stem}.key", f"{stem}.pub"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keys"]


def test_keygen_help_says_how_names_map(runner):
    result = runner.invoke(main, ["keygen", "--help"])
    help_text = " ".join(result.stdout.split())
    assert "so do leading dots, so the files are never hidden" in help_text


def test_unopenable_database_one_line(runner, tmp_path, key_file):
    db = tmp_path / "no-such-dir" / "log.db"
    result = runner.invoke(
        main, ["log", "init", "--db", str(db), "--key", str(key_file)]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: database {db} failed: unable to open database file; check that "
        "its directory exists and that this user may create files there\n"
    )


def test_file_that_is_not_a_database(runner, tmp_path, key_file):
    db = tmp_path / "notes.txt"
    db.write_text("plain text, not an SQLite database\n" * 10)
    for command in (
        ["log", "checkpoint", "--db", str(db)],
        ["log", "init", "--db", str(db), "--key", str(key_file)],
    ):
        result = runner.invoke(main, command)
        assert result.exit_code == 1, command
        assert result.stderr == (
            f"Error: database {db} failed: file is not a database; check that "
            "the path names a log database\n"
        ), command
        assert "sqlalche.me" not in result.output
