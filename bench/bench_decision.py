"""Time the gate's decision: the evaluate step alone, and decide with sealing.

The set-up is a real gate on a real, durable SQLite log (WAL,
``synchronous=FULL``) in a temporary directory:

- a 3-link delegation chain (principal -> agent -> helper -> worker) whose
  scopes constrain amounts, recipients, paths, URLs, domains and commands;
- a 50-rule policy with every rule kind (``policy_document``);
- one session that has already made ``--history`` sealed calls, mixing
  reads, payments, e-mails, file access, web fetches and commands, so its
  sequence state and provenance are those of a working agent.

Two figures are reported. ``evaluate``: ``Session.evaluate`` (request
validation, chain verification from the cache, scope and budget, the
default alignment scorer, the 50 rules and the verdict) over ``--calls``
calls after ``--warmup`` calls. ``decide``: ``Session.decide``, which also
commits the arguments to the vault, seals the record in the log and
verifies its receipt, over ``--sealed`` calls. The clock advances
``--step`` seconds per call, so the session's history stays at the size
that its longest rule window holds.

Run it from the repository root::

    .venv/bin/python bench/bench_decision.py
    .venv/bin/python bench/bench_decision.py --profile evaluate.prof
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import itertools
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from enforcement import (
    ArgumentVault,
    Gate,
    Identity,
    Purpose,
    Refusal,
    Session,
    issue_certificate,
)
from enforcement.policy import parse_policy
from ledger import Signer, open_ledger
from ledger.client import LocalLedgerClient

ORIGIN = "agentgate.bench/decision"
T0 = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)
IBAN = "GB29NWBK60161331926819"
LANDLORD = "landlord@example.com"
RULE_KINDS = ("sensitive_read_then_egress", "sequence", "data_flow", "volume",
              "rate_limit", "amount_threshold", "amount_total")


def identity(name: str) -> Identity:
    """Return a fixed identity, so that every run signs the same certificates."""
    return Identity.from_seed(name, hashlib.sha256(b"bench: " + name.encode()).digest())


class Clock:
    """A clock the benchmark advances; the gate reads it for every decision."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# -- the tools ---------------------------------------------------------------------
# Stubs with the names, signatures and docstrings an assistant's tools have;
# the gate derives their profiles from these.


def get_balance() -> dict:
    """Return the account balance."""
    return {"balance": 2400.0, "currency": "EUR"}


def get_transactions(n: int = 10) -> list:
    """List the most recent bank transactions."""
    return [{"id": i, "recipient": f"DE89370400440532013{i:03d}", "amount": 10 + i,
             "subject": f"groceries week {i}"} for i in range(n)]


def send_money(recipient: str, amount: float, subject: str, date: str) -> dict:
    """Send a payment from the user's bank account."""
    return {"status": "sent", "amount": amount}


def read_inbox(folder: str = "inbox", limit: int = 20) -> list:
    """Read e-mails in a mailbox folder."""
    return [{"sender": LANDLORD, "subject": "March rent",
             "body": f"Please pay the rent of 900 to {IBAN} by Friday."}]


def send_email(recipients: list, subject: str, body: str) -> dict:
    """Send an e-mail message."""
    return {"status": "sent", "id": "m-1"}


def search_contacts(query: str) -> list:
    """Search the user's contacts."""
    return [{"name": "Landlord", "email": LANDLORD, "phone": "+44 20 7946 0000"}]


def read_file(path: str) -> str:
    """Read a file from the user's documents."""
    return "lease agreement: the rent is due on the first working day of the month"


def write_file(path: str, content: str) -> dict:
    """Write a file in the user's documents."""
    return {"written": len(content)}


def fetch_webpage(url: str) -> str:
    """Fetch a web page."""
    return "<html><body>Exchange rates for today: EUR/GBP 0.85</body></html>"


def create_event(title: str, participants: list, start_time: str) -> dict:
    """Create a calendar event and invite its participants."""
    return {"id": "e-1", "title": title}


def run_command(command: str) -> str:
    """Run a shell command in the user's workspace."""
    return "report.pdf\nlease.pdf\n"


TOOLS: tuple[Callable[..., Any], ...] = (
    get_balance, get_transactions, send_money, read_inbox, send_email,
    search_contacts, read_file, write_file, fetch_webpage, create_event,
    run_command,
)

