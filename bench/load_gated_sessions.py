"""Soak test: 64 gated sessions at once, for minutes, on a PostgreSQL log.

Two ``agentgate serve`` processes share one log in a new schema on the
PostgreSQL server at ``--url``. Two ``agentgate gate serve`` processes each
seal into one of them through ``HttpLedgerClient`` (``[log] url`` in their
configuration). First wrk appends to both log servers for ``--warmup``
seconds, which fills each one's subtree cache (see ``warm_up``). Then
``--sessions`` asyncio clients, split evenly between the
gates, run gated sessions over the gate API (specs/gate-api.md) until
``--duration`` seconds have passed. Each session states a purpose, asks for
four tool calls (three that the default policy allows and one it holds),
verifies every decision's receipt against the pinned log key with the
independent ``verifier``, reports the outcome of each allowed call, and
ends; the client then starts the next session.

An error is any answer other than the expected status, a broken
connection, or a receipt that does not verify; there must be none. Every
``--sample`` seconds the resident set size (VmRSS) of each of the four
server processes is read from /proc. The report gives its first, largest
and last value and the least-squares slope over the whole run and over its
second half, which leaves out the warm-up.

Run from the repository root (Linux only, for /proc)::

    .venv/bin/python bench/load_gated_sessions.py --duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bench_http import LogServer, run_wrk
from common import (
    BENCH_TOKEN,
    DEFAULT_PG_URL,
    bench_signer,
    percentile,
    print_header,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import enforcement
import verifier
from enforcement.delegation import issue_certificate
from enforcement.identity import Identity
from ledger import Ledger

START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0
GATE_TOKEN = "bench-gate-token-0123456789abcdef"
IBAN = "GB29NWBK60161331926819"
OTHER_IBAN = "DE89370400440532013000"
PURPOSE = (
    "Check my balance, read my recent transactions and pay the March rent "
    f"of 900 to {IBAN}"
)
# (tool, arguments, verdict the default policy gives in a session of PURPOSE)
CALLS = [
    ("get_balance", {}, "allow"),
    ("get_most_recent_transactions", {"n": 10}, "allow"),
    ("send_money", {"recipient": IBAN, "amount": 900, "subject": "March rent",
                    "date": "2026-03-01"}, "allow"),
    ("send_money", {"recipient": OTHER_IBAN, "amount": 5000, "subject": "invoice",
                    "date": "2026-03-01"}, "hold"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_PG_URL, help="PostgreSQL URL")
    parser.add_argument("--sessions", type=int, default=64,
                        help="gated sessions open at once, split between the gates")
    parser.add_argument("--duration", type=float, default=600,
                        help="seconds of load")
    parser.add_argument("--sample", type=float, default=10,
                        help="seconds between RSS samples")
    parser.add_argument("--warmup", type=int, default=90,
                        help="seconds of wrk appends to each log server before "
                        "the sessions start, to fill its subtree cache")
    parser.add_argument("--tracemalloc", type=Path, default=None, metavar="DIR",
                        help="run each gate under bench/gate_memory.py, which "
                        "writes traced memory and snapshots to DIR/gate<n>")
    parser.add_argument("--snapshots", default="60,300", metavar="SECONDS",
                        help="with --tracemalloc: seconds after each gate's "
                        "start at which to take snapshots, comma-separated")
    args = parser.parse_args()

    print_header("gated sessions on PostgreSQL: 2 log servers, 2 gate servers")
    engine = create_engine(args.url, poolclass=NullPool)
    schema = "agentgate_bench_" + secrets.token_hex(4)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(args.url).update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)
    scratch = Path(tempfile.mkdtemp(prefix="agentgate-bench-"))
    try:
        Ledger.open(url, bench_signer()).close()
        with LogServer(scratch, url) as first, LogServer(scratch, url) as second:
            logs = [first, second]
            configs = [write_gate_files(scratch / f"gate{n}", log.base_url)
                       for n, log in enumerate(logs)]
            traces = ([args.tracemalloc / f"gate{n + 1}" for n in range(len(configs))]
                      if args.tracemalloc else [None] * len(configs))
            gates = [GateServer(config, trace, args.snapshots)
                     for config, trace in zip(configs, traces, strict=True)]
            try:
                processes = {
                    "log server 1": first.process.pid,
                    "log server 2": second.process.pid,
                    "gate server 1": gates[0].process.pid,
                    "gate server 2": gates[1].process.pid,
                }
                before = {name: rss_kib(pid) for name, pid in processes.items()}
                warm_up(logs, args.warmup)
                after = {name: rss_kib(pid) for name, pid in processes.items()}
                for name in processes:
                    print(f"{name}: RSS {before[name] / 1024:.1f} MiB before the "
                          f"warm-up, {after[name] / 1024:.1f} MiB after")
                report = run(args, [gate.base_url for gate in gates], processes)
            finally:
                for gate in gates:
                    gate.stop()
            final = httpx.get(first.base_url + "/v1/checkpoint").text
        checkpoint = verifier.verify_checkpoint(
            final, [str(bench_signer().verifier_key)], bench_signer().name
        )
        print(f"log size at the end: {checkpoint.size} entries (checkpoint verified)")
        print_report(report, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    if report["errors"]:
        sys.exit(f"{len(report['errors'])} errors")


# -- the deployment -------------------------------------------------------------


def write_gate_files(directory: Path, log_url: str) -> Path:
    """Write keys, a delegation and a gate configuration sealing into ``log_url``."""
    keys = directory / "keys"
    keys.mkdir(parents=True, mode=0o700)
    signer = bench_signer()
    (keys / "log.pub").write_text(f"{signer.verifier_key}\n")
    token_file = keys / "ledger.token"
    token_file.write_text(BENCH_TOKEN + "\n")
    token_file.chmod(0o600)
    principal = Identity.generate("principal.bench")
    agent = Identity.generate("agent.bench")
    (keys / "principal.pub").write_text(principal.verifier_key + "\n")
    now = datetime.now(UTC)
    certificate = issue_certificate(
        issuer=principal, subject=agent.verifier_key,
        scope={"capabilities": [{"tool": "*"}]}, purpose="bench delegation",
        not_before=now - timedelta(hours=1), not_after=now + timedelta(days=1),
        max_depth=0,
    )
    (directory / "agent.cert.json").write_text(json.dumps(certificate.to_json()))
    # The default policy, but for the agent's rate limit: all sessions share
    # one agent, which makes far more than 120 calls a minute here.
    default = Path(enforcement.__file__).with_name("policies") / "default.toml"
    limit = 'id = "limit.agent-rate"\nkind = "rate_limit"\nper = "agent"\nlimit = '
    policy = default.read_text()
    assert limit + "120\n" in policy, "the default policy's agent rate limit moved"
    policy = policy.replace(limit + "120\n", limit + "100000000\n")
    (directory / "policy.toml").write_text(policy)
    config = directory / "gate.toml"
    config.write_text("\n".join([
        "[log]", f'url = "{log_url}"', 'token_file = "keys/ledger.token"',
        'verifier_key = "keys/log.pub"', "",
        "[gate]", 'policy = "policy.toml"', 'trust_anchors = ["keys/principal.pub"]',
        'chain = ["agent.cert.json"]', 'vault = "vault.db"', "",
    ]))
    return config


class GateServer:
    """``agentgate gate serve`` in a child process; its stderr goes to a file.

    With ``trace`` set, the server runs under ``bench/gate_memory.py``, which
    writes tracemalloc figures to that directory.
    """

    def __init__(self, config: Path, trace: Path | None = None,
                 snapshots: str = "60,300") -> None:
        self.log_file = open(config.parent / "gate-serve.log", "w+")
        serve = ["--config", str(config), "--port", "0", "--log-level", "warning"]
        if trace is None:
            agentgate = Path(sys.executable).with_name("agentgate")
            command = [str(agentgate), "gate", "serve", *serve]
        else:
            wrapper = Path(__file__).with_name("gate_memory.py")
            command = [sys.executable, str(wrapper), "--out", str(trace),
                       "--at", snapshots, "--", *serve]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "AGENTGATE_GATE_TOKEN": GATE_TOKEN},
            stdout=subprocess.DEVNULL, stderr=self.log_file,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.log_file.seek(0)
            found = re.search(r"serving gate on (http://\S+)", self.log_file.read())
            if found:
                self.base_url = found.group(1)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        self.log_file.seek(0)
        raise RuntimeError(f"agentgate gate serve did not start:\n{self.log_file.read()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.seek(0)
        problems = [line for line in self.log_file if " ERROR " in line]
        if problems:
            print("gate server errors:\n" + "".join(problems[:5]), file=sys.stderr)


def warm_up(logs: list[LogServer], seconds: int) -> None:
    """Append with wrk to every log server at once for ``seconds`` seconds.

    Each append puts about two subtree hashes into the server's LRU cache
    (``ledger.tree.DEFAULT_CACHE_BYTES``, 64 MiB by pymerkle's estimate,
    about 209,000 hashes). Until that cache is full, a server's RSS grows
    with every append by design; the warm-up fills it so that the load
    that follows measures the steady state.
    """
    if seconds <= 0:
        return
    results: list[dict] = [{} for _ in logs]

    def one(position: int) -> None:
        results[position] = run_wrk(logs[position].base_url, 32, seconds,
                                    position + 1)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(logs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for position, result in enumerate(results):
        if not result:
            raise RuntimeError(f"wrk against log server {position + 1} failed")
        print(f"warm-up, log server {position + 1}: {result['requests']} appends "
              f"in {seconds} s")


# -- the load ---------------------------------------------------------------------


class Tally:
    """Counts and latencies of the clients, and the errors they met."""

    def __init__(self) -> None:
        self.sessions = 0
        self.decisions = 0
        self.outcomes = 0
        self.verdicts: dict[str, int] = {}
        self.decision_seconds: list[float] = []
        self.errors: list[str] = []


async def run_sessions(base_url: str, client: int, deadline: float, log_key: str,
                       tally: Tally) -> None:
    """Run one gated session after another until ``deadline``."""
    headers = {"Authorization": f"Bearer {GATE_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers,
                                 timeout=REQUEST_TIMEOUT) as http:
        number = 0
        while time.monotonic() < deadline:
            try:
                await one_session(http, f"c{client}-{number}", log_key, tally)
            except (httpx.HTTPError, verifier.VerificationError, AssertionError,
                    KeyError, ValueError) as err:
                tally.errors.append(f"client {client}: {type(err).__name__}: {err}")
                await asyncio.sleep(1.0)
            number += 1


async def one_session(http: httpx.AsyncClient, name: str, log_key: str,
                      tally: Tally) -> None:
    response = await http.post("/v1/sessions", json={"purpose": PURPOSE})
    assert response.status_code == 201, response.text
    session = response.json()["session"]
    for position, (tool, arguments, expected) in enumerate(CALLS):
        started = time.perf_counter()
        response = await http.post(f"/v1/sessions/{session}/decisions", json={
            "call_id": f"{name}-{position}", "tool": tool, "arguments": arguments})
        tally.decision_seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        document = response.json()
        receipt = verifier.verify_receipt(document["receipt"], [log_key])
        record = receipt.record
        assert record["type"] == "decision", record["type"]
        assert record["id"] == document["decision"], record["id"]
        assert record["session"] == session, record["session"]
        assert record["verdict"] == document["verdict"] == expected, (
            f"{tool}: expected {expected}, got {document['verdict']} "
            f"{document['reasons']}"
        )
        tally.decisions += 1
        tally.verdicts[expected] = tally.verdicts.get(expected, 0) + 1
        if expected != "allow":
            continue
        response = await http.post(f"/v1/sessions/{session}/outcomes", json={
            "decision": document["decision"], "status": "ok",
            "result": {"tool": tool, "ok": True}, "duration_ms": 1.0})
        assert response.status_code == 200, response.text
        verifier.verify_receipt(response.json()["receipt"], [log_key])
        tally.outcomes += 1
    response = await http.delete(f"/v1/sessions/{session}")
    assert response.status_code == 204, response.text
    tally.sessions += 1


def rss_kib(pid: int) -> int:
    """Return the resident set size of process ``pid`` in KiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"process {pid} has no VmRSS")


