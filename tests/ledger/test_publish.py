"""``agentgate publish``: the log as static C2SP tlog-tiles files.

The published directory is read three ways: by the verifier's tile reader,
by ``agentgate monitor``, and by a reader written here from the C2SP
tlog-tiles text that recomputes the root with the RFC 9162 reference tree.
"""

import base64
import fcntl
import hashlib
import logging
import os
import threading

import pytest
import rfc8785
from click.testing import CliRunner

from enforcement.cli import main
from ledger import InvalidRequest, Ledger, Signer, StorageError, write_key_pair
from ledger.publish import publish, read_published_checkpoint
from ledger.storage import Store
from verifier import open_checkpoint
from verifier.tiles import TiledLog

from .conftest import FIXED_NOW, ORIGIN, record, run_sql
from .rfc9162 import ReferenceTree

TILE = 256


# -- a tile reader written from https://c2sp.org/tlog-tiles --------------------


def tile_name(level, index, width):
    """The path of a tile: 3-digit groups, all but the last prefixed with x."""
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    name = "/".join(["x" + group for group in groups[:-1]] + [groups[-1]])
    suffix = "" if width == TILE else f".p/{width}"
    return f"tile/{level}/{name}{suffix}"


def read_published(directory):
    """Return (checkpoint lines, entries) after checking every tile the size needs."""
    note = (directory / "checkpoint").read_text("utf-8")
    origin, size_text, root_text = note.split("\n")[:3]
    size = int(size_text)
    entries = []
    leaf_hashes = []
    for index in range(-(-size // TILE)):
        width = min(TILE, size - index * TILE)
        hashes = (directory / tile_name(0, index, width)).read_bytes()
        assert len(hashes) == 32 * width
        leaf_hashes += [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
        bundle = (directory / tile_name("entries", index, width)).read_bytes()
        offset = 0
        while offset < len(bundle):
            length = int.from_bytes(bundle[offset : offset + 2], "big")
            entries.append(bundle[offset + 2 : offset + 2 + length])
            offset += 2 + length
        assert offset == len(bundle)
    assert len(entries) == size

    tree = ReferenceTree(entries)
    for index, entry in enumerate(entries):
        assert leaf_hashes[index] == hashlib.sha256(b"\x00" + entry).digest()
    # Hash i of tile n at level L is the hash of 256**L leaves from
    # (n * 256 + i) * 256**L.
    level = 1
    while size >> (8 * level):
        count = size >> (8 * level)
        span = TILE**level
        for index in range(-(-count // TILE)):
            width = min(TILE, count - index * TILE)
            hashes = (directory / tile_name(level, index, width)).read_bytes()
            for i in range(width):
                start = (index * TILE + i) * span
                assert hashes[32 * i : 32 * i + 32] == tree.mth(start, start + span)
        level += 1
    assert base64.b64decode(root_text) == tree.mth(0, size)
    return origin, size, entries


# -- fixtures -------------------------------------------------------------------


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "log.db"


@pytest.fixture
def key_file(tmp_path, signer):
    directory = tmp_path / "keys"
    directory.mkdir()
    key_path, _ = write_key_pair(signer, directory)
    return key_path


def grow(path, signer, size, batch=100):
    """Append test records until the log at ``path`` has ``size`` entries."""
    with Ledger.open(path, signer, now=FIXED_NOW) as ledger:
        while ledger.size < size:
            count = min(batch, size - ledger.size)
            items = [(record(ledger.size + i), None) for i in range(count)]
            ledger.append_batch(items)
        return ledger.latest_checkpoint()


def run_publish(path, out, signer=None, **options):
    with Ledger.open(path, signer, create=False) as ledger:
        store = Store.open(path)
        try:
            return publish(ledger, store, out, **options)
        finally:
            store.close()


def monitor(out, signer, state):
    return CliRunner().invoke(
        main,
        ["monitor", str(out), "--key", str(signer.verifier_key), "--state",
         str(state), "--once"],
    )


# -- readers --------------------------------------------------------------------


def test_independent_reader_recomputes_root(tmp_path, log_path, signer):
    note = grow(log_path, signer, 600)
    out = tmp_path / "pub"

    result = run_publish(log_path, out)

    assert result.published
    assert result.size == 600
    assert (out / "checkpoint").read_text() == note
    origin, size, entries = read_published(out)
    assert (origin, size) == (ORIGIN, 600)
    assert entries[1] == record(1)
    assert (out / "tile/0/002.p/88").exists()
    assert (out / "tile/1/000.p/2").exists()


def test_verifier_tiles_reader(tmp_path, log_path, signer):
    grow(log_path, signer, 300)
    out = tmp_path / "pub"
    run_publish(log_path, out)

    tiled = TiledLog(str(out))
    checkpoint, _ = open_checkpoint(
        tiled.checkpoint(), [str(signer.verifier_key)], ORIGIN
    )
    assert checkpoint.size == 300
    assert len(tiled.hash_tile(0, 0, 256)) == 256 * 32
    assert len(tiled.hash_tile(0, 1, 44)) == 44 * 32
    assert tiled.entry_bundle(1, 44)[-1] == record(299)
    assert tiled.hash_tile(1, 0, 1) == ReferenceTree(
        tiled.entry_bundle(0, 256)
    ).mth(0, 256)


def test_monitor_follows_publications(tmp_path, log_path, signer):
    out, state = tmp_path / "pub", tmp_path / "monitor.json"
    grow(log_path, signer, 300)
    run_publish(log_path, out)
    first = monitor(out, signer, state)
    assert first.exit_code == 0, first.output
    assert "first checkpoint, tree size 300" in first.stdout

    grow(log_path, signer, 1000)
    run_publish(log_path, out)
    second = monitor(out, signer, state)
    assert second.exit_code == 0, second.output
    assert "tree size 1000 extends size 300" in second.stdout


# -- incremental publication ----------------------------------------------------


def test_second_run_writes_only_new_tiles(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    grow(log_path, signer, 300)
    first = run_publish(log_path, out)
    full = out / "tile/0/000"
    before = full.stat()

    grow(log_path, signer, 600)
    second = run_publish(log_path, out)

    after = full.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # 0/001 and 0/002.p/88, their bundles, 1/000.p/2 and the checkpoint.
    assert first.files_written == 6
    assert second.files_written == 6
    assert second.previous_size == 300
    # The partial tiles of size 300 stay for readers of that checkpoint.
    assert (out / "tile/0/001.p/44").exists()
    read_published(out)


def test_same_size_again_writes_checkpoint_only(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    grow(log_path, signer, 300)
    run_publish(log_path, out)

    again = run_publish(log_path, out)

    assert again.files_written == 1
    assert again.previous_size == 300


def test_interrupted_run_keeps_previous_publication(tmp_path, log_path, signer):
    out, state = tmp_path / "pub", tmp_path / "monitor.json"
    grow(log_path, signer, 300)
    old_note = run_publish(log_path, out).note
    grow(log_path, signer, 600)
    # A directory where the last tile of the run must go makes its rename
    # fail, as a crash at that point would stop the run.
    obstacle = out / "tile/1/000.p/2"
    obstacle.mkdir(parents=True)

    with pytest.raises(OSError):
        run_publish(log_path, out)

    assert (out / "checkpoint").read_text() == old_note
    assert (out / "tile/0/001").exists()
    assert read_published(out)[1] == 300
    assert monitor(out, signer, state).exit_code == 0
    assert not list(out.rglob(".*.tmp"))

    obstacle.rmdir()
    full = (out / "tile/0/001").stat()
    resumed = run_publish(log_path, out)
    assert resumed.size == 600
    assert (out / "tile/0/001").stat().st_ino == full.st_ino
    assert read_published(out)[1] == 600
    assert monitor(out, signer, state).exit_code == 0


def test_concurrent_run_waits_for_lock(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    out.mkdir()
    grow(log_path, signer, 20)
    descriptor = os.open(out / ".agentgate-publish.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    results = []
    runner = threading.Thread(target=lambda: results.append(run_publish(log_path, out)))

    runner.start()
    runner.join(0.5)
    waited = runner.is_alive()
    published_while_locked = (out / "checkpoint").exists()
    os.close(descriptor)
    runner.join(10)

    assert waited
    assert not published_while_locked
    assert not runner.is_alive()
    assert results[0].size == 20


def test_altered_published_tile_stops_run(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    grow(log_path, signer, 300)
    run_publish(log_path, out)
    grow(log_path, signer, 600)
    # A full tile left by an interrupted run, then altered.
    (out / "tile/0/001").write_bytes(b"\x00" * 32 * 256)

    with pytest.raises(StorageError, match="already published with other content"):
        run_publish(log_path, out)
    assert read_published_checkpoint(out).size == 300


def test_directory_of_other_log_refused(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    grow(log_path, signer, 10)
    run_publish(log_path, out)
    other_path = tmp_path / "other.db"
    other = Signer.from_seed("agentgate.test/other", bytes(32))
    with Ledger.open(other_path, other, now=FIXED_NOW):
        pass

    with pytest.raises(InvalidRequest, match="publication of log 'agentgate.test/log'"):
        run_publish(other_path, out)


def test_other_history_refused(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    grow(log_path, signer, 10)
    run_publish(log_path, out)
    forked = tmp_path / "forked.db"
    with Ledger.open(forked, signer, now=FIXED_NOW) as ledger:
        ledger.append_batch([(record(100 + i), None) for i in range(20)])

    with pytest.raises(StorageError, match="another history of this log"):
        run_publish(forked, out)


def test_rollback_refused(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    grow(log_path, signer, 10)
    run_publish(log_path, out)
    smaller = tmp_path / "smaller.db"
    grow(smaller, signer, 5)

    with pytest.raises(InvalidRequest, match="tree size 10, but the log's latest"):
        run_publish(smaller, out)


def test_garbage_checkpoint_file_refused(tmp_path, log_path, signer):
    out = tmp_path / "pub"
    out.mkdir()
    (out / "checkpoint").write_text("not a checkpoint\n")
    grow(log_path, signer, 3)

    with pytest.raises(InvalidRequest, match="is not a checkpoint"):
        run_publish(log_path, out)


def test_large_entry_skips_its_bundle(tmp_path, log_path, signer, caplog):
    large = rfc8785.dumps({"type": "note", "version": 1, "text": "a" * 70000})
    with Ledger.open(log_path, signer, now=FIXED_NOW) as ledger:
        ledger.append(large)
    out = tmp_path / "pub"

    with caplog.at_level(logging.WARNING, logger="ledger.publish"):
        result = run_publish(log_path, out)

    assert result.published
    assert result.skipped_bundles == [0]
    assert (out / "tile/0/000.p/2").exists()
    assert not (out / "tile/entries/000.p/2").exists()
    assert "entry bundle 0 not published" in caplog.text


# -- command line ---------------------------------------------------------------


def test_cli_publishes_and_prints_checkpoint(tmp_path, log_path, signer):
    note = grow(log_path, signer, 20)
    out = tmp_path / "pub"

    result = CliRunner().invoke(
        main, ["publish", "--db", str(log_path), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == note
    assert f"published size 20 to {out} (3 files written, from size 0)" in (
        result.stderr
    )
    assert (out / "checkpoint").read_text() == note


def test_cli_signs_unstored_checkpoint_with_key(tmp_path, log_path, signer, key_file):
    grow(log_path, signer, 5)
    run_sql(log_path, "DELETE FROM checkpoints")
    out = tmp_path / "pub"
    args = ["publish", "--db", str(log_path), "--out", str(out)]

    without_key = CliRunner().invoke(main, args)
    with_key = CliRunner().invoke(main, args + ["--key", str(key_file)])

    assert without_key.exit_code == 2
    assert "has no stored checkpoint" in without_key.stderr
    assert with_key.exit_code == 0, with_key.output
    assert read_published_checkpoint(out).size == 5


def test_cli_missing_log(tmp_path):
    result = CliRunner().invoke(
        main, ["publish", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "none.db" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_cli_witness_url_needs_policy(tmp_path, log_path, signer):
    grow(log_path, signer, 2)
    result = CliRunner().invoke(
        main,
        ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
         "--witness-url", "w1=http://127.0.0.1:9"],
    )
    assert result.exit_code == 2
    assert "--witness-url needs --witness-policy" in result.stderr


def test_cli_world_readable_key_refused(tmp_path, log_path, signer, key_file):
    grow(log_path, signer, 2)
    os.chmod(key_file, 0o644)

    result = CliRunner().invoke(
        main,
        ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
         "--key", str(key_file)],
    )

    assert result.exit_code == 2
    assert "has mode 0644" in result.stderr
    assert f"chmod 600 {key_file}" in result.stderr
    assert not (tmp_path / "pub" / "checkpoint").exists()


def test_cli_unknown_option(tmp_path, log_path, signer):
    grow(log_path, signer, 2)

    result = CliRunner().invoke(
        main,
        ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
         "--witnesses", "w1"],
    )

    assert result.exit_code == 2
    assert "No such option '--witnesses'" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "value, message",
    [
        ("w1", "expected LABEL=URL"),
        ("=http://127.0.0.1:9", "expected LABEL=URL"),
    ],
)
def test_cli_malformed_witness_url(tmp_path, log_path, signer, value, message):
    grow(log_path, signer, 2)

    result = CliRunner().invoke(
        main,
        ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
         "--witness-url", value],
    )

    assert result.exit_code == 2
    assert message in result.stderr


def test_cli_missing_witness_policy_file(tmp_path, log_path, signer):
    grow(log_path, signer, 2)
    missing = tmp_path / "no-such.policy"

    result = CliRunner().invoke(
        main,
        ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
         "--witness-policy", str(missing)],
    )

    assert result.exit_code == 2
    assert f"witness policy file {missing} not found" in result.stderr
