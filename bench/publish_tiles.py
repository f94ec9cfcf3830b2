"""Time ``ledger.publish``: an initial publication and incremental ones.

The log is a durable SQLite file (WAL, ``synchronous=FULL``) of ``--size``
decision-like records of about 650 bytes, built first in batches of 10,000.
Two measurements, each repeated ``--runs`` times (the median is printed):

- initial: publish the whole log into an empty directory (hash tiles of
  every level, entry bundles and the checkpoint, each file written to a
  temporary name, flushed and renamed);
- incremental: append ``--growth`` records, then publish into the directory
  of the previous run, which writes only the grown and new tiles. Each run
  starts from the size the previous one left.

No witness is asked: the figures are for the files alone. Run it from the
repository root::

    .venv/bin/python bench/publish_tiles.py
    .venv/bin/python bench/publish_tiles.py --size 1000000 --growth 10000 --runs 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import bench_signer, decision_record, median, print_header

from ledger import Ledger
from ledger.publish import publish
from ledger.storage import Store

BUILD_BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000,
                        help="records in the log before the first publication")
    parser.add_argument("--growth", type=int, default=1_000,
                        help="records appended before each incremental publication")
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each")
    options = parser.parse_args()
    if options.size < 1 or options.growth < 1 or options.runs < 1:
        parser.error("--size, --growth and --runs must be at least 1")

    print_header("tile publication (ledger.publish)")
    workspace = Path(tempfile.mkdtemp(prefix="agentgate-bench-publish-"))
    try:
        run(workspace, options.size, options.growth, options.runs)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def run(workspace: Path, size: int, growth: int, runs: int) -> None:
    database = workspace / "log.db"
    signer = bench_signer()
    with Ledger.open(database, signer) as ledger:
        grow(ledger, size)
    print(f"log: {size} records, {database.stat().st_size / 2**20:.0f} MiB")

    initial = []
    for number in range(runs):
        directory = workspace / f"initial-{number}"
        seconds, files = timed_publish(database, signer, directory)
        initial.append(seconds)
        print(f"initial run {number + 1}: {seconds:.2f} s, {files} files")
    middle = median(initial)
    print(f"initial: median {middle:.2f} s, {size / middle:,.0f} entries/s")

    target = workspace / "initial-0"
    incremental = []
    for number in range(runs):
        with Ledger.open(database, signer) as ledger:
            grow(ledger, ledger.size + growth)
        seconds, files = timed_publish(database, signer, target)
        incremental.append(seconds)
        print(f"incremental run {number + 1}: {seconds * 1e3:.0f} ms, {files} files")
    middle = median(incremental)
    print(
        f"incremental (+{growth}): median {middle * 1e3:.0f} ms, "
        f"{growth / middle:,.0f} new entries/s"
    )


def grow(ledger: Ledger, size: int) -> None:
    """Append decision-like records until the log has ``size`` entries."""
    while ledger.size < size:
        first = ledger.size
        count = min(BUILD_BATCH, size - first)
        ledger.append_batch([(decision_record(first + i), None) for i in range(count)])


def timed_publish(database: Path, signer, directory: Path) -> tuple[float, int]:
    """Publish the log into ``directory``; return the seconds and files written."""
    with Ledger.open(database, signer) as ledger:
        store = Store.open(database)
        try:
            started = time.perf_counter()
            result = publish(ledger, store, directory)
            seconds = time.perf_counter() - started
        finally:
            store.close()
    return seconds, result.files_written


if __name__ == "__main__":
    main()