def sample_rss(processes: dict[str, int], every: float, stop: threading.Event,
               samples: list[tuple[float, dict[str, int]]]) -> None:
    """Append ``(seconds since start, {name: RSS KiB})`` every ``every`` seconds."""
    started = time.monotonic()
    while True:
        samples.append((time.monotonic() - started,
                        {name: rss_kib(pid) for name, pid in processes.items()}))
        if stop.wait(every):
            return


def run(args, gate_urls: list[str], processes: dict[str, int]) -> dict:
    """Load the gates for ``args.duration`` seconds; return the figures."""
    tally = Tally()
    samples: list[tuple[float, dict[str, int]]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss,
                               args=(processes, args.sample, stop, samples))
    log_key = str(bench_signer().verifier_key)

    async def load() -> None:
        deadline = time.monotonic() + args.duration
        await asyncio.gather(*(
            run_sessions(gate_urls[client % len(gate_urls)], client, deadline,
                         log_key, tally)
            for client in range(args.sessions)
        ))

    sampler.start()
    started = time.monotonic()
    try:
        asyncio.run(load())
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
    return {"tally": tally, "samples": samples, "seconds": elapsed,
            "errors": tally.errors}


# -- the report -------------------------------------------------------------------


def slope_mib_per_minute(points: list[tuple[float, int]]) -> float:
    """Return the least-squares slope of ``(seconds, KiB)`` points in MiB/min."""
    if len(points) < 2:
        return float("nan")
    count = len(points)
    mean_t = sum(t for t, _ in points) / count
    mean_v = sum(v for _, v in points) / count
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in points)
    variance = sum((t - mean_t) ** 2 for t, _ in points)
    return covariance / variance * 60 / 1024