# The calls of a working session, repeated in this order. The chain and the
# policy allow them, except the command (alignment holds it, because the
# purpose asks for nothing destructive), the payment of 7000 (outside the
# scope and above an amount rule) and rent payments past a session total.
CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("get_balance", {}),
    ("read_inbox", {"folder": "inbox", "limit": 20}),
    ("send_money", {"recipient": IBAN, "amount": 900, "subject": "March rent",
                    "date": "2026-12-04"}),
    ("send_email", {"recipients": [LANDLORD], "subject": "Rent paid",
                    "body": "Hello, I paid the March rent of 900 today."}),
    ("read_file", {"path": "/home/user/documents/lease.pdf"}),
    ("get_transactions", {"n": 5}),
    ("fetch_webpage", {"url": "https://rates.example.com/eur/gbp"}),
    ("search_contacts", {"query": "landlord"}),
    ("write_file", {"path": "/home/user/documents/notes/rent.txt",
                    "content": "paid March rent"}),
    ("run_command", {"command": "ls /home/user/documents"}),
    ("create_event", {"title": "Rent due", "participants": [LANDLORD],
                      "start_time": "2027-01-01 09:00"}),
    ("send_money", {"recipient": IBAN, "amount": 7000, "subject": "deposit",
                    "date": "2026-12-04"}),
)


# -- the chain -----------------------------------------------------------------------


def scope(amount: float, recipients: list[str], paths: list[str]) -> dict:
    """Return a scope of 13 capabilities, with the given limits."""
    return {"capabilities": [
        {"tool": "get_*"},
        {"tool": "read_inbox", "constraints": {"limit": {"max": 50, "min": 1}}},
        {"tool": "search_contacts"},
        {"tool": "send_money", "constraints": {
            "amount": {"max": amount, "min": 1}, "recipient": {"one_of": recipients}},
         "budget": {"calls": 10**9}},
        {"tool": "send_email", "constraints": {
            "recipients": {"domains": ["example.com", "*.example.com"]}}},
        {"tool": "read_file", "constraints": {"path": {"path_prefix": paths}}},
        {"tool": "write_file", "constraints": {"path": {"path_prefix": paths}}},
        {"tool": "fetch_webpage", "constraints": {"url": {"url_prefix": [
            "https://rates.example.com/", "https://docs.example.com/api/"]}}},
        {"tool": "create_event", "constraints": {
            "participants": {"domains": ["example.com"]}}},
        {"tool": "run_command", "constraints": {"command": {"commands": [
            "ls", "cat", "git status", "git log", "*/pdftotext"]}}},
        {"tool": "list_*"},
        {"tool": "search_*"},
        {"tool": "find_*"},
    ]}


def chain_of_three(principal: Identity, agent: Identity, helper: Identity,
                   worker: Identity) -> list:
    """Return principal -> agent -> helper -> worker, each link within its parent."""
    # Valid long enough for every call of a default run (600 s apart).
    start, end = T0 - timedelta(hours=1), T0 + timedelta(days=3650)
    root = issue_certificate(
        principal, agent.verifier_key,
        scope(5000, [IBAN, "DE89370400440532013000"], ["/home/user"]),
        "household administration", start, end, max_depth=2, nonce="1" * 32)
    middle = issue_certificate(
        agent, helper.verifier_key,
        scope(5000, [IBAN], ["/home/user/documents"]),
        "pay the rent", start, end, max_depth=1, parent=root, nonce="2" * 32)
    leaf = issue_certificate(
        helper, worker.verifier_key,
        scope(5000, [IBAN], ["/home/user/documents"]),
        "pay the rent and tell the landlord", start, end, max_depth=0,
        parent=middle, nonce="3" * 32)
    return [root, middle, leaf]


# -- the policy ----------------------------------------------------------------------


