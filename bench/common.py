"""Shared parts of the ledger benchmarks: records, statistics, machine facts.

The benchmarks import this module by name, so run them from the repository
root as ``.venv/bin/python bench/<script>.py``. Each prints the command it
ran and the machine it ran on before its figures.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
from collections.abc import Sequence

import rfc8785

from ledger import Signer

ORIGIN = "agentgate.bench/ledger"
# A fixed key, so that runs are comparable; it signs nothing outside benchmarks.
BENCH_SEED = hashlib.sha256(b"agentgate ledger benchmarks").digest()
BENCH_TOKEN = "bench-write-token-0123456789abcdef"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def bench_signer() -> Signer:
    """Return the benchmarks' log key."""
    return Signer.from_seed(ORIGIN, BENCH_SEED)


def decision_record(number: int, worker: int = 0) -> bytes:
    """Return a canonical decision-like record of about 650 bytes.

    The fields follow the shape of the gate's decision records: argument
    commitments, a delegation chain, reasons and a score. bench/append.lua
    builds the same shape for wrk.
    """

    def digest(value: int) -> str:
        return hashlib.sha256(f"{worker}/{value}".encode()).hexdigest()

    return rfc8785.dumps(
        {
            "agent": "agent.example/worker",
            "arguments": {
                "amount": "commit:" + digest(number),
                "recipient": "commit:" + digest(-number - 1),
            },
            "chain": [f"c-{worker:032x}", f"c-{number:032x}"],
            "id": f"d-{worker:08x}{number:024x}",
            "policy": "p-" + digest(7),
            "reasons": [{"rule": "amount_threshold", "text": "amount below 100 EUR"}],
            "score": 0.93,
            "session": f"s-{worker:032x}",
            "time": "2026-12-04T10:00:00.000000Z",
            "tool": "send_payment",
            "type": "decision",
            "verdict": "allow",
            "version": 1,
        }
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values`` (fraction in [0, 1])."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> str:
    """Return ``p50 X ms, p99 Y ms`` of durations given in seconds."""
    return (
        f"p50 {percentile(seconds, 0.50) * 1e3:.2f} ms, "
        f"p99 {percentile(seconds, 0.99) * 1e3:.2f} ms"
    )


def median(values: Sequence[float]) -> float:
    """Return the median of ``values``."""
    return statistics.median(values)


def print_header(title: str) -> None:
    """Print the title, the command line, the machine and the load on it."""
    print(f"# {title}")
    command = [sys.executable, *sys.argv]
    print("command: " + " ".join(shlex.quote(part) for part in command))
    for line in machine_facts():
        print(line)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()


def machine_facts() -> list[str]:
    """Return lines naming the CPU, cores, memory, disk and software versions."""
    model = _lscpu_field("Model name") or platform.processor() or "unknown"
    facts = [
        f"cpu: {model}, {os.cpu_count()} cores",
        f"memory: {_memory_gib():.1f} GiB",
        f"disk: {_disk_description()}",
        f"python: {platform.python_version()} ({platform.python_implementation()})",
        f"sqlite: {sqlite3.sqlite_version}",
        f"postgresql: {postgres_version() or 'not reachable'}",
    ]
    return facts


def postgres_version(url: str = DEFAULT_PG_URL) -> str | None:
    """Return the server version at ``url``, or None when it is not reachable."""
    try:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return connection.execute(text("SHOW server_version")).scalar_one()
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - reported as not reachable
        return None


def _lscpu_field(name: str) -> str | None:
    try:
        output = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _memory_gib() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    return float("nan")


def _disk_description() -> str:
    """Describe the block device under the working directory, as far as known."""
    try:
        device = os.stat(".").st_dev
        numbers = f"{os.major(device)}:{os.minor(device)}"
        name = os.path.basename(os.path.realpath(f"/sys/dev/block/{numbers}"))
        queue = f"/sys/block/{name}/queue"
        if not os.path.isdir(queue):
            return f"{name} (type unknown)"
        with open(f"{queue}/rotational") as handle:
            rotational = handle.read().strip() == "1"
        kind = "reports rotational" if rotational else "reports non-rotational"
        driver = "virtio" if name.startswith("vd") else "block"
        return f"{name}, a {driver} device that {kind}; the physical disk is unknown"
    except OSError:
        return "unknown"
