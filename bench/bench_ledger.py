"""Time sealed receipts in-process on durable SQLite, against pymerkle's SqliteTree.

Every figure is for a sealed receipt: the entry is checked, committed in a
durable transaction (WAL, ``synchronous=FULL``), a checkpoint is signed with
Ed25519, and the receipt carries the entry's audit path in that checkpoint.

Three measurements, each repeated ``--runs`` times (the median is printed):

- latency: one caller appends ``--appends`` entries one at a time to a log
  that already contains ``--sizes`` entries (built first with batches of 10,000
  entries); p50 and p99 per receipt;
- throughput: ``--callers`` threads append through one ``Sequencer`` to a
  fresh log, ``--entries`` entries in all; receipts/s and p50/p99 per call;
- baseline, in the same run: pymerkle's ``SqliteTree`` (pymerkle 7,
  ``pymerkle.backends.sqlite``) appends each entry, proves its inclusion
  and signs a checkpoint body over the root with Ed25519, one entry at a
  time, at the same sizes. It runs as shipped (SQLite's rollback journal)
  and with this log's settings (WAL, ``synchronous=FULL``).

Run it from the repository root::

    .venv/bin/python bench/bench_ledger.py
    .venv/bin/python bench/bench_ledger.py --sizes 10000,1000000 --runs 3
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from common import (
    ORIGIN,
    bench_signer,
    decision_record,
    median,
    percentile,
    print_header,
    summary_ms,
)

from ledger import Ledger
from ledger.sequencer import Sequencer

BUILD_BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000",
                        help="log sizes for the latency runs, comma-separated")
    parser.add_argument("--appends", type=int, default=2000,
                        help="single appends timed per latency run")
    parser.add_argument("--baseline-appends", type=int, default=500,
                        help="entries timed per baseline run")
    parser.add_argument("--callers", type=int, default=64,
                        help="concurrent threads in the throughput runs")
    parser.add_argument("--entries", type=int, default=30_000,
                        help="entries appended per throughput run")
    parser.add_argument("--runs", type=int, default=3,
                        help="repetitions of each measurement; medians are shown")
    parser.add_argument("--dir", default=None,
                        help="scratch directory (default: a new temporary one)")
    args = parser.parse_args()
    sizes = [int(float(size)) for size in args.sizes.split(",")]

    print_header("ledger in-process: sealed receipts on durable SQLite")
    scratch = tempfile.mkdtemp(prefix="agentgate-bench-", dir=args.dir)
    try:
        results = {}
        for size in sizes:
            results[size] = latency_section(scratch, size, args)
        throughput = throughput_section(scratch, args)
        print("## summary")
        for size, (ours, shipped, wal) in results.items():
            print(
                f"size {size}: ours p50 {ours[0] * 1e3:.2f} ms p99 "
                f"{ours[1] * 1e3:.2f} ms; pymerkle SqliteTree p50 "
                f"{shipped[0] * 1e3:.2f} ms (as shipped), {wal[0] * 1e3:.2f} ms "
                f"(WAL); ratio of p50s {shipped[0] / ours[0]:.1f}x and "
                f"{wal[0] / ours[0]:.1f}x"
            )
        base_rate = 1 / results[sizes[0]][2][2]
        print(
            f"throughput with {args.callers} callers: {throughput:.0f} receipts/s; "
            f"pymerkle SqliteTree (WAL) at size {sizes[0]}: {base_rate:.0f} "
            f"receipts/s; ratio {throughput / base_rate:.1f}x"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- latency -----------------------------------------------------------------------


def latency_section(scratch: str, size: int, args) -> tuple:
    """Time single appends at ``size``, ours and the baseline's."""
    print(f"## one caller at {size} entries")
    path = os.path.join(scratch, f"log-{size}.db")
    started = time.perf_counter()
    with Ledger.open(path, bench_signer()) as ledger:
        build(ledger, size)
    print(f"built the log of {size} entries in {time.perf_counter() - started:.1f} s")

    runs = []
    for run in range(args.runs):
        durations = time_single_appends(path, args.appends, first=10**9 * (run + 1))
        print(f"run {run + 1}: {summary_ms(durations)}")
        runs.append((percentile(durations, 0.5), percentile(durations, 0.99)))
    ours = (median([r[0] for r in runs]), median([r[1] for r in runs]))
    print(f"median of runs: p50 {ours[0] * 1e3:.2f} ms, p99 {ours[1] * 1e3:.2f} ms")

    floor = commit_floor(scratch, args.appends)
    print(
        f"durable commit alone (sqlite3, WAL, synchronous=FULL, one 700-byte "
        f"row per commit): {summary_ms(floor)}"
    )
    shipped = baseline(scratch, size, args, wal=False)
    wal = baseline(scratch, size, args, wal=True)
    print()
    return ours, shipped, wal


