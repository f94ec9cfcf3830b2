"""The monitor: consistent growth, and one case per misbehaviour, with exit codes."""

import json

import pytest
from click.testing import CliRunner

from tests.verifier.reference import ReferenceTree
from tests.verifier.servers import serve_directory
from tests.verifier.signing import TestLog, TestSigner
from tests.verifier.tiles_writer import leaf_hash, write_tiles
from verifier.cosignature import generate_cosigner, parse_cosigner_signer_key
from verifier.monitor import DEFAULT_RECHECK, Monitor, Outcome
from verifier.monitor_cli import monitor as monitor_command
from verifier.note import parse_verifier_key
from verifier.tiles import TiledLog
from verifier.witness_policy import parse_witness_policy

ORIGIN = "agentgate.example/monitored"
SIGNER = TestSigner.from_seed_text(ORIGIN, "monitor tests: log")
OTHER = TestSigner.from_seed_text(ORIGIN, "monitor tests: another key")
LOG = TestLog(SIGNER, ORIGIN, 600)


def rewritten(index: int, count: int = 600) -> TestLog:
    """Return the log with entry ``index`` changed, signed with the log's key."""
    log = TestLog(SIGNER, ORIGIN, count)
    log.entries[index] = b'{"rewritten":' + str(index).encode() + b"}"
    log.tree = ReferenceTree(log.entries)
    return log


class Served:
    """A tiles directory that tests publish logs into, and a monitor of it."""

    def __init__(self, tmp_path):
        self.directory = tmp_path / "log"
        self.state = tmp_path / "state.json"

    def publish(
        self, log: TestLog, size: int, checkpoint: str | None = None, leaves=None
    ) -> None:
        write_tiles(
            self.directory,
            log.entries[:size],
            checkpoint or log.checkpoint(size),
            leaves,
        )

    def publish_entries_only(self, log: TestLog, size: int) -> None:
        """Publish the entries of ``log`` under the tree and checkpoint of LOG."""
        self.publish(
            log,
            size,
            checkpoint=LOG.checkpoint(size),
            leaves=[leaf_hash(e) for e in LOG.entries[:size]],
        )

    def check(self, policy=None, keys=(SIGNER,), recheck=DEFAULT_RECHECK):
        monitor = Monitor(
            TiledLog(str(self.directory)),
            [parse_verifier_key(k.verifier_key) for k in keys],
            self.state,
            policy=policy,
            recheck=recheck,
        )
        return monitor.check(now=2_000_000_000)

    def recheck_position(self) -> int:
        return json.loads(self.state.read_text())["recheck_position"]


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path)
    served.directory.mkdir()
    return served


def test_first_check_and_growth(served):
    served.publish(LOG, 10)
    first = served.check()
    assert (first.outcome, first.message) == (
        Outcome.OK,
        "first checkpoint, tree size 10",
    )

    served.publish(LOG, 300)
    grown = served.check()
    assert (grown.outcome, grown.message) == (
        Outcome.OK,
        "tree size 300 extends size 10",
    )

    served.publish(LOG, 600)
    assert served.check().message == "tree size 600 extends size 300"
    assert served.check().message == "tree size 600 unchanged"


def test_state_files(served):
    served.publish(LOG, 300)
    served.check()

    document = json.loads(served.state.read_text())
    assert document["size"] == 300
    assert document["origin"] == ORIGIN
    assert document["checkpoint"] == LOG.checkpoint(300)
    leaves = (served.state.parent / "state.json.leaves").read_bytes()
    assert leaves == b"".join(leaf_hash(e) for e in LOG.entries[:300])


def test_rollback(served):
    served.publish(LOG, 40)
    served.check()
    served.publish(LOG, 30)
    report = served.check()

    assert report.outcome == Outcome.ROLLBACK
    assert report.exit_code == 5
    assert report.message == (
        "rollback: the checkpoint has tree size 30, smaller than size 40 seen before; "
        "leaves from index 30 on are missing"
    )


