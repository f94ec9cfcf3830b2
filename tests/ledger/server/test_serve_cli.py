"""``agentgate serve``: a real server process, its token rules and its errors."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import verifier
from enforcement.cli import main
from ledger import Ledger, write_key_pair
from ledger.cli import serve as serve_command

from .conftest import ORIGIN, TOKEN, auth, record

ROOT = Path(__file__).parents[3]
RUN_CLI = "from enforcement.cli import main; main()"
START_TIMEOUT = 20.0


@pytest.fixture
def key_file(tmp_path, signer):
    directory = tmp_path / "keys"
    directory.mkdir()
    return write_key_pair(signer, directory)[0]


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "write.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


class ServeProcess:
    """``agentgate serve`` in a child process; its stderr is read by a thread."""

    def __init__(self, args, env=None):
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, "serve", *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stderr:
            self.stderr.append(line)
            self.lines.put(line)

    def wait_for_address(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            found = re.search(r"serving log \S+ on (http://\S+)", line)
            if found:
                return found.group(1)
        raise AssertionError("server did not start:\n" + "".join(self.stderr))

    def stop(self):
        """Send SIGTERM and return the exit status.

        uvicorn shuts down, then raises the signal again, so a clean stop
        ends with -SIGTERM.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(START_TIMEOUT)


@pytest.fixture
def serve():
    started = []

    def _serve(args, env=None):
        process = ServeProcess([str(arg) for arg in args], env)
        started.append(process)
        return process

    yield _serve
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def test_serve_appends_and_stops_cleanly(serve, tmp_path, key_file, token_file, signer):
    db = tmp_path / "log.db"
    process = serve(["--db", db, "--key", key_file, "--port", 0,
                     "--token-file", token_file])
    base_url = process.wait_for_address()

    response = httpx.post(base_url + "/v1/entries", content=record(1), headers=auth())
    checkpoint = httpx.get(base_url + "/checkpoint").text

    assert response.status_code == 200
    verifier.verify_receipt(response.json()["receipt"], [str(signer.verifier_key)])
    assert process.stop() == -signal.SIGTERM
    stderr = "".join(process.stderr)
    assert f"stopped serving log {ORIGIN} at size 2" in stderr
    assert TOKEN not in stderr
    with Ledger.open(db, signer) as ledger:
        assert ledger.size == 2
        assert ledger.latest_checkpoint() == checkpoint


def test_serve_takes_token_from_environment(serve, tmp_path, key_file):
    process = serve(["--db", tmp_path / "log.db", "--key", key_file, "--port", 0],
                    env={"AGENTGATE_WRITE_TOKEN": TOKEN})
    base_url = process.wait_for_address()

    response = httpx.post(base_url + "/v1/entries", content=record(1), headers=auth())

    assert response.status_code == 200
    assert process.stop() == -signal.SIGTERM


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, args, env=None):
    environment = {"AGENTGATE_WRITE_TOKEN": None, **(env or {})}
    return runner.invoke(main, ["serve", *map(str, args)], env=environment)


def test_token_file_readable_by_others(runner, tmp_path, key_file, token_file):
    token_file.chmod(0o644)
    result = invoke(runner, ["--db", tmp_path / "log.db", "--key", key_file,
                             "--token-file", token_file])

    assert result.exit_code == 2
    assert (
        f"token file {token_file} has mode 0644, so group or others can access it; "
        f"run: chmod 600 {token_file}" in result.stderr
    )
    assert not (tmp_path / "log.db").exists()


def test_missing_token(runner, tmp_path, key_file):
    result = invoke(runner, ["--db", tmp_path / "log.db", "--key", key_file])

    assert result.exit_code == 2
    assert (
        "Error: no write token: pass --token-file FILE (mode 0600) or set "
        "AGENTGATE_WRITE_TOKEN" in result.stderr
    )


@pytest.mark.parametrize(
    ("token", "message"),
    [("short", "write token is 5 characters; expected 16 to 1024"),
     ("with a space 0123456789", "write token contains a space, control or "
      "non-ASCII character")],
)
def test_invalid_token_from_environment(runner, tmp_path, key_file, token, message):
    result = invoke(runner, ["--db", tmp_path / "log.db", "--key", key_file],
                    env={"AGENTGATE_WRITE_TOKEN": token})

    assert result.exit_code == 2
    assert message in result.stderr
    assert token not in result.stderr


def test_missing_token_file(runner, tmp_path, key_file):
    missing = tmp_path / "nope.token"
    result = invoke(runner, ["--db", tmp_path / "log.db", "--key", key_file,
                             "--token-file", missing])

    assert result.exit_code == 2
    assert f"token file {missing} not found" in result.stderr


def test_key_of_another_log(runner, tmp_path, key_file, token_file, other_signer):
    db = tmp_path / "log.db"
    Ledger.open(db, other_signer).close()
    result = invoke(runner, ["--db", db, "--key", key_file,
                             "--token-file", token_file])

    assert result.exit_code == 2
    assert "is not a key of log 'agentgate.test/log'" in result.stderr


def test_port_in_use(runner, tmp_path, key_file, token_file):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = invoke(runner, ["--db", tmp_path / "log.db", "--key", key_file,
                                 "--token-file", token_file, "--port", port])

    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in (
        result.stderr
    )


def test_serve_is_a_subcommand():
    assert main.get_command(None, "serve") is serve_command
