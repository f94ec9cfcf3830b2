"""Four ``agentgate serve`` processes on one PostgreSQL log, appended to at once.

Each server is a separate OS process with its own Ledger and Sequencer on
the same database schema. Async httpx clients send 2,000 appends to each
server concurrently. The test then checks with the independent verifier
that the result is one log. It has 8,000 entries after the key record and
no leaf index stored twice. Every receipt is valid, each tree size has one
root, and every receipt's checkpoint is consistent with the final one.

It needs the PostgreSQL server of conftest.py (127.0.0.1:5432, or the URL in
AGENTGATE_TEST_PG_URL) and skips, saying so, when it is not reachable.
"""

import asyncio
import base64
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

import verifier
from ledger import Ledger, write_key_pair

from ..conftest import FIXED_NOW, run_sql
from .conftest import ORIGIN, TOKEN, auth, record

ROOT = Path(__file__).parents[3]
SERVERS = 4
APPENDS_PER_SERVER = 2000
# Clients per server, 64 in all; each has one append in flight at a time.
CONNECTIONS_PER_SERVER = 16
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0


class ServerProcess:
    """``agentgate serve`` in a child process, on a port the system picks."""

    def __init__(self, database, key_file):
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from enforcement.cli import main; main()",
             "serve", "--db", database, "--key", str(key_file), "--port", "0",
             "--log-level", "warning"],
            cwd=ROOT,
            env={**os.environ, "AGENTGATE_WRITE_TOKEN": TOKEN},
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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def servers(pg_url, signer, tmp_path):
    """Four servers on a new log in a schema of its own; their base URLs."""
    Ledger.open(pg_url, signer, now=FIXED_NOW).close()
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    key_file = write_key_pair(signer, key_dir)[0]
    started = [ServerProcess(pg_url, key_file) for _ in range(SERVERS)]
    try:
        yield [process.wait_for_address() for process in started]
    finally:
        for process in started:
            process.stop()


async def append_all(base_urls):
    """Append APPENDS_PER_SERVER entries through each server at once.

    Each server gets CONNECTIONS_PER_SERVER clients that append their share
    one request after another. A client per connection keeps httpx's pool
    bookkeeping small: one shared pool of 32 connections per server cost
    the test more CPU than the servers needed. Returns (entry, status, body)
    for every request.
    """

    async def append_share(server, base_url, connection):
        outcomes = []
        # Plain HTTP on loopback: verify=False only skips loading the CA
        # certificates that each client would otherwise read.
        async with httpx.AsyncClient(
            base_url=base_url, timeout=REQUEST_TIMEOUT, verify=False
        ) as client:
            for number in range(connection, APPENDS_PER_SERVER, CONNECTIONS_PER_SERVER):
                entry = record(number, server=server)
                response = await client.post(
                    "/v1/entries", content=entry, headers=auth()
                )
                outcomes.append((entry, response.status_code, response.json()))
        return outcomes

    shares = await asyncio.gather(
        *(
            append_share(server, url, connection)
            for server, url in enumerate(base_urls)
            for connection in range(CONNECTIONS_PER_SERVER)
        )
    )
    return [outcome for share in shares for outcome in share]


def test_four_servers_extend_one_log(servers, pg_url, signer):
    key = str(signer.verifier_key)
    size = SERVERS * APPENDS_PER_SERVER + 1

    outcomes = asyncio.run(append_all(servers))

    failures = [(status, body) for _, status, body in outcomes if status != 200]
    assert failures == []
    verified = [
        verifier.verify_receipt(body["receipt"], [key], origin=ORIGIN)
        for _, _, body in outcomes
    ]
    assert [v.entry for v in verified] == [entry for entry, _, _ in outcomes]
    assert sorted(v.index for v in verified) == list(range(1, size))

    rows = run_sql(
        pg_url,
        "SELECT count(*), count(DISTINCT leaf_index), min(leaf_index), "
        "max(leaf_index) FROM leaves",
    )
    assert tuple(rows[0]) == (size, size, 0, size - 1)

    final_note = httpx.get(servers[0] + "/v1/checkpoint", timeout=30).text
    final = verifier.verify_checkpoint(final_note, [key], ORIGIN)
    assert final.size == size

    roots = defaultdict(set)
    for receipt in verified:
        roots[receipt.checkpoint.size].add(receipt.checkpoint.root)
    for (note,) in run_sql(pg_url, "SELECT note FROM checkpoints"):
        stored = verifier.verify_checkpoint(note, [key], ORIGIN)
        roots[stored.size].add(stored.root)
    assert {s: len(r) for s, r in roots.items() if len(r) > 1} == {}
    assert roots[final.size] == {final.root}

    with httpx.Client(base_url=servers[1], timeout=30) as client:
        for checkpoint_size, (root,) in sorted(roots.items()):
            if checkpoint_size == final.size:
                continue
            response = client.get(
                "/v1/proofs/consistency",
                params={"first": checkpoint_size, "second": final.size},
            )
            assert response.status_code == 200, response.text
            proof = [base64.b64decode(h) for h in response.json()["proof"]]
            verifier.verify_consistency(
                checkpoint_size, final.size, proof, root, final.root
            )
