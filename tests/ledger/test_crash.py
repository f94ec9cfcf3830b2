"""``agentgate serve`` killed with SIGKILL under load, then restarted.

Each round starts a server on the same database and loads it with 64
asyncio clients appending with idempotency keys. After a random delay the
server is frozen with SIGSTOP and the committed tree size is read from the
database while the server runs no code; when no entry is committed beyond
the checkpoints that clients hold, it is resumed for a few milliseconds and
frozen again (``crash_support.run_load``). Then it is killed with SIGKILL
while it is still frozen, so the size read at the last freeze bounds every
receipt and checkpoint it ever sent.
Under this load the writer thread is almost always somewhere in the write
path (queue, transaction, commit, signing, storing checkpoints, answering),
so random times land inside it, and the freezes steer the kill towards the
gap between a commit and its answers. No hook in the server is involved.

The next round's server then shows that:

- every checkpoint a client saw, and every checkpoint stored, has a size at
  most the committed size and the root recomputed from the stored entries;
  at the freeze, no client had seen a checkpoint beyond what was committed;
- every receipt a client received verifies and is consistent with the new
  head through a consistency proof from its own checkpoint;
- the log continues: appends that never got an answer, retried with their
  idempotency keys, land exactly once, and new appends take the next
  indexes without a gap.

Each backend gets 20 rounds, which took 46 to 74 s per backend on 2 cores.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
from collections import Counter

import httpx
import pytest

from ledger import Ledger, write_key_pair
from verifier import verify_checkpoint, verify_consistency, verify_receipt

from .conftest import FIXED_NOW, ORIGIN, record, run_sql
from .crash_support import (
    AUTH,
    MAX_FREEZES,
    REQUEST_TIMEOUT,
    LogMirror,
    Observation,
    ServeProcess,
    largest_size,
    run_load,
)

CLIENTS = 64
ROUNDS = 20
# The server is frozen and killed this many seconds after the load starts,
# drawn uniformly; 0 kills it while the first requests arrive.
KILL_AFTER = (0.0, 1.2)
FRESH_APPENDS = 64


@pytest.fixture
def key_file(tmp_path, signer):
    directory = tmp_path / "keys"
    directory.mkdir()
    return write_key_pair(signer, directory)[0]


def test_crash_sqlite(tmp_path, signer, key_file):
    _crash_and_recover(str(tmp_path / "log.db"), signer, key_file, ROUNDS, seed=1)


def test_crash_postgresql(pg_url, signer, key_file):
    _crash_and_recover(pg_url, signer, key_file, ROUNDS, seed=2)


@pytest.mark.skipif(
    not os.path.exists("/proc/self/stat"), reason="reads process states from /proc"
)
def test_kill_falls_on_frozen_server(tmp_path, signer, key_file):
    """The kill hits a stopped server even when every freeze finds nothing new.

    Without appenders no freeze finds a commit beyond the served checkpoint,
    so the freeze loop runs out. A server resumed after its last sample
    could send receipts for commits that the sample did not count.
    """
    database = str(tmp_path / "log.db")
    Ledger.open(database, signer, now=FIXED_NOW).close()
    server = ServeProcess(database, key_file)
    try:
        seen = asyncio.run(run_load(
            server, database, 0, 0, 1.0, str(signer.verifier_key),
            random.Random(3), max_freezes=3,
        ))
    finally:
        server.kill()

    # The log contains its key record, and the poller has read its checkpoint.
    assert largest_size(seen.checkpoints, str(signer.verifier_key)) == 1
    assert seen.freezes == 3
    assert server.states_at_kill == ["T"]
    assert seen.committed_when_frozen == seen.committed_after_kill == 1


def _crash_and_recover(database, signer, key_file, rounds, seed):
    Ledger.open(database, signer, now=FIXED_NOW).close()
    key = str(signer.verifier_key)
    mirror = LogMirror(database)
    mirror.update()
    randomness = random.Random(seed)
    tally = Counter()
    seen = None

    for round_number in range(rounds + 1):
        server = ServeProcess(database, key_file)
        try:
            if seen is not None:
                _check_after_restart(server, mirror, seen, key, tally)
                _continue_log(server, mirror, seen, key, round_number)
            if round_number == rounds:
                assert server.stop() == -signal.SIGTERM
                break
            seen = asyncio.run(run_load(
                server, database, round_number, CLIENTS,
                randomness.uniform(*KILL_AFTER), key, randomness,
            ))
        finally:
            server.kill()
        _check_frozen(seen, key, tally)

    stderr = "".join(server.stderr)
    assert " ERROR " not in stderr, stderr
    assert "Traceback" not in stderr, stderr
    print(f"crash rounds on {database.split(':')[0]}: {dict(tally)}")


def _check_frozen(seen: Observation, key: str, tally: Counter) -> None:
    """At the kill, no client had a checkpoint beyond the committed size."""
    assert seen.errors == []
    assert 1 <= seen.freezes <= MAX_FREEZES
    largest = largest_size(seen.checkpoints, key)
    assert largest <= seen.committed_when_frozen, (
        f"a client saw a checkpoint of size {largest}, but the database had "
        f"committed only {seen.committed_when_frozen} entries when the server "
        f"was frozen for the kill (freeze {seen.freezes} of at most {MAX_FREEZES})"
    )
    assert seen.committed_after_kill >= seen.committed_when_frozen, (
        f"the database had committed {seen.committed_when_frozen} entries at the "
        f"freeze but only {seen.committed_after_kill} after the kill"
    )
    tally["appends answered"] += len(seen.receipts)
    tally["appends unanswered"] += len(seen.unanswered)
    tally["freezes sampled"] += seen.freezes
    if seen.committed_when_frozen > largest:
        tally["killed between a commit and its answers"] += 1


def _check_after_restart(server, mirror, seen, key, tally) -> None:
    """Check what the killed server handed out against the restarted one."""
    verified_before = mirror.size
    mirror.update()
    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as http:
        head_note = http.get("/v1/checkpoint").text
        head = verify_checkpoint(head_note, [key], ORIGIN)
        assert mirror.check_checkpoint(head_note, key) == mirror.size

        for note in seen.checkpoints:
            mirror.check_checkpoint(note, key)
        stored = run_sql(
            mirror.database,
            "SELECT size, note FROM checkpoints WHERE size > :size",
            size=verified_before,
        )
        for _, note in stored:
            mirror.check_checkpoint(note, key)
        if max((size for size, _ in stored), default=0) < mirror.size:
            tally["killed before a checkpoint was stored"] += 1

        proved = {}
        for text, index, entry in seen.receipts:
            receipt = verify_receipt(text, [key], ORIGIN)
            assert receipt.index == index
            assert mirror.entries[index] == entry
            size = receipt.checkpoint.size
            if size not in proved:
                response = http.get(
                    "/v1/proofs/consistency",
                    params={"first": size, "second": head.size},
                )
                proof = [base64.b64decode(h) for h in response.json()["proof"]]
                verify_consistency(
                    size, head.size, proof, receipt.checkpoint.root, head.root
                )
                proved[size] = True
    tally["receipts proved consistent after restart"] += len(seen.receipts)


def _continue_log(server, mirror, seen, key, round_number) -> None:
    """Retry the unanswered appends, append new entries, and check the indexes."""
    size_at_restart = mirror.size
    fresh = [
        (record(number, round=round_number, after_restart=True), None)
        for number in range(FRESH_APPENDS)
    ]
    answers = asyncio.run(_append_all(server.base_url, seen.unanswered + fresh))

    new_indexes = []
    for (entry, idempotency_key), (status, document) in zip(
        seen.unanswered + fresh, answers
    ):
        assert status == 200, document
        receipt = verify_receipt(document["receipt"], [key], ORIGIN)
        assert receipt.entry == entry
        if entry in mirror.index_of:
            # Committed before the kill: the retry returns the stored index.
            assert document["index"] == mirror.index_of[entry], idempotency_key
        else:
            new_indexes.append(document["index"])

    assert mirror.update() == size_at_restart + len(new_indexes)
    assert sorted(new_indexes) == list(range(size_at_restart, mirror.size))
    rows = run_sql(
        mirror.database,
        "SELECT count(*), count(DISTINCT leaf_index), min(leaf_index), "
        "max(leaf_index) FROM leaves",
    )
    assert tuple(rows[0]) == (mirror.size, mirror.size, 0, mirror.size - 1)


async def _append_all(base_url, items):
    """Append ``(entry, idempotency key)`` items at once; return their answers."""
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as http:

        async def append(entry, idempotency_key):
            headers = dict(AUTH)
            if idempotency_key is not None:
                headers["Idempotency-Key"] = idempotency_key
            response = await http.post("/v1/entries", content=entry, headers=headers)
            return response.status_code, response.json()

        return await asyncio.gather(*(append(*item) for item in items))