def policy_document() -> dict[str, Any]:
    """Return a 50-rule policy: 7 or 8 rules of each of the 7 kinds."""
    rules: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        rules.append({"id": f"{kind}.{len(rules)}", "kind": kind, **fields})

    for classes, reads, window in (
            (["financial"], 1, 3600), (["messages"], 2, 3600),
            (["personal"], 1, 1800), (["files"], 3, 7200),
            (["credentials"], 1, 86400), (["financial", "personal"], 5, 600),
            (["calendar"], 2, 3600)):
        add("sensitive_read_then_egress", data_classes=classes, min_reads=reads,
            window_seconds=window, verdict="hold")
    for steps, window in (
            ([{"labels": ["read"], "data_classes": ["financial"], "min_count": 3},
              {"labels": ["financial"]}], 3600),
            ([{"tools": ["read_inbox"]}, {"tools": ["send_money"]},
              {"tools": ["send_email"], "min_count": 5}], 3600),
            ([{"data_classes": ["personal"], "min_count": 20},
              {"labels": ["egress"]}], 3600),
            ([{"tools": ["get_*"], "min_count": 50}, {"labels": ["egress"]}], 7200),
            ([{"labels": ["destructive"], "min_count": 3},
              {"labels": ["destructive"]}], 600),
            ([{"tools": ["fetch_webpage"]}, {"tools": ["run_command"],
                                             "min_count": 10}], 1800),
            ([{"labels": ["write"], "min_count": 30}], 3600),
            ([{"data_classes": ["files"], "min_count": 40},
              {"tools": ["send_email", "create_event"]}], 86400)):
        add("sequence", steps=steps, window_seconds=window, verdict="hold")
    for roles, labels, tools, sources, verdict in (
            (["recipient"], ["financial"], [], ["instruction", "text", "unknown"],
             "hold"),
            (["recipient"], ["egress"], [], ["instruction"], "deny"),
            (["url"], [], [], ["instruction"], "deny"),
            (["command"], [], ["run_*"], ["instruction", "text"], "deny"),
            (["path"], ["destructive"], [], ["instruction"], "deny"),
            (["credential"], [], [], ["instruction", "text", "structured"], "deny"),
            (["amount"], ["financial"], ["send_money"], ["instruction"], "deny")):
        add("data_flow", roles=roles, labels=labels, tools=tools, sources=sources,
            verdict=verdict)
    for classes, unit, limit, window, per in (
            (["personal"], "records", 500, 3600, "session"),
            (["financial"], "records", 1000, 3600, "session"),
            (["messages"], "bytes", 5_000_000, 3600, "session"),
            (["files"], "bytes", 50_000_000, 86400, "agent"),
            (["calendar"], "records", 2000, 86400, "agent"),
            (["web"], "bytes", 20_000_000, 3600, "session"),
            (["credentials"], "records", 5, 86400, "agent")):
        add("volume", data_classes=classes, unit=unit, limit=limit,
            window_seconds=window, per=per)
    for per, limit, window in (
            ("session", 60, 60), ("session", 600, 3600), ("agent", 120, 60),
            ("agent", 2000, 3600), ("tool", 30, 60), ("tool", 300, 3600),
            ("session", 5000, 86400), ("agent", 20000, 86400)):
        add("rate_limit", per=per, limit=limit, window_seconds=window)
    for amount, verdict in ((5000, "hold"), (20000, "deny"), (10000, "hold"),
                            (15000, "hold"), (50000, "deny"), (100000, "deny"),
                            (7500, "hold")):
        add("amount_threshold", max_amount=amount, verdict=verdict)
    for total, window in ((10000, 86400), (3000, 3600), (50000, 86400),
                          (20000, 43200), (5000, 7200), (8000, 21600)):
        add("amount_total", max_total=total, window_seconds=window)
    assert len(rules) == 50, len(rules)
    assert {rule["kind"] for rule in rules} == set(RULE_KINDS)
    return {
        "version": 1,
        "name": "bench: household assistant, 50 rules",
        "alignment": {"hold_below": 0.5, "deny_below": 0.15},
        "profiles": {"fetch_webpage": {"trusted_output": False}},
        "rules": rules,
    }


# -- the run -------------------------------------------------------------------------


@dataclass
class Bench:
    gate: Gate
    session: Session
    clock: Clock
    ledger: Any
    vault: ArgumentVault

    def close(self) -> None:
        self.vault.close()
        self.ledger.close()


