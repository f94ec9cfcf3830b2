"""The witness: add-checkpoint status codes, cosignatures and durable state."""

import json
import os
import stat
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from tests.verifier.servers import serve_in_thread
from tests.verifier.signing import TestLog, TestSigner, b64, cosigner_keys
from verifier.cosignature import (
    parse_cosigner_key,
    parse_cosigner_signer_key,
    verify_cosignatures,
)
from verifier.errors import MalformedInput, Unavailable
from verifier.witness import Witness, WitnessState, make_server, parse_witness_config
from verifier.witness_cli import witness as witness_command

ORIGIN = "agentgate.example/witnessed"
LOG_SIGNER = TestSigner.from_seed_text(ORIGIN, "witness tests: log")
OTHER_SIGNER = TestSigner.from_seed_text(ORIGIN, "witness tests: not the log")
LOG = TestLog(LOG_SIGNER, ORIGIN, 40)
SIGNER_TEXT, VERIFIER_TEXT = cosigner_keys("witness.example/w1", "witness tests: w1")
NOW = 1_767_225_600


def proof_lines(first: int, second: int) -> str:
    return "".join(b64(h) + "\n" for h in LOG.tree.proof(first, second))


def body(old: int, checkpoint: str, proof: str = "") -> bytes:
    return f"old {old}\n{proof}\n{checkpoint}".encode()


class Running:
    """A witness over a state file, serving on 127.0.0.1."""

    def __init__(self, state_path):
        self.state = WitnessState(state_path)
        self.witness = Witness(
            parse_cosigner_signer_key(SIGNER_TEXT),
            parse_witness_config(f"log {LOG_SIGNER.verifier_key}\n"),
            self.state,
            clock=lambda: NOW,
        )

    def post(self, data: bytes, path="/add-checkpoint", method="POST"):
        request = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return (
                    response.status,
                    response.read(),
                    response.headers["Content-Type"],
                )
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers["Content-Type"]


@pytest.fixture
def running(tmp_path):
    witness = Running(tmp_path / "state.json")
    with serve_in_thread(make_server(witness.witness)) as url:
        witness.url = url
        yield witness
    witness.state.close()


def test_first_checkpoint_cosigned(running):
    checkpoint = LOG.checkpoint(10)
    status, answer, content_type = running.post(body(0, checkpoint))

    assert status == 200
    assert content_type == "text/plain; charset=utf-8"
    found = verify_cosignatures(
        checkpoint + answer.decode(), [parse_cosigner_key(VERIFIER_TEXT)]
    )
    assert [c.timestamp for c in found] == [NOW]


def test_consistent_growth_cosigned(running):
    assert running.post(body(0, LOG.checkpoint(10)))[0] == 200
    status, answer, _ = running.post(body(10, LOG.checkpoint(40), proof_lines(10, 40)))
    assert status == 200
    assert answer.decode().startswith("\u2014 witness.example/w1 ")


def test_same_checkpoint_again_cosigned(running):
    running.post(body(0, LOG.checkpoint(10)))
    assert running.post(body(10, LOG.checkpoint(10)))[0] == 200


def test_stale_old_size_is_409_with_latest_size(running):
    running.post(body(0, LOG.checkpoint(10)))
    status, answer, content_type = running.post(body(0, LOG.checkpoint(40)))
    assert (status, answer, content_type) == (409, b"10\n", "text/x.tlog.size")


def test_same_size_other_root_is_409(running):
    running.post(body(0, LOG.checkpoint(10)))
    forked = TestLog(LOG_SIGNER, ORIGIN, 12)
    forked.entries[3] = b'{"forked":true}'
    forked.tree = type(LOG.tree)(forked.entries)
    status, answer, content_type = running.post(body(10, forked.checkpoint(10)))
    assert (status, answer, content_type) == (409, b"10\n", "text/x.tlog.size")


def test_bad_proof_is_422(running):
    running.post(body(0, LOG.checkpoint(10)))
    wrong = proof_lines(10, 40).split("\n")
    wrong[0], wrong[1] = wrong[1], wrong[0]
    status, answer, _ = running.post(body(10, LOG.checkpoint(40), "\n".join(wrong)))
    assert status == 422
    assert answer.startswith(b"consistency proof for tree sizes 10 -> 40: expected")


def test_short_proof_is_422(running):
    running.post(body(0, LOG.checkpoint(10)))
    short = "".join(proof_lines(10, 40).splitlines(keepends=True)[:-1])
    status, answer, _ = running.post(body(10, LOG.checkpoint(40), short))
    assert status == 422
    assert b"expected 6 hashes, got 5" in answer


def test_fork_is_not_cosigned_and_state_kept(running):
    running.post(body(0, LOG.checkpoint(10)))
    forked = TestLog(LOG_SIGNER, ORIGIN, 40)
    forked.entries[2] = b'{"rewritten":1}'
    forked.tree = type(LOG.tree)(forked.entries)
    proof = "".join(b64(h) + "\n" for h in forked.tree.proof(10, 40))
    assert running.post(body(10, forked.checkpoint(40), proof))[0] == 422
    assert running.state.get(ORIGIN).size == 10


def test_unknown_origin_is_404(running):
    stranger = TestLog(
        TestSigner.from_seed_text("other.example/log", "x"), "other.example/log", 3
    )
    status, answer, _ = running.post(body(0, stranger.checkpoint()))
    assert status == 404
    assert answer == b"unknown log origin 'other.example/log'\n"