def test_fork_same_size_names_index(served):
    served.publish(LOG, 40)
    served.check()
    served.publish(rewritten(7), 40)
    report = served.check()

    assert report.outcome == Outcome.FORK
    assert report.exit_code == 6
    assert report.first_bad_index == 7
    assert "leaf 7 differs from the leaf seen before" in report.message


def test_fork_larger_size_names_index(served):
    served.publish(LOG, 300)
    served.check()
    served.publish(rewritten(3), 600)
    report = served.check()

    assert report.outcome == Outcome.FORK
    assert report.first_bad_index == 3
    assert report.message.startswith(
        "fork: the signed checkpoint of size 600 does not extend size 300 seen before"
    )


def test_fork_in_partial_tile_names_index(served):
    served.publish(LOG, 20)
    served.check()
    served.publish(rewritten(19), 25)
    report = served.check()
    assert (report.outcome, report.first_bad_index) == (Outcome.FORK, 19)


def test_signed_fork_with_old_tiles_is_inconsistent(served):
    # The log signed a forked root but still serves the honest tiles.
    served.publish(LOG, 40)
    served.check()
    served.publish(LOG, 60, checkpoint=rewritten(5).checkpoint(60))
    report = served.check()

    assert report.outcome == Outcome.INCONSISTENT
    assert report.exit_code == 7
    assert "do not hash to its signed root" in report.message


def test_tiles_not_matching_first_checkpoint(served):
    leaves = [leaf_hash(e) for e in LOG.entries[:50]]
    leaves[12] = bytes(32)
    served.publish(LOG, 50, leaves=leaves)
    report = served.check()
    assert report.outcome == Outcome.INCONSISTENT
    assert report.message.startswith("inconsistent: the level 0 tiles of tree size 50")


def test_bad_higher_tile_is_inconsistent(served):
    served.publish(LOG, 300)
    served.check()
    served.publish(LOG, 600)
    (served.directory / "tile/1/000.p/2").write_bytes(bytes(64))
    report = served.check()

    assert report.outcome == Outcome.INCONSISTENT
    assert "the proof computed from the higher tiles fails" in report.message


def test_bad_signature(served):
    served.publish(LOG, 10, checkpoint=TestLog(OTHER, ORIGIN, 10).checkpoint())
    report = served.check()
    assert report.outcome == Outcome.SIGNATURE
    assert report.exit_code == 3
    assert "not signed by a trusted key" in report.message


def test_witness_policy(served):
    signer_text, key_text = generate_cosigner("witness.example/w1")
    witness = parse_cosigner_signer_key(signer_text)
    policy = parse_witness_policy(f"witness w1 {key_text}\nquorum 1\n")
    body = LOG.checkpoint(10)
    text_end = body.index("\n\n") + 1

    served.publish(LOG, 10)
    report = served.check(policy)
    assert (report.outcome, report.exit_code) == (Outcome.WITNESS, 4)
    assert "got 0 (none)" in report.message

    served.publish(LOG, 10, checkpoint=body + witness.cosign(body[:text_end], 1000))
    assert served.check(policy).outcome == Outcome.OK


def test_unavailable(served):
    report = served.check()
    assert (report.outcome, report.exit_code) == (Outcome.UNAVAILABLE, 8)


def test_corrupt_state(served):
    served.publish(LOG, 10)
    served.state.write_text("{}")
    report = served.check()
    assert (report.outcome, report.exit_code) == (Outcome.MALFORMED, 1)
    assert "restore it from a backup" in report.message


def test_leaves_file_shorter_than_state(served):
    served.publish(LOG, 10)
    served.check()
    served.publish(LOG, 20)
    (served.state.parent / "state.json.leaves").write_bytes(bytes(32))
    report = served.check()
    assert report.outcome == Outcome.MALFORMED
    assert "contains 1 leaf hashes, but the state records 10" in report.message


# -- entries against their leaf hashes ---------------------------------------------