def build(ledger: Ledger, size: int) -> None:
    """Append entries in large batches until the log contains ``size`` entries."""
    number = ledger.size
    while ledger.size < size:
        count = min(BUILD_BATCH, size - ledger.size)
        ledger.append_batch(
            [(decision_record(number + i), None) for i in range(count)]
        )
        number += count


def time_single_appends(path: str, count: int, first: int) -> list[float]:
    """Reopen the log and time ``count`` sealed single appends."""
    entries = [decision_record(first + i) for i in range(count)]
    durations = []
    with Ledger.open(path, bench_signer()) as ledger:
        for entry in entries:
            started = time.perf_counter()
            receipt = ledger.append(entry)
            durations.append(time.perf_counter() - started)
        assert receipt.index == ledger.size - 1
    return durations


def commit_floor(scratch: str, count: int) -> list[float]:
    """Time ``count`` bare insert-and-commit transactions with the log's settings.

    This is the floor that the disk sets for any durable append here.
    """
    path = os.path.join(scratch, "floor.db")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE IF NOT EXISTS rows (data BLOB)")
        durations = []
        for _ in range(count):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO rows VALUES (?)", (os.urandom(700),))
            connection.execute("COMMIT")
            durations.append(time.perf_counter() - started)
    finally:
        connection.close()
    return durations


def baseline(scratch: str, size: int, args, *, wal: bool) -> tuple:
    """Time pymerkle's SqliteTree: append, prove inclusion, sign the root."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
    )
    from pymerkle import SqliteTree

    label = "WAL, synchronous=FULL" if wal else "as shipped"
    path = os.path.join(scratch, f"pymerkle-{size}-{'wal' if wal else 'rollback'}.db")
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    tree = SqliteTree(path)
    try:
        if wal:
            tree.con.execute("PRAGMA journal_mode=WAL")
            tree.con.execute("PRAGMA synchronous=FULL")
        started = time.perf_counter()
        tree.append_entries(decision_record(i) for i in range(size))
        # pymerkle computes and caches subtree hashes on first use; one
        # untimed append and proof warms that cache for the timed ones.
        tree.append_entry(decision_record(-1))
        tree.prove_inclusion(tree.get_size())
        warm = time.perf_counter() - started
        runs = []
        for run in range(args.runs):
            durations = []
            for i in range(args.baseline_appends):
                entry = decision_record(-(10**9) * (run + 1) - i)
                begin = time.perf_counter()
                index = tree.append_entry(entry)
                tree.prove_inclusion(index)
                root = tree.get_root()
                body = f"{ORIGIN}\n{index}\n{base64.b64encode(root).decode()}\n"
                key.sign(body.encode())
                durations.append(time.perf_counter() - begin)
            runs.append(durations)
    finally:
        tree.close()
    p50 = median([percentile(d, 0.5) for d in runs])
    p99 = median([percentile(d, 0.99) for d in runs])
    mean = median([sum(d) / len(d) for d in runs])
    print(
        f"pymerkle SqliteTree ({label}): built and warmed in {warm:.1f} s; "
        f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, mean {mean * 1e3:.2f} ms"
    )
    return p50, p99, mean


# -- throughput --------------------------------------------------------------------


def throughput_section(scratch: str, args) -> float:
    """Append from ``--callers`` threads through one Sequencer; return receipts/s."""
    print(f"## {args.callers} concurrent callers in-process")
    rates = []
    for run in range(args.runs):
        path = os.path.join(scratch, f"concurrent-{run}.db")
        entries = [decision_record(i, worker=run + 1) for i in range(args.entries)]
        durations: list[float] = []
        lock = threading.Lock()
        with (
            Ledger.open(path, bench_signer()) as ledger,
            Sequencer(ledger) as sequencer,
        ):

            def work(caller: int) -> None:
                mine = []
                for entry in entries[caller :: args.callers]:
                    begin = time.perf_counter()
                    sequencer.append(entry, timeout=60)
                    mine.append(time.perf_counter() - begin)
                with lock:
                    durations.extend(mine)

            started = time.perf_counter()
            with ThreadPoolExecutor(args.callers) as pool:
                list(pool.map(work, range(args.callers)))
            elapsed = time.perf_counter() - started
            batches = sequencer.batches
        rate = len(entries) / elapsed
        rates.append(rate)
        print(
            f"run {run + 1}: {rate:.0f} receipts/s, {summary_ms(durations)}, "
            f"{len(entries) / batches:.1f} entries per batch"
        )
    print(f"median of runs: {median(rates):.0f} receipts/s")
    print()
    return median(rates)


if __name__ == "__main__":
    sys.exit(main())
