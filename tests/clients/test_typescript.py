"""The TypeScript client's own tests (``node --test``), the last of them
against a real ``agentgate gate serve`` that this test starts on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="install the server extra")

from tests.enforcement.test_gate_http import write_gate_files  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"
AGENTGATE = str(Path(sys.executable).parent / "agentgate")
TOKEN = "ts-agent-token-0123456789abcdef"
SCOPE = {"capabilities": [{"tool": "get_balance"}, {"tool": "send_money"}]}


@pytest.fixture
def node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; install Node.js 18.17 or later to run "
                    "the TypeScript client's tests")
    return node


@pytest.fixture
def gate_server(tmp_path):
    """Start ``agentgate gate serve`` on a free port; yield its URL and files."""
    files = write_gate_files(tmp_path / "gate", scope=SCOPE)
    server = subprocess.Popen(
        [AGENTGATE, "gate", "serve", "--config", str(files.config), "--port", "0",
         "--log-level", "warning"],
        env={**os.environ, "AGENTGATE_GATE_TOKEN": TOKEN},
        stderr=subprocess.PIPE, text=True)
    try:
        url = None
        seen = []
        for line in server.stderr:
            seen.append(line)
            match = re.search(r"serving gate on (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url is not None, f"the gate server did not start: {''.join(seen)}"
        # Keep reading, so that a full pipe never blocks the server.
        threading.Thread(target=server.stderr.read, daemon=True).start()
        yield url, files
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_node_tests_pass_against_gate(node, gate_server):
    url, files = gate_server
    tests = sorted(str(path.relative_to(PACKAGE))
                   for path in (PACKAGE / "test").glob("*.test.js"))

    finished = subprocess.run(
        [node, "--test", *tests], cwd=PACKAGE, capture_output=True, text=True,
        timeout=300,
        env={**os.environ, "AGENTGATE_GATE_URL": url, "AGENTGATE_GATE_TOKEN": TOKEN,
             "AGENTGATE_LOG_KEY": files.log_key})

    report = finished.stdout + finished.stderr
    assert finished.returncode == 0, report
    assert "# fail 0" in report
    assert "# skipped 0" in report, "the tests against the gate were skipped"
    decisions = [r for r in files.records() if r["type"] == "decision"]
    outcomes = [r for r in files.records() if r["type"] == "outcome"]
    assert {(r["tool"], r["verdict"]) for r in decisions} == {
        ("send_money", "allow"), ("delete_file", "deny"), ("send_money", "hold"),
        ("get_balance", "allow")}
    assert len(outcomes) == 4
