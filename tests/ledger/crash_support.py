"""The parts of the crash tests: a killable server, its load, and what it showed.

``ServeProcess`` runs ``agentgate serve`` in a child process that a test
can freeze (SIGSTOP) and kill (SIGKILL). ``run_load`` drives it with
asyncio clients until it dies and returns an ``Observation``: every receipt
and checkpoint a client received, and every append whose answer never
came. ``LogMirror`` recomputes the root of every prefix of the log from
the stored entries, so checkpoints can be checked against data that was
committed rather than against what the server claims.
"""

from __future__ import annotations

import asyncio
import os
import random
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from verifier import EMPTY_ROOT, CompactRange, leaf_hash, verify_checkpoint

from .conftest import ORIGIN, record, run_sql

ROOT = Path(__file__).parents[2]
RUN_CLI = "from enforcement.cli import main; main()"
TOKEN = "crash-test-write-token-0123456789"
START_TIMEOUT = 30.0
# Seconds a request may take; a frozen server is killed long before this.
REQUEST_TIMEOUT = 60.0
# Freezes per round at most, looking for a commit whose answers are not out.
MAX_FREEZES = 25
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class ServeProcess:
    """``agentgate serve`` on ``database`` in a child process; stderr is kept."""

    def __init__(self, database: str, key_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, "serve", "--db", database,
             "--key", str(key_file), "--port", "0", "--log-level", "info"],
            cwd=ROOT,
            env={**os.environ, "AGENTGATE_WRITE_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        # The process state at each SIGKILL, for the test of the kill itself.
        self.states_at_kill: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.base_url = self._wait_for_address()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)
            self._lines.put(line)

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            found = re.search(r"serving log \S+ on (http://\S+)", line)
            if found:
                return found.group(1)
        self.kill()
        raise AssertionError("server did not start:\n" + "".join(self.stderr))

    def freeze(self) -> None:
        """Stop the process where it is (SIGSTOP); it runs no further code."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a frozen process continue (SIGCONT)."""
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Kill the process with SIGKILL and wait for it to end."""
        if self.process.poll() is None:
            self.states_at_kill.append(self.state())
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(START_TIMEOUT)

    def state(self) -> str:
        """Return the process state letter from ``/proc`` ("T" when stopped)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        # The command name in brackets may contain spaces; the state follows it.
        return stat.rsplit(")", 1)[1].split()[0]

    def stop(self) -> int:
        """Stop the process with SIGTERM and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode


@dataclass
class Observation:
    """What the clients of one server process saw before it was killed."""

    # (receipt text, index, entry) of every 200 answer.
    receipts: list[tuple[str, int, bytes]] = field(default_factory=list)
    # Every checkpoint note received: in receipts and from GET /v1/checkpoint.
    checkpoints: set[str] = field(default_factory=set)
    # (entry, idempotency key) of appends sent without an answer.
    unanswered: list[tuple[bytes, str]] = field(default_factory=list)
    # Answers other than 200 or a broken connection: each one is a failure.
    errors: list[str] = field(default_factory=list)
    # The tree size committed to the database at the last freeze; the server
    # ran no code between that freeze and the kill.
    committed_when_frozen: int = -1
    # The tree size committed to the database after the kill. It may exceed
    # ``committed_when_frozen``: a commit whose answer the server never read
    # (PostgreSQL), or one written to the SQLite WAL but not yet published.
    committed_after_kill: int = -1
    # How often the server was frozen and sampled before it was killed.
    freezes: int = 0


def entry_for(round_number: int, client: int, number: int) -> tuple[bytes, str]:
    """Return the unique entry and idempotency key of one append."""
    key = f"r{round_number}-c{client}-n{number}"
    return record(number, round=round_number, client=client), key


async def _append_until_failure(
    base_url: str, round_number: int, client: int, seen: Observation
) -> None:
    """Append one entry after another until the server stops answering."""
    async with httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT, verify=False
    ) as http:
        number = 0
        while True:
            entry, key = entry_for(round_number, client, number)
            number += 1
            try:
                response = await http.post(
                    "/v1/entries",
                    content=entry,
                    headers={**AUTH, "Idempotency-Key": key},
                )
            except httpx.TransportError:
                seen.unanswered.append((entry, key))
                return
            if response.status_code != 200:
                seen.errors.append(f"{key}: {response.status_code} {response.text}")
                return
            document = response.json()
            receipt = document["receipt"]
            seen.receipts.append((receipt, document["index"], entry))
            seen.checkpoints.add(receipt.split("\n\n", 1)[1])


async def _poll_checkpoint(base_url: str, seen: Observation) -> None:
    """Read the served checkpoint again and again until the server stops."""
    async with httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT, verify=False
    ) as http:
        while True:
            try:
                response = await http.get("/v1/checkpoint")
            except httpx.TransportError:
                return
            if response.status_code != 200:
                seen.errors.append(f"checkpoint: {response.status_code}")
                return
            seen.checkpoints.add(response.text)
            await asyncio.sleep(0.005)


def committed_size(database: str) -> int:
    """Return the tree size that the database has committed."""
    rows = run_sql(database, "SELECT size FROM log_head")
    return rows[0][0] if rows else 0


async def run_load(
    server: ServeProcess,
    database: str,
    round_number: int,
    clients: int,
    kill_after: float,
    key: str,
    randomness: random.Random,
    max_freezes: int = MAX_FREEZES,
) -> Observation:
    """Load ``server`` with ``clients`` appenders, then freeze and kill it.

    After ``kill_after`` seconds the server is frozen with SIGSTOP, and the
    committed tree size is read from the database while the server cannot
    change it. Every checkpoint that a client holds at that moment was sent
    before the freeze, so none may be larger. When no entry is committed
    beyond the largest checkpoint seen, the server is resumed (SIGCONT) for
    a few milliseconds and frozen again, up to ``max_freezes`` times, so that
    the kill tends to fall between a commit and its answers. The server is
    killed with SIGKILL while it is frozen, so that ``committed_when_frozen``
    bounds every answer it ever sent; the clients stop at their first failed
    request.
    """
    seen = Observation()
    tasks = [
        asyncio.create_task(
            _append_until_failure(server.base_url, round_number, client, seen)
        )
        for client in range(clients)
    ]
    tasks.append(asyncio.create_task(_poll_checkpoint(server.base_url, seen)))
    await asyncio.sleep(kill_after)
    try:
        for freeze in range(1, max_freezes + 1):
            server.freeze()
            committed = await asyncio.to_thread(committed_size, database)
            largest = largest_size(seen.checkpoints, key)
            assert largest <= committed, (
                f"a client holds a checkpoint of size {largest}, but the database "
                f"had committed only {committed} entries when the server was frozen"
            )
            seen.freezes = freeze
            seen.committed_when_frozen = committed
            # The last freeze is never resumed: a server that ran on after
            # the sample could answer for commits the sample did not count.
            if committed > largest or freeze == max_freezes:
                break
            server.resume()
            await asyncio.sleep(randomness.uniform(0.001, 0.02))
    finally:
        server.kill()
    await asyncio.gather(*tasks)
    seen.committed_after_kill = await asyncio.to_thread(committed_size, database)
    return seen


def largest_size(notes: set[str], key: str) -> int:
    """Return the largest tree size of the checkpoint ``notes``, verified."""
    sizes = [verify_checkpoint(note, [key], ORIGIN).size for note in list(notes)]
    return max(sizes, default=0)


class LogMirror:
    """The roots of every prefix of the log, recomputed from stored entries.

    ``update`` reads the entries that were committed since the last call
    straight from the database, so a root here never depends on a
    checkpoint or proof that the server produced.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.entries: list[bytes] = []
        self.index_of: dict[bytes, int] = {}
        self.roots: list[bytes] = [EMPTY_ROOT]
        self._range = CompactRange()

    @property
    def size(self) -> int:
        return len(self.entries)

    def update(self) -> int:
        """Read the committed entries beyond ``size``; return the new size."""
        rows = run_sql(
            self.database,
            "SELECT leaf_index, entry FROM leaves WHERE leaf_index >= :start "
            "ORDER BY leaf_index",
            start=self.size,
        )
        for index, entry in rows:
            entry = bytes(entry)
            assert index == self.size, f"leaf {self.size} is missing; next is {index}"
            assert entry not in self.index_of, (
                f"entry of leaf {index} is stored twice: first at leaf "
                f"{self.index_of.get(entry)}"
            )
            self.index_of[entry] = index
            self._range.append(leaf_hash(entry))
            self.entries.append(entry)
            self.roots.append(self._range.root())
        return self.size

    def check_checkpoint(self, note: str, key: str) -> int:
        """Assert that ``note`` is signed and commits to a stored prefix.

        Returns the checkpoint's size.
        """
        checkpoint = verify_checkpoint(note, [key], ORIGIN)
        assert checkpoint.size <= self.size, (
            f"checkpoint of size {checkpoint.size} was signed, but the database "
            f"committed only {self.size} entries"
        )
        assert checkpoint.root == self.roots[checkpoint.size], (
            f"checkpoint of size {checkpoint.size} has root "
            f"{checkpoint.root.hex()}, but the stored entries hash to "
            f"{self.roots[checkpoint.size].hex()}"
        )
        return checkpoint.size
