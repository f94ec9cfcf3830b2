"""Time proofs and a cold start on a large log (10^7 entries by default).

The log is built once in ``--dir`` (kept for later runs: a log that already
has ``--size`` entries is reused) by ``Ledger.append_batch`` with batches
of ``--batch`` entries, the fastest path that still checks every entry,
stores every subtree hash and signs a checkpoint per batch. The build time
is printed.

Then, each ``--runs`` times (medians are printed):

- cold start: a new Python process imports the ledger, opens the log and
  appends one entry, returning its sealed receipt; the time from the start
  of ``Ledger.open`` to the receipt is the figure (imports shown apart);
- inclusion proofs: ``--proofs`` audit paths for random leaves in the full
  tree, and in trees of random sizes, from a freshly opened log (its cache
  is empty, so each proof reads its hashes from the database in one query);
- consistency proofs: ``--proofs`` proofs between random pairs of sizes;
- bytes on disk per entry beyond the entry itself: the SQLite file (after a
  WAL checkpoint) divided by the entries, minus their mean length.

The baseline, in the same run, is pymerkle's ``SqliteTree`` (pymerkle 7) at
``--baseline-size`` entries: the time of its first inclusion proof after
opening, when its cache is empty.

Run from the repository root::

    .venv/bin/python bench/bench_scale.py --dir /var/tmp/agentgate-scale
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bench_signer, decision_record, median, percentile, print_header

from ledger import Ledger

HERE = Path(__file__).resolve().parent

COLD_START = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, {bench!r})
from common import bench_signer, decision_record
from ledger import Ledger
imported = time.perf_counter()
with Ledger.open({path!r}, bench_signer()) as ledger:
    opened = time.perf_counter()
    receipt = ledger.append(decision_record({number}))
    sealed = time.perf_counter()
print(imported - started, opened - imported, sealed - opened, receipt.index)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=1e7, help="entries in the log")
    parser.add_argument("--batch", type=int, default=20_000,
                        help="entries per append_batch while building")
    parser.add_argument("--dir", required=True,
                        help="directory for the log; an existing log there is reused")
    parser.add_argument("--proofs", type=int, default=2000,
                        help="proofs timed per kind and run")
    parser.add_argument("--runs", type=int, default=3,
                        help="repetitions of each measurement; medians are shown")
    parser.add_argument("--baseline-size", type=float, default=1e6,
                        help="entries in the pymerkle SqliteTree baseline")
    args = parser.parse_args()
    size = int(args.size)
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"log-{size}.db"

    print_header(f"ledger at scale: {size} entries on durable SQLite")
    build(path, size, args.batch)
    cold_start(path, args.runs)
    proofs(path, args.proofs, args.runs)
    disk_usage(path)
    pymerkle_cold_proof(int(args.baseline_size), args.runs)


def build(path: Path, size: int, batch: int) -> None:
    """Build the log to ``size`` entries, or reuse it; print the time taken."""
    with Ledger.open(path, bench_signer()) as ledger:
        if ledger.size >= size:
            print(f"## build\nreusing {path} with {ledger.size} entries\n")
            return
        print(f"## build\nbuilding {path} from {ledger.size} to {size} entries")
        started = time.perf_counter()
        first = ledger.size
        number = first
        report = first + 1_000_000
        while ledger.size < size:
            count = min(batch, size - ledger.size)
            ledger.append_batch(
                [(decision_record(number + i), None) for i in range(count)]
            )
            number += count
            if ledger.size >= report:
                elapsed = time.perf_counter() - started
                print(
                    f"  {ledger.size} entries after {elapsed:.0f} s "
                    f"({(ledger.size - first) / elapsed:.0f} entries/s)",
                    flush=True,
                )
                report += 1_000_000
        elapsed = time.perf_counter() - started
    print(
        f"built {size - first} entries in {elapsed:.0f} s "
        f"({(size - first) / elapsed:.0f} entries/s, batches of {batch})\n"
    )


def cold_start(path: Path, runs: int) -> None:
    """Time opening the log and sealing one receipt in a new process."""
    print("## cold start: open the log and seal the first receipt")
    totals = []
    for run in range(runs):
        script = COLD_START.format(
            bench=str(HERE), path=str(path), number=-(10**12) - run
        )
        output = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()
        imports, opened, sealed = (float(value) for value in output[:3])
        totals.append(opened + sealed)
        print(
            f"run {run + 1}: open {opened * 1e3:.1f} ms + first receipt "
            f"{sealed * 1e3:.1f} ms = {(opened + sealed) * 1e3:.1f} ms "
            f"(imports before it: {imports * 1e3:.0f} ms; leaf {output[3]})"
        )
    print(f"median of runs: {median(totals) * 1e3:.1f} ms\n")


def proofs(path: Path, count: int, runs: int) -> None:
    """Time inclusion and consistency proofs from a freshly opened log."""
    print("## proofs from a freshly opened log (empty cache)")
    figures: dict[str, list[tuple[float, float]]] = {}
    for run in range(runs):
        randomness = random.Random(run)
        with Ledger.open(path) as ledger:
            size = ledger.size
            cases = {
                "inclusion, full tree": [
                    _inclusion_case(ledger, randomness, size, full=True)
                    for _ in range(count)
                ],
                "inclusion, random size": [
                    _inclusion_case(ledger, randomness, size) for _ in range(count)
                ],
                "consistency, random sizes": [
                    _consistency_case(ledger, randomness, size) for _ in range(count)
                ],
            }
            for name, calls in cases.items():
                durations = []
                for call in calls:
                    started = time.perf_counter()
                    call()
                    durations.append(time.perf_counter() - started)
                figures.setdefault(name, []).append(
                    (percentile(durations, 0.5), percentile(durations, 0.99))
                )
                print(
                    f"run {run + 1}, {name}: p50 "
                    f"{percentile(durations, 0.5) * 1e3:.3f} ms, p99 "
                    f"{percentile(durations, 0.99) * 1e3:.3f} ms"
                )
    for name, values in figures.items():
        print(
            f"median of runs, {name}: p50 {median([v[0] for v in values]) * 1e3:.3f}"
            f" ms, p99 {median([v[1] for v in values]) * 1e3:.3f} ms"
        )
    print()


def _inclusion_case(
    ledger: Ledger, randomness: random.Random, size: int, *, full: bool = False
):
    tree_size = size if full else randomness.randrange(1, size + 1)
    index = randomness.randrange(tree_size)
    return lambda: ledger.inclusion_proof(index, tree_size)


def _consistency_case(ledger: Ledger, randomness: random.Random, size: int):
    first, second = sorted(randomness.randrange(1, size + 1) for _ in range(2))
    return lambda: ledger.consistency_proof(first, second)


def disk_usage(path: Path) -> None:
    """Print the bytes on disk per entry beyond the entry's own length."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        entries, entry_bytes = connection.execute(
            "SELECT count(*), sum(length(entry)) FROM leaves"
        ).fetchone()
    finally:
        connection.close()
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    total = sum(file.stat().st_size for file in files if file.exists())
    mean = entry_bytes / entries
    print("## bytes on disk")
    print(
        f"{total} bytes for {entries} entries: {total / entries:.0f} bytes per "
        f"entry, {total / entries - mean:.0f} beyond the mean entry of "
        f"{mean:.0f} bytes\n"
    )


def pymerkle_cold_proof(size: int, runs: int) -> None:
    """Time pymerkle SqliteTree's first inclusion proof after opening."""
    from pymerkle import SqliteTree

    print(f"## baseline: pymerkle SqliteTree at {size} entries")
    scratch = tempfile.mkdtemp(prefix="agentgate-bench-")
    try:
        path = os.path.join(scratch, "pymerkle.db")
        with SqliteTree(path) as tree:
            tree.append_entries(decision_record(i) for i in range(size))
        durations = []
        for run in range(runs):
            randomness = random.Random(run)
            with SqliteTree(path) as tree:
                index = randomness.randrange(1, size + 1)
                started = time.perf_counter()
                tree.prove_inclusion(index, size)
                durations.append(time.perf_counter() - started)
            print(f"run {run + 1}: first inclusion proof {durations[-1]:.2f} s")
        print(f"median of runs: {median(durations):.2f} s\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
