"""Run ``agentgate gate serve`` under tracemalloc and record where memory goes.

The arguments after ``--`` are those of ``agentgate gate serve``. The server
runs in this process with ``tracemalloc.start(FRAMES)``. Every ``--every``
seconds a line with the elapsed seconds, the bytes that tracemalloc traces
and the resident set size (VmRSS) is appended to ``OUT/memory.tsv``: traced
bytes that stay flat while RSS rises point at the allocator, not at Python
objects. At each of the ``--at`` moments (seconds after start) a snapshot
is taken, and its statistics grouped by traceback go to
``OUT/top-<seconds>.txt``. From the second snapshot on,
``OUT/diff-<first>-<seconds>.txt`` lists the tracebacks whose traced size
grew most since the first one.

Tracing 25 frames slows the server more than tenfold (4.5 decisions/s
against about 80 in one run of the load benchmark on 2 cores), so use it
to find what grows, not to measure speed.

    .venv/bin/python bench/gate_memory.py --out /tmp/gate1 --at 60,300 -- \\
        --config gate.toml --port 0

``bench/load_gated_sessions.py --tracemalloc DIR`` starts its gates this way.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 25
SHOWN = 40


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="directory for memory.tsv, top-*.txt and diff-*.txt")
    parser.add_argument("--at", default="60,300",
                        help="comma-separated seconds after start to take snapshots")
    parser.add_argument("--every", type=float, default=10.0,
                        help="seconds between lines of memory.tsv")
    parser.add_argument("serve", nargs=argparse.REMAINDER,
                        help="-- then the arguments of agentgate gate serve")
    args = parser.parse_args()
    serve = args.serve[1:] if args.serve[:1] == ["--"] else args.serve
    try:
        moments = sorted(float(part) for part in args.at.split(",") if part.strip())
    except ValueError:
        parser.error(f"--at must list seconds separated by commas, got {args.at!r}")
    args.out.mkdir(parents=True, exist_ok=True)

    tracemalloc.start(FRAMES)
    started = time.monotonic()
    watcher = threading.Thread(target=watch, daemon=True,
                               args=(args.out, moments, args.every, started))
    watcher.start()

    from enforcement.gate_cli import gate
    gate.main(["serve", *serve], prog_name="agentgate gate")


def watch(out: Path, moments: list[float], every: float, started: float) -> None:
    """Write memory.tsv lines and the snapshots at ``moments``, until exit."""
    first: tracemalloc.Snapshot | None = None
    first_moment = 0.0
    pending = list(moments)
    with open(out / "memory.tsv", "w") as table:
        table.write("seconds\ttraced_mib\tpeak_mib\trss_mib\n")
        next_line = started
        while True:
            now = time.monotonic()
            if now >= next_line:
                traced, peak = tracemalloc.get_traced_memory()
                table.write(f"{now - started:.0f}\t{traced / 2**20:.2f}\t"
                            f"{peak / 2**20:.2f}\t{rss_kib() / 1024:.1f}\n")
                table.flush()
                next_line += every
            if pending and now - started >= pending[0]:
                moment = pending.pop(0)
                snapshot = tracemalloc.take_snapshot().filter_traces([
                    tracemalloc.Filter(False, tracemalloc.__file__),
                ])
                write_top(out / f"top-{moment:.0f}.txt", snapshot)
                if first is None:
                    first, first_moment = snapshot, moment
                else:
                    write_diff(out / f"diff-{first_moment:.0f}-{moment:.0f}.txt",
                               first, snapshot)
            time.sleep(0.5)


def write_top(path: Path, snapshot: tracemalloc.Snapshot) -> None:
    statistics = snapshot.statistics("traceback")
    total = sum(stat.size for stat in statistics)
    with open(path, "w") as handle:
        handle.write(f"traced: {total / 2**20:.2f} MiB in "
                     f"{sum(stat.count for stat in statistics)} blocks\n\n")
        for stat in statistics[:SHOWN]:
            handle.write(f"{stat.size / 1024:.1f} KiB in {stat.count} blocks\n")
            handle.write("\n".join(stat.traceback.format(limit=FRAMES)) + "\n\n")


def write_diff(path: Path, before: tracemalloc.Snapshot,
               after: tracemalloc.Snapshot) -> None:
    differences = after.compare_to(before, "traceback")
    with open(path, "w") as handle:
        growth = sum(stat.size_diff for stat in differences)
        handle.write(f"traced growth: {growth / 2**20:+.2f} MiB\n\n")
        for stat in differences[:SHOWN]:
            handle.write(f"{stat.size_diff / 1024:+.1f} KiB "
                         f"({stat.count_diff:+d} blocks), now "
                         f"{stat.size / 1024:.1f} KiB\n")
            handle.write("\n".join(stat.traceback.format(limit=FRAMES)) + "\n\n")


def rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