def test_wrong_key_is_403(running):
    impostor = TestLog(OTHER_SIGNER, ORIGIN, 10)
    status, answer, _ = running.post(body(0, impostor.checkpoint()))
    assert status == 403
    assert b"not signed by a trusted key" in answer


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"old 0\n", b"found no blank line"),
        (b"new 0\n\n" + LOG.checkpoint(3).encode(), b"line 1: expected 'old <size>'"),
        (
            b"old 01\n\n" + LOG.checkpoint(3).encode(),
            b"no sign, spaces or leading zeros",
        ),
        (b"old 2\nnot-base64\n\n" + LOG.checkpoint(3).encode(), b"line 2 (proof hash)"),
        (b"old 0\n\nnot a note\n", b"malformed checkpoint"),
        (
            b"old 0\n" + b"A" * 43 + b"=\n\n" + LOG.checkpoint(3).encode(),
            b"old size 0 needs an empty proof, got 1 lines",
        ),
        (
            b"old 5\n\n" + LOG.checkpoint(3).encode(),
            b"old size 5 exceeds the checkpoint size 3",
        ),
        (b"\xff\n\n", b"not UTF-8"),
    ],
)
def test_malformed_is_400(running, data, message):
    status, answer, _ = running.post(data)
    assert status == 400
    assert message in answer


def test_too_many_proof_lines_is_400(running):
    proof = (b64(bytes(32)) + "\n") * 64
    status, answer, _ = running.post(body(1, LOG.checkpoint(3), proof))
    assert status == 400
    assert answer == b"expected at most 63 proof lines, got 64\n"


def test_other_paths_and_methods(running):
    assert running.post(b"", path="/other")[0] == 404
    assert running.post(None, method="GET")[0] == 405
    assert running.post(b"x" * 70_000)[0] == 413


def test_state_persists_across_restart(tmp_path):
    first = Running(tmp_path / "state.json")
    assert first.witness.add_checkpoint(body(0, LOG.checkpoint(10))).status == 200
    first.state.close()

    second = Running(tmp_path / "state.json")
    answer = second.witness.add_checkpoint(body(0, LOG.checkpoint(40)))
    assert (answer.status, answer.body) == (409, b"10\n")
    answer = second.witness.add_checkpoint(
        body(10, LOG.checkpoint(40), proof_lines(10, 40))
    )
    assert answer.status == 200
    second.state.close()

    document = json.loads((tmp_path / "state.json").read_text())
    assert document["version"] == 1
    assert document["logs"][ORIGIN]["size"] == 40
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_second_process_on_same_state_refused(tmp_path):
    first = WitnessState(tmp_path / "state.json")
    with pytest.raises(Unavailable, match="in use by another process"):
        WitnessState(tmp_path / "state.json")
    first.close()


def test_corrupt_state_refused(tmp_path):
    (tmp_path / "state.json").write_text('{"version": 2}')
    with pytest.raises(MalformedInput, match="restore it from a backup"):
        WitnessState(tmp_path / "state.json")


def test_config_origin_with_spaces():
    logs = parse_witness_config(
        f"# logs\n\nlog {LOG_SIGNER.verifier_key} rekor.example - 123\n"
        f"log {OTHER_SIGNER.verifier_key}\n"
    )
    assert sorted(logs) == [ORIGIN, "rekor.example - 123"]


def test_config_errors():
    with pytest.raises(MalformedInput, match="line 1: expected 'log <verifier key>"):
        parse_witness_config("witness x\n")
    with pytest.raises(MalformedInput, match="expected at least one 'log' line"):
        parse_witness_config("# nothing\n")


def test_keygen_and_key_file_mode(tmp_path):
    result = CliRunner().invoke(
        witness_command, ["keygen", "--name", "w.example/w9", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    key_file = tmp_path / "w.example_w9.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert parse_cosigner_key((tmp_path / "w.example_w9.pub").read_text().strip())

    key_file.chmod(0o644)
    config = tmp_path / "logs"
    config.write_text(f"log {LOG_SIGNER.verifier_key}\n")
    served = CliRunner().invoke(
        witness_command,
        [
            "serve",
            "--key",
            str(key_file),
            "--config",
            str(config),
            "--state",
            str(tmp_path / "state.json"),
            "--port",
            "0",
        ],
    )
    assert served.exit_code == 2
    assert "has mode 0644, so other users can read it" in served.output
    assert "chmod 600" in served.output


def test_unwritable_state_is_503(tmp_path):
    running = Running(tmp_path / "state.json")
    # A directory in the state file's place makes the rename fail, even for root.
    (tmp_path / "state.json").mkdir()
    answer = running.witness.add_checkpoint(body(0, LOG.checkpoint(10)))
    running.state.close()

    assert answer.status == 503
    assert answer.body == b"the witness could not store its state; try again\n"
    assert running.state.get(ORIGIN) is None


def test_serve_on_a_port_in_use_exits_2(tmp_path):
    # Found by a new user: a second witness on the same port printed a
    # traceback instead of a message.
    import socket

    made = CliRunner().invoke(
        witness_command, ["keygen", "--name", "w.example/w8", "--out", str(tmp_path)]
    )
    assert made.exit_code == 0, made.output
    config = tmp_path / "logs"
    config.write_text(f"log {LOG_SIGNER.verifier_key}\n")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        served = CliRunner().invoke(witness_command, [
            "serve", "--key", str(tmp_path / "w.example_w8.key"), "--config",
            str(config), "--state", str(tmp_path / "state.json"), "--port", str(port)])

    assert served.exit_code == 2, served.output
    assert f"cannot listen on 127.0.0.1 port {port}" in served.output
    assert served.exception is None or isinstance(served.exception, SystemExit)