def test_bad_entry_on_first_check(served):
    served.publish_entries_only(rewritten(7), 40)
    report = served.check()

    assert report.outcome == Outcome.ENTRY
    assert report.exit_code == 9
    assert report.first_bad_index == 7
    assert report.message.startswith("entry mismatch: entry 7 hashes to ")
    assert "but the level 0 tile contains" in report.message
    assert not served.state.exists()


def test_bad_new_entry_names_index(served):
    served.publish(LOG, 300)
    served.check(recheck=0)
    served.publish_entries_only(rewritten(450), 600)
    report = served.check(recheck=0)

    assert (report.outcome, report.first_bad_index) == (Outcome.ENTRY, 450)
    assert (report.old_size, report.new_size) == (300, 600)
    # The state stays at size 300, so the next check reports it again.
    assert json.loads(served.state.read_text())["size"] == 300
    again = served.check(recheck=0)
    assert (again.outcome, again.first_bad_index) == (Outcome.ENTRY, 450)


def test_new_entries_in_partial_tile_checked(served):
    served.publish(LOG, 20)
    served.check(recheck=0)
    served.publish_entries_only(rewritten(22), 25)
    report = served.check(recheck=0)
    assert (report.outcome, report.first_bad_index) == (Outcome.ENTRY, 22)


def test_recheck_round_robin_reaches_old_bundle(served):
    # 600 leaves are 3 bundles; one per check reaches bundle 2 on the third.
    served.publish(LOG, 600)
    served.check(recheck=1)
    assert served.recheck_position() == 0
    served.publish_entries_only(rewritten(520), 600)

    first = served.check(recheck=1)
    assert first.outcome == Outcome.OK
    assert served.recheck_position() == 1
    second = served.check(recheck=1)
    assert second.outcome == Outcome.OK
    assert served.recheck_position() == 2
    third = served.check(recheck=1)

    assert third.outcome == Outcome.ENTRY
    assert third.first_bad_index == 520
    assert "the monitor accepted leaf hash" in third.message
    assert third.message.endswith("the entry changed after it was seen")
    assert served.recheck_position() == 2


def test_recheck_position_wraps(served):
    served.publish(LOG, 600)
    served.check(recheck=2)
    assert served.check(recheck=2).ok
    assert served.recheck_position() == 2
    assert served.check(recheck=2).ok
    assert served.recheck_position() == 1


def test_recheck_all_finds_old_entry_at_once(served):
    served.publish(LOG, 600)
    served.check()
    served.publish_entries_only(rewritten(520), 600)
    report = served.check(recheck="all")
    assert (report.outcome, report.first_bad_index) == (Outcome.ENTRY, 520)


def test_recheck_all_names_first_of_two(served):
    log = rewritten(300)
    log.entries[12] = b'{"rewritten":12}'
    served.publish(LOG, 600)
    served.check()
    served.publish_entries_only(log, 600)
    report = served.check(recheck="all")
    assert report.first_bad_index == 12


def test_recheck_covers_old_part_of_grown_tile(served):
    served.publish(LOG, 20)
    served.check()
    served.publish_entries_only(rewritten(3), 30)
    report = served.check(recheck=1)
    assert (report.outcome, report.first_bad_index) == (Outcome.ENTRY, 3)


def test_recheck_zero_misses_old_entry(served):
    served.publish(LOG, 600)
    served.check()
    served.publish_entries_only(rewritten(520), 600)
    assert served.check(recheck=0).ok


def test_honest_log_passes_every_recheck(served):
    served.publish(LOG, 300)
    assert served.check(recheck="all").ok
    served.publish(LOG, 600)
    assert served.check(recheck="all").ok
    for _ in range(4):
        assert served.check(recheck=1).ok


def test_damaged_bundle_names_first_unreadable_entry(served):
    served.publish(LOG, 300)
    served.check()
    path = served.directory / "tile/entries/000"
    path.write_bytes(path.read_bytes()[:-5])
    report = served.check(recheck="all")

    assert (report.outcome, report.first_bad_index) == (Outcome.ENTRY, 255)
    assert "entry 255 claims" in report.message
    assert report.message.endswith("entry 255 cannot be read")


