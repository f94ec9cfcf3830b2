"""The monitor: consistent growth, and one case per misbehaviour, with exit codes."""

import json

import pytest
from click.testing import CliRunner

from tests.verifier.reference import ReferenceTree
from tests.verifier.servers import serve_directory
from tests.verifier.signing import TestLog, TestSigner
from tests.verifier.tiles_writer import leaf_hash, write_tiles
from verifier.cosignature import generate_cosigner, parse_cosigner_signer_key
from verifier.monitor import Monitor, Outcome
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

    def check(self, policy=None, keys=(SIGNER,)):
        monitor = Monitor(
            TiledLog(str(self.directory)),
            [parse_verifier_key(k.verifier_key) for k in keys],
            self.state,
            policy=policy,
        )
        return monitor.check(now=2_000_000_000)


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
        "rollback: the checkpoint has tree size 30, smaller than size 40 seen before"
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