def build(directory: Path, history: int, step: float) -> Bench:
    """Open the log and the gate, and give the session ``history`` sealed calls."""
    clock = Clock(T0)
    signer = Signer.from_seed(ORIGIN, hashlib.sha256(b"bench: log key").digest())
    ledger = open_ledger(directory / "log.db", signer, now=clock())
    vault = ArgumentVault(str(directory / "vault.db"))

    people = [identity(f"{name}.bench") for name in
              ("principal", "agent", "helper", "worker")]
    gate = Gate(
        LocalLedgerClient(ledger), str(signer.verifier_key),
        parse_policy(policy_document(), "bench policy"),
        [people[0].verifier_key], vault=vault, clock=clock,
        default_chain=chain_of_three(*people), revocations=(),
    )

    tools = {}
    for function in TOOLS:
        gate.register_tool(function.__name__, func=function)
        tools[function.__name__] = function
    purpose = Purpose(
        f"Pay the March rent of 900 to {IBAN} and email {LANDLORD} that it "
        "is paid; check the balance and the lease first",
        principal_values=(IBAN, LANDLORD),
    )
    session = gate.session(purpose, session_id="s-bench")

    for tool, arguments in itertools.islice(itertools.cycle(CALLS), history):
        try:
            session.call(tool, arguments, lambda t=tool, a=arguments: tools[t](**a))
        except Refusal:
            pass  # a refused call is part of the history too
        clock.advance(step)
    return Bench(gate, session, clock, ledger, vault)


def calls(count: int) -> Iterator[tuple[str, dict[str, Any]]]:
    return itertools.islice(itertools.cycle(CALLS), count)


def timed(bench: Bench, step: float, count: int,
          action: Callable[[str, dict[str, Any]], Any]) -> tuple[list[float], dict]:
    """Time ``action`` on ``count`` calls; return the seconds and the verdicts."""
    timings = []
    verdicts: dict[str, int] = {}
    gc.collect()
    for tool, arguments in calls(count):
        started = time.perf_counter()
        result = action(tool, arguments)
        timings.append(time.perf_counter() - started)
        verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
        bench.clock.advance(step)
    return timings, verdicts


def summary(name: str, timings: list[float], verdicts: dict[str, int]) -> str:
    ordered = sorted(timings)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e6

    return (f"{name:9s} n={len(ordered):6d}  p50 {at(0.50):8.1f} us  "
            f"p90 {at(0.90):8.1f} us  p99 {at(0.99):8.1f} us  "
            f"mean {statistics.fmean(ordered) * 1e6:8.1f} us  verdicts {verdicts}")


def machine() -> str:
    """Describe the CPU model, the core count and the Python build."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical CPUs, Python "
            f"{platform.python_version()} ({platform.python_implementation()}), "
            f"{platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000,
                        help="evaluate calls timed after the warm-up (default 20000)")
    parser.add_argument("--warmup", type=int, default=2_000,
                        help="evaluate calls run before timing (default 2000)")
    parser.add_argument("--sealed", type=int, default=500,
                        help="decide calls timed with sealing (default 500)")
    parser.add_argument("--history", type=int, default=150,
                        help="sealed calls the session makes first (default 150)")
    parser.add_argument("--step", type=float, default=600.0,
                        help="seconds the clock advances per call (default 600)")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="also profile the timed evaluate calls into FILE")
    options = parser.parse_args(argv)
    for name in ("calls", "sealed"):
        if getattr(options, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(options, name)}")
    if options.warmup < 0 or options.history < 0:
        parser.error("--warmup and --history must not be negative")
    if options.step <= 0:
        parser.error(f"--step must be a positive number of seconds, got {options.step}")

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="agentgate-bench-") as directory:
        bench = build(Path(directory), options.history, options.step)
        try:
            session = bench.session
            window = max(getattr(rule, "window_seconds", 0.0)
                         for rule in bench.gate.policy.rules)
            print(f"policy: {len(bench.gate.policy.rules)} rules of "
                  f"{len(RULE_KINDS)} kinds; chain: 3 links; history: "
                  f"{len(session.decisions)} sealed calls, of which about "
                  f"{min(len(session.decisions), int(window // options.step))} lie "
                  f"in the longest rule window ({window:g} s)")
            # Sealed decisions first: an evaluation that is not sealed leaves
            # the session's chain of state digests without that step.
            decide_times, decide_verdicts = timed(
                bench, options.step, options.sealed, session.decide)
            timed(bench, options.step, options.warmup, session.evaluate)
            evaluate_times, evaluate_verdicts = timed(
                bench, options.step, options.calls, session.evaluate)
            print(summary("evaluate", evaluate_times, evaluate_verdicts))
            print(summary("decide", decide_times, decide_verdicts))
            if options.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                timed(bench, options.step, options.calls, session.evaluate)
                profiler.disable()
                profiler.dump_stats(options.profile)
                pstats.Stats(options.profile).sort_stats("tottime").print_stats(30)
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