def test_state_without_recheck_position_loads(served):
    served.publish(LOG, 600)
    served.check()
    document = json.loads(served.state.read_text())
    del document["recheck_position"]
    served.state.write_text(json.dumps(document))

    assert served.check(recheck=1).ok
    assert served.recheck_position() == 1


def test_state_with_bad_recheck_position(served):
    served.publish(LOG, 10)
    served.check()
    document = json.loads(served.state.read_text())
    document["recheck_position"] = -1
    served.state.write_text(json.dumps(document))

    report = served.check()
    assert report.outcome == Outcome.MALFORMED
    assert "recheck_position: expected an integer >= 0, got -1" in report.message


def test_recheck_argument_checked():
    with pytest.raises(ValueError, match="expected an integer >= 0 or 'all', got -2"):
        Monitor(TiledLog("."), [], "state.json", recheck=-2)


def run_cli(*args):
    result = CliRunner().invoke(monitor_command, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def test_cli_once_over_http(served, tmp_path):
    key_file = tmp_path / "log.pub"
    key_file.write_text(SIGNER.verifier_key + "\n")
    served.publish(LOG, 40)
    with serve_directory(served.directory) as url:
        first = run_cli(
            url, "--key", str(key_file), "--state", str(served.state), "--once"
        )
        assert first.exit_code == 0
        assert first.stdout == f"OK {url}: first checkpoint, tree size 40\n"

        served.publish(rewritten(9), 40)
        forked = run_cli(
            url, "--key", str(key_file), "--state", str(served.state), "--once"
        )
    assert forked.exit_code == 6
    assert forked.stderr.startswith("agentgate monitor: fork: ")
    assert "leaf 9" in forked.stderr
    assert forked.stderr.count("\n") == 1


def test_cli_exits_on_problem_without_once(served):
    served.publish(LOG, 40)
    run_cli(
        str(served.directory),
        "--key",
        SIGNER.verifier_key,
        "--state",
        str(served.state),
        "--once",
    )
    served.publish(LOG, 39)
    result = run_cli(
        str(served.directory),
        "--key",
        SIGNER.verifier_key,
        "--state",
        str(served.state),
        "--interval",
        "0.1",
    )
    assert result.exit_code == 5
    assert result.stderr.startswith("agentgate monitor: rollback: ")


def test_cli_unreachable_once(served):
    result = run_cli(
        "http://127.0.0.1:9/",
        "--key",
        SIGNER.verifier_key,
        "--state",
        str(served.state),
        "--once",
    )
    assert result.exit_code == 8
    assert result.stderr.startswith(
        "agentgate monitor: unavailable: GET http://127.0.0.1:9/"
    )


def test_cli_bad_key_is_usage_error(served):
    result = run_cli(
        str(served.directory),
        "--key",
        "nonsense",
        "--state",
        str(served.state),
        "--once",
    )
    assert result.exit_code == 2
    assert "expected <name>+<key id hex>+<base64 key>" in result.stderr


def test_cli_recheck_all_exit_code(served):
    served.publish(LOG, 40)
    common = ["--key", SIGNER.verifier_key, "--state", str(served.state), "--once"]
    assert run_cli(str(served.directory), *common).exit_code == 0
    served.publish_entries_only(rewritten(11), 40)

    assert run_cli(str(served.directory), *common, "--recheck", "0").exit_code == 0
    result = run_cli(str(served.directory), *common, "--recheck", "all")
    assert result.exit_code == 9
    assert result.stderr.startswith(
        "agentgate monitor: entry-mismatch: entry mismatch: entry 11 hashes to "
    )


def test_cli_bad_recheck_is_usage_error(served):
    result = run_cli(
        str(served.directory),
        "--key",
        SIGNER.verifier_key,
        "--state",
        str(served.state),
        "--recheck",
        "some",
        "--once",
    )
    assert result.exit_code == 2
    assert "expected a number of bundles >= 0 or 'all', got 'some'" in result.stderr
