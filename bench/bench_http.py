"""Time appends over HTTP: ``agentgate serve`` on SQLite, loaded by wrk on loopback.

The server is a separate process (``agentgate serve`` on a durable SQLite
log in a scratch directory, 127.0.0.1, a random port). wrk runs
bench/append.lua: ``--connections`` connections that each POST one
650-byte canonical record at a time with the bearer token, for
``--duration`` seconds, ``--runs`` times. wrk reports receipts/s and its
latency percentiles; every response must be 200.

The baseline, in the same run, is pymerkle's ``SqliteTree`` in-process
(WAL, ``synchronous=FULL``), appending, proving and signing one entry at a
time, as in bench_ledger.py.

wrk is Debian's package (``apt-get install wrk``). Run from the repository
root::

    .venv/bin/python bench/bench_http.py
    .venv/bin/python bench/bench_http.py --connections 64 --duration 15 --runs 5
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_ledger import baseline
from common import BENCH_TOKEN, bench_signer, median, print_header

from ledger import write_key_pair

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64,
                        help="concurrent wrk connections")
    parser.add_argument("--duration", type=int, default=15,
                        help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3,
                        help="wrk runs; medians are shown")
    parser.add_argument("--dir", default=None,
                        help="scratch directory (default: a new temporary one)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; install it with: apt-get install wrk")

    print_header("ledger over HTTP: agentgate serve on durable SQLite, wrk on loopback")
    scratch = tempfile.mkdtemp(prefix="agentgate-bench-", dir=args.dir)
    try:
        rates, p50s, p99s = [], [], []
        with LogServer(Path(scratch), f"{scratch}/log.db") as server:
            for run in range(1, args.runs + 1):
                result = run_wrk(server.base_url, args.connections, args.duration, run)
                rates.append(result["rate"])
                p50s.append(result["p50"])
                p99s.append(result["p99"])
                print(
                    f"run {run}: {result['rate']:.0f} receipts/s, p50 "
                    f"{result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, "
                    f"{result['requests']} requests"
                )
        print(
            f"median of runs: {median(rates):.0f} receipts/s, p50 "
            f"{median(p50s):.1f} ms, p99 {median(p99s):.1f} ms"
        )
        print()
        base_args = argparse.Namespace(runs=args.runs, baseline_appends=500)
        _, _, mean = baseline(scratch, 10_000, base_args, wal=True)
        print(
            f"ratio to the baseline's {1 / mean:.0f} receipts/s: "
            f"{median(rates) * mean:.1f}x"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class LogServer:
    """``agentgate serve`` in a child process, stopped with SIGINT on exit."""

    def __init__(self, directory: Path, database: str) -> None:
        self.directory = directory
        self.database = database
        self.key_dir = directory / "keys"
        self.process: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> LogServer:
        key_path = self.key_dir / "agentgate.bench_ledger.key"
        self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not key_path.exists():
            write_key_pair(bench_signer(), self.key_dir)
        log_file = open(self.directory / f"serve-{os.getpid()}-{id(self)}.log", "w+")
        agentgate = Path(sys.executable).with_name("agentgate")
        self.process = subprocess.Popen(
            [str(agentgate), "serve", "--db", self.database, "--key", str(key_path),
             "--port", "0", "--log-level", "warning"],
            env={**os.environ, "AGENTGATE_WRITE_TOKEN": BENCH_TOKEN},
            stderr=log_file,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            log_file.seek(0)
            match = re.search(r"on (http://[0-9.]+:\d+)", log_file.read())
            if match:
                self.base_url = match.group(1)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        log_file.seek(0)
        self.__exit__()
        raise RuntimeError(f"agentgate serve did not start:\n{log_file.read()}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_wrk(base_url: str, connections: int, duration: int, run: int) -> dict:
    """Run wrk with append.lua against ``base_url``; return its figures."""
    completed = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(HERE / "append.lua"), base_url + "/"],
        env={**os.environ, "AGENTGATE_WRITE_TOKEN": BENCH_TOKEN,
             "AGENTGATE_BENCH_RUN": str(run)},
        capture_output=True,
        text=True,
        check=True,
    )
    output = completed.stdout
    if "Non-2xx" in output or completed.stderr.strip():
        raise RuntimeError(f"wrk saw failed requests:\n{output}\n{completed.stderr}")
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _latency(output, "50%"),
        "p99": _latency(output, "99%"),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
    }


def _latency(output: str, label: str) -> float:
    """Return a wrk latency percentile in milliseconds."""
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


if __name__ == "__main__":
    sys.exit(main())
