"""Every HTTP server of AgentGate as a real ``agentgate`` process on 127.0.0.1.

``Server`` starts one command, waits for the line that names its address,
and keeps everything the process wrote to standard error, so that a test
can search the log for secrets after the process has stopped. The
``start_*`` functions write the files each server needs (keys, tokens, a
gate configuration) with the known secrets below.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from enforcement.identity import Identity
from ledger import Signer, write_key_pair
from tests.enforcement.adapters.test_mcp_proxy import CountingServer
from tests.enforcement.test_gate_http import write_gate_files
from verifier.cosignature import generate_cosigner

ROOT = Path(__file__).parents[2]
AGENTGATE = str(Path(sys.executable).parent / "agentgate")
START_TIMEOUT = 30.0

# The secrets the servers are started with; none may appear in any log.
LOG_TOKEN = "log-write-token-b1c9e3f0a7d24c6e"
GATE_TOKEN = "gate-agent-token-5e8a0c2d4f6b1a3c"
APPROVALS_TOKEN = "approvers-token-9d7f5b3a1c0e2d4f"
MCP_TOKEN = "mcp-client-token-2a4c6e8f0b1d3f5a"
WRONG_TOKEN = "wrong-token-offered-7c5a3e1f9d0b8a6c"
ORIGIN = "agentgate.test/security"
LOG_SEED = bytes(range(32))
APPROVER_SEED = bytes(range(32, 64))


@dataclass
class Secrets:
    """The token and private key texts of one server, to search logs for."""

    tokens: tuple[str, ...]
    keys: tuple[str, ...]

    def every_form(self) -> list[str]:
        """Return the secrets and the base64 seed inside each private key."""
        forms = list(self.tokens) + list(self.keys)
        # PRIVATE+KEY+<name>+<key id>+<base64>: the base64 may contain "+".
        forms += [key.split("+", 4)[4] for key in self.keys]
        return forms


class Server:
    """A command that serves HTTP; ``stderr`` keeps everything it logged."""

    def __init__(self, arguments: list[str], pattern: str, *,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 secrets: Secrets | None = None) -> None:
        self.secrets = secrets or Secrets((), ())
        self.process = subprocess.Popen(
            arguments, cwd=cwd or ROOT, env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.base_url = self._wait_for(pattern)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)

    def _wait_for(self, pattern: str) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            found = re.search(pattern, line)
            if found:
                return found.group(1).rstrip("/")
        self.stop()
        raise AssertionError(f"{self.process.args[:3]} did not start:\n{self.output}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """Stop the process with SIGINT (SIGKILL after the start timeout)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def secret_file(path: Path, text: str) -> Path:
    """Write ``text`` to a new file of mode 0600."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    return path


def start_log_server(directory: Path, log_level: str = "debug") -> Server:
    """Start ``agentgate serve`` over a new SQLite log with a known key."""
    directory.mkdir(parents=True, exist_ok=True)
    signer = Signer.from_seed(ORIGIN, LOG_SEED)
    key_path, _ = write_key_pair(signer, directory)
    token_file = secret_file(directory / "write.token", LOG_TOKEN)
    return Server(
        [AGENTGATE, "serve", "--db", str(directory / "log.db"), "--key",
         str(key_path), "--port", "0", "--token-file", str(token_file),
         "--max-body-bytes", "65536", "--log-level", log_level],
        r"serving log \S+ on (http://\S+)",
        secrets=Secrets((LOG_TOKEN,), (signer.signer_key(),)),
    )


def write_approvals_policy(directory: Path) -> Path:
    """Write the default policy plus approvals by the test approver; return its name.

    The name is relative to ``directory``, as the gate configuration wants.
    """
    approver = Identity.from_seed("approver.test", APPROVER_SEED)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policy.toml"
    path.write_text(
        (ROOT / "enforcement" / "policies" / "default.toml").read_text()
        + "\n[approvals]\n"
        + f'approvers = ["{approver.verifier_key}"]\n'
        + 'quorum = 1\nexpiry_seconds = 600\nrules = ["value.large-amount"]\n'
    )
    return path.relative_to(directory)


def start_gate_server(directory: Path, log_level: str = "debug") -> Server:
    """Start ``agentgate gate serve`` with agent and approver tokens and key."""
    files = write_gate_files(directory, policy=write_approvals_policy(directory))
    approver = Identity.from_seed("approver.test", APPROVER_SEED)
    approver_key = directory / "approver.key"
    approver.save(approver_key)
    token = secret_file(directory / "agent.token", GATE_TOKEN)
    approvals = secret_file(directory / "approvals.token", APPROVALS_TOKEN)
    return Server(
        [AGENTGATE, "gate", "serve", "--config", str(files.config), "--port", "0",
         "--token-file", str(token), "--approvals-token-file", str(approvals),
         "--approver-key", str(approver_key), "--log-level", log_level],
        r"serving gate on (http://\S+)",
        secrets=Secrets((GATE_TOKEN, APPROVALS_TOKEN),
                        (files.log_signer.signer_key(), approver.signer_key)),
    )


def start_approvals_server(directory: Path, log_level: str = "debug") -> Server:
    """Start ``agentgate approvals serve`` over an empty vault."""
    from enforcement.approvals_store import ApprovalStore

    directory.mkdir(parents=True, exist_ok=True)
    ApprovalStore.open(str(directory / "vault.db")).close()
    approver = Identity.from_seed("approver.test", APPROVER_SEED)
    approver_key = directory / "approver.key"
    approver.save(approver_key)
    token = secret_file(directory / "approvals.token", APPROVALS_TOKEN)
    return Server(
        [AGENTGATE, "approvals", "serve", "--store", str(directory / "vault.db"),
         "--key", str(approver_key), "--token-file", str(token), "--port", "0",
         "--log-level", log_level],
        r"serving approvals on (http://\S+)",
        secrets=Secrets((APPROVALS_TOKEN,), (approver.signer_key,)),
    )


@dataclass
class WitnessFiles:
    key: Path
    signer_key: str
    verifier_key: str
    config: Path
    state: Path


def write_witness_files(directory: Path) -> WitnessFiles:
    """Write a witness key, a configuration naming the test log, and a state path."""
    directory.mkdir(parents=True, exist_ok=True)
    signer_key, verifier_key = generate_cosigner("witness.test/security")
    key = secret_file(directory / "witness.key", signer_key)
    log_key = Signer.from_seed(ORIGIN, LOG_SEED).verifier_key
    config = directory / "logs.txt"
    config.write_text(f"log {log_key}\n")
    return WitnessFiles(key, signer_key, verifier_key, config, directory / "state.json")


def start_witness(directory: Path, log_level: str = "debug") -> Server:
    """Start ``agentgate witness serve`` for the test log."""
    files = write_witness_files(directory)
    return Server(
        [AGENTGATE, "witness", "serve", "--key", str(files.key), "--config",
         str(files.config), "--state", str(files.state), "--port", "0",
         "--log-level", log_level],
        r"serving \d+ logs on (http://\S+)/add-checkpoint",
        secrets=Secrets((), (files.signer_key,)),
    )


def start_mcp_proxy(directory: Path, log_level: str = "debug") -> Server:
    """Start ``agentgate mcp-proxy`` over streamable HTTP with a client token."""
    files = write_gate_files(directory / "gate")
    upstream = CountingServer(directory)
    token = secret_file(directory / "mcp.token", MCP_TOKEN)
    return Server(
        [AGENTGATE, "mcp-proxy", "--config", str(files.config), "--purpose",
         "read my balance", "--listen", "http://127.0.0.1:0/mcp", "--token-file",
         str(token), "--log-level", log_level, "--",
         sys.executable, str(upstream.script), str(upstream.runs_file)],
        r"serving MCP on (http://\S+)",
        secrets=Secrets((MCP_TOKEN,), (files.log_signer.signer_key(),)),
    )