def print_report(report: dict, args) -> None:
    tally: Tally = report["tally"]
    seconds = report["seconds"]
    print(f"load: {args.sessions} sessions at once for {seconds:.0f} s")
    print(f"sessions completed: {tally.sessions}")
    print(f"decisions: {tally.decisions} ({tally.decisions / seconds:.1f}/s), "
          f"verdicts {tally.verdicts}; outcomes sealed: {tally.outcomes}")
    print(f"decision latency: p50 {percentile(tally.decision_seconds, 0.5) * 1e3:.1f}"
          f" ms, p99 {percentile(tally.decision_seconds, 0.99) * 1e3:.1f} ms")
    print(f"errors: {len(tally.errors)}")
    for error in tally.errors[:10]:
        print(f"  {error}")
    samples = report["samples"]
    print(f"RSS samples: {len(samples)}, every {args.sample:.0f} s")
    print()
    print("| process | start MiB | max MiB | end MiB | slope, whole run | "
          "slope, second half |")
    print("|---|---|---|---|---|---|")
    half = samples[-1][0] / 2 if samples else 0
    for name in samples[0][1] if samples else []:
        points = [(t, values[name]) for t, values in samples]
        later = [(t, v) for t, v in points if t >= half]
        values = [v for _, v in points]
        print(f"| {name} | {values[0] / 1024:.1f} | {max(values) / 1024:.1f} | "
              f"{values[-1] / 1024:.1f} | {slope_mib_per_minute(points):+.3f} "
              f"MiB/min | {slope_mib_per_minute(later):+.3f} MiB/min |")
    print()
    print("RSS over time (MiB):")
    for t, values in samples:
        row = "  ".join(f"{v / 1024:7.1f}" for v in values.values())
        print(f"  {t:6.0f} s  {row}")


if __name__ == "__main__":
    main()
