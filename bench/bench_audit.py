"""Time the full audit: the root recomputation and the record re-verification.

Three measurements, each repeated ``--runs`` times (the median is printed):

- root: a SQLite log of ``--entries`` decision-like records of about 650
  bytes (``Ledger.append_batch`` in batches of 10,000) is published as
  tiles into a directory. The timed step is what ``agentgate audit`` does
  before it looks at any record. It verifies the checkpoint, reads every
  entry bundle and level 0 tile, hashes each entry as a leaf, compares it
  with the tile's hash and recomputes the root. The baseline, in the same
  run, is a plain ``hashlib`` loop over the same entries already in memory:
  the leaf hashes, then the RFC 9162 root by pairing the hashes level by
  level. It reads no file and compares nothing, so it bounds what the
  interpreter can do with ``hashlib`` alone.
- records: a real gate (``enforcement.Gate`` on a durable SQLite log)
  seals at least ``--decisions`` decisions in sessions of five calls:
  allowed reads, payments and fetches with their outcomes, a large payment
  that a rule holds and two approvers lift, a sub-agent's payment through
  a two-link chain, a misaligned call that is denied, and a new sub-agent
  delegation (revoking the one before) every 20 sessions. The log is
  published as tiles, and ``verifier.audit.audit_log``, the function behind
  ``agentgate audit``, audits the directory with the principal as trust
  anchor. The figure is decisions per second of the whole audit; the root
  step on the same directory is timed apart so the record pass shows alone.
- receipts: the cost per receipt of ``verifier.verify_receipt`` for an
  entry of the 10^6 log, with and without the Ed25519 check of the
  checkpoint (parsing, the inclusion proof and the canonical JSON check).

Run it from the repository root::

    .venv/bin/python bench/bench_audit.py
    .venv/bin/python bench/bench_audit.py --entries 100000 --decisions 2000 --runs 1
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import bench_signer, median, print_header
from publish_tiles import grow

from enforcement import ArgumentVault, Gate, Identity, issue_certificate
from enforcement.alignment import AlignmentResult
from enforcement.approvals import sign_approval, submit_approval
from enforcement.errors import ApprovalRequired, Denied
from enforcement.policy import load_policy, parse_policy
from ledger import Ledger, Signer, open_ledger
from ledger.client import LocalLedgerClient
from ledger.publish import publish
from ledger.receipt import Receipt
from ledger.storage import Store
from verifier import (
    canonicalize,
    leaf_hash,
    parse_checkpoint,
    parse_note,
    parse_receipt,
    parse_strict,
    verify_inclusion,
    verify_receipt,
)
from verifier.audit import _TileReader, audit_log
from verifier.audit_records import RecordAuditor
from verifier.checkpoint import open_checkpoint
from verifier.tiles import TileSource
from verifier.tilehash import CompactRange

GATE_ORIGIN = "agentgate.bench/audit"
T0 = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)
IBAN = "GB29NWBK60161331926819"
DECISIONS_PER_SESSION = 5
DELEGATION_EVERY = 20
RECEIPTS_PER_RUN = 2000

AGENT_SCOPE = {
    "capabilities": [
        {"tool": "read_*"},
        {
            "tool": "send_money",
            "constraints": {
                "amount": {"max": 10000, "min": 1},
                "recipient": {"one_of": [IBAN, "DE89370400440532013000"]},
            },
        },
        {
            "tool": "fetch",
            "constraints": {
                "url": {"url_prefix": ["https://api.example.com/v1/"]},
                "host": {"domains": ["*.example.com", "example.com"]},
            },
        },
    ]
}
SUBAGENT_SCOPE = {
    "capabilities": [
        {
            "tool": "send_money",
            "constraints": {"amount": {"max": 100}, "recipient": {"one_of": [IBAN]}},
        },
    ]
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=float, default=1e6,
                        help="entries in the log that the root step reads")
    parser.add_argument("--decisions", type=int, default=10_000,
                        help="minimum decisions the gate seals for the record pass")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each")
    options = parser.parse_args()
    entries = int(options.entries)
    if entries < 1 or options.decisions < 1 or options.runs < 1:
        parser.error("--entries, --decisions and --runs must be at least 1")

    print_header("full audit (agentgate audit)")
    workspace = Path(tempfile.mkdtemp(prefix="agentgate-bench-audit-"))
    try:
        receipt = bench_root(workspace / "root", entries, options.runs)
        bench_receipts(receipt, options.runs)
        bench_records(workspace / "gate", options.decisions, options.runs)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


# -- root recomputation -------------------------------------------------------------


def bench_root(directory: Path, size: int, runs: int) -> Receipt:
    """Time the root step on a published log of ``size`` entries.

    Returns a receipt for one of its entries, for ``bench_receipts``.
    """
    directory.mkdir(parents=True)
    database = directory / "log.db"
    signer = bench_signer()
    started = time.perf_counter()
    with Ledger.open(database, signer) as ledger:
        grow(ledger, size)
        size = ledger.size
        index = min(777_777, size - 1)
        receipt = Receipt.build(
            ledger.entries(index, index + 1)[0],
            index,
            ledger.inclusion_proof(index, size),
            ledger.latest_checkpoint(),
        )
        tiles = directory / "tiles"
        store = Store.open(database)
        try:
            publish(ledger, store, tiles)
        finally:
            store.close()
    print(f"root: log of {size:,} entries built and published in "
          f"{time.perf_counter() - started:.0f} s")

    key = str(signer.verifier_key)
    entries = read_entries(tiles, key)
    ours, baseline = [], []
    for number in range(runs):
        seconds = timed_root_step(tiles, key)
        ours.append(seconds)
        started = time.perf_counter()
        plain_root(entries)
        baseline.append(time.perf_counter() - started)
        print(f"root run {number + 1}: audit step {seconds:.2f} s "
              f"({size / seconds:,.0f} entries/s), hashlib loop "
              f"{baseline[-1]:.2f} s ({size / baseline[-1]:,.0f} entries/s)")
    ours_rate = size / median(ours)
    baseline_rate = size / median(baseline)
    print(f"root: median {median(ours):.2f} s, {ours_rate:,.0f} entries/s "
          f"(goal 300,000); hashlib loop {baseline_rate:,.0f} entries/s; "
          f"ours {ours_rate / baseline_rate:.2f}x the loop")
    print()
    return receipt


def root_step(tiles: Path, key: str) -> tuple[int, bytes, bytes]:
    """Run steps 1 to 3 of ``audit_log`` on ``tiles``; return size and both roots.

    The loop is ``audit_log``'s own, less the record checks (``auditor.add``).
    NOTE: it uses the audit's private tile reader, so a change to
    ``audit_log``'s loop must be copied here.
    """
    reader = _TileReader(TileSource(str(tiles)))
    checkpoint, _ = open_checkpoint(reader.checkpoint(), [key])
    auditor = RecordAuditor(checkpoint.origin)
    compact = CompactRange()
    sha256 = hashlib.sha256
    for _, entries, tile_hashes in reader.batches(checkpoint.size, auditor):
        leaves = [sha256(b"\x00" + entry).digest() for entry in entries]
        if leaves != tile_hashes[: len(leaves)]:
            raise SystemExit("a level 0 tile differs from its entries")
        compact.extend(leaves)
    if auditor.findings:
        raise SystemExit(f"the tiles are malformed: {auditor.findings[0].message}")
    return compact.size, compact.root(), checkpoint.root


def timed_root_step(tiles: Path, key: str) -> float:
    """Return the seconds of ``root_step``; exit when the root does not match."""
    started = time.perf_counter()
    size, computed, signed = root_step(tiles, key)
    seconds = time.perf_counter() - started
    if computed != signed:
        raise SystemExit(f"the {size} entries do not hash to the signed root")
    return seconds


def read_entries(tiles: Path, key: str) -> list[bytes]:
    """Read every entry of the published log into memory, for the baseline."""
    reader = _TileReader(TileSource(str(tiles)))
    checkpoint, _ = open_checkpoint(reader.checkpoint(), [key])
    auditor = RecordAuditor(checkpoint.origin)
    entries: list[bytes] = []
    for _, batch, _ in reader.batches(checkpoint.size, auditor):
        entries.extend(batch)
    return entries


def plain_root(entries: list[bytes]) -> bytes:
    """Return the RFC 9162 root of ``entries``, one level of the tree at a time.

    An odd node at the end of a level moves up unchanged, which gives the
    same root as the recursive definition (RFC 9162, section 2.1.1).
    """
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + entry).digest() for entry in entries]
    while len(level) > 1:
        paired = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# -- receipts -----------------------------------------------------------------------


def bench_receipts(receipt: Receipt, runs: int) -> None:
    """Time ``verify_receipt`` with and without the checkpoint's signature."""
    key = str(bench_signer().verifier_key)
    verified = verify_receipt(receipt.text, [key])
    print(f"receipts: entry {verified.index} in a tree of "
          f"{verified.checkpoint.size:,}, {len(receipt.proof)} proof hashes, "
          f"{len(receipt.entry)}-byte entry")

    def without_signature() -> None:
        parsed = parse_receipt(receipt.text)
        checkpoint = parse_checkpoint(parse_note(parsed.checkpoint).text)
        verify_inclusion(
            leaf_hash(parsed.entry),
            parsed.index,
            checkpoint.size,
            parsed.proof,
            checkpoint.root,
        )
        if canonicalize(parse_strict(parsed.entry)) != parsed.entry:
            raise SystemExit("the receipt's entry is not canonical")

    def with_signature() -> None:
        verify_receipt(receipt.text, [key])

    for name, function in (("without Ed25519", without_signature),
                           ("with Ed25519", with_signature)):
        per_receipt = []
        for _ in range(runs):
            started = time.perf_counter()
            for _ in range(RECEIPTS_PER_RUN):
                function()
            per_receipt.append((time.perf_counter() - started) / RECEIPTS_PER_RUN)
        runs_text = ", ".join(f"{s * 1e6:.0f}" for s in per_receipt)
        print(f"receipt {name}: median {median(per_receipt) * 1e6:.0f} µs per "
              f"receipt (runs: {runs_text} µs)")
    print()


# -- record re-verification -----------------------------------------------------------


class Clock:
    """A clock the benchmark advances; the gate reads it for every decision."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SettableScorer:
    """An alignment scorer whose score the benchmark sets before each call."""

    name = "settable"
    version = "1"

    def __init__(self) -> None:
        self.score_value = 0.9

    def score(self, context) -> AlignmentResult:
        label = "aligned" if self.score_value >= 0.5 else "misaligned"
        return AlignmentResult("settable", "1", self.score_value, label, ("set",))


def identity(name: str) -> Identity:
    """Return a fixed identity, so that every run signs the same certificates."""
    return Identity.from_seed(name, hashlib.sha256(b"bench: " + name.encode()).digest())


def build_gate_log(directory: Path, decisions: int) -> tuple[str, str, str]:
    """Let a real gate seal at least ``decisions`` decisions; publish the log.

    Returns the tiles directory, the log's verifier key and the principal's
    verifier key.
    """
    directory.mkdir(parents=True)
    clock = Clock(T0)
    signer = Signer.from_seed(GATE_ORIGIN, hashlib.sha256(b"bench: audit log").digest())
    ledger = open_ledger(directory / "log.db", signer, now=clock())
    vault = ArgumentVault(str(directory / "vault.db"))
    principal, agent = identity("principal.audit"), identity("agent.audit")
    alice, bob = identity("alice.audit"), identity("bob.audit")
    document = load_policy().document()
    document["approvals"] = {
        "approvers": [alice.verifier_key, bob.verifier_key],
        "quorum": 2,
        "expiry_seconds": 600,
        "rules": ["value.large-amount", "alignment"],
    }
    sessions = -(-decisions // DECISIONS_PER_SESSION)
    end = T0 + timedelta(seconds=sessions * 3600 + 86400)
    certificate = issue_certificate(
        principal, agent.verifier_key, AGENT_SCOPE, "bench delegation",
        T0 - timedelta(hours=1), end, max_depth=2,
    )
    scorer = SettableScorer()
    gate = Gate(
        LocalLedgerClient(ledger), str(signer.verifier_key),
        parse_policy(document, "bench policy"), [principal.verifier_key],
        scorer=scorer, vault=vault, clock=clock, default_chain=[certificate],
    )
    gate.register_delegation(certificate)

    started = time.perf_counter()
    sub_certificate = None
    for number in range(sessions):
        if number % DELEGATION_EVERY == 0:
            if sub_certificate is not None:
                gate.revoke(sub_certificate.hash, by=agent, reason="rotated")
            sub_certificate = issue_certificate(
                agent, identity(f"sub{number}.audit").verifier_key, SUBAGENT_SCOPE,
                "bench sub-delegation", clock() - timedelta(minutes=1), end,
                parent=certificate,
            )
            gate.register_delegation(sub_certificate)
        run_session(gate, scorer, clock, [certificate, sub_certificate], alice, bob)
        clock.advance(3600)

    tiles = directory / "tiles"
    store = Store.open(directory / "log.db")
    try:
        publish(ledger, store, tiles)
    finally:
        store.close()
    size = ledger.size
    vault.close()
    ledger.close()
    print(f"records: a gate sealed {size:,} records in {sessions:,} sessions in "
          f"{time.perf_counter() - started:.0f} s")
    return str(tiles), str(signer.verifier_key), principal.verifier_key


def run_session(gate: Gate, scorer: SettableScorer, clock: Clock, sub_chain,
                alice: Identity, bob: Identity) -> None:
    """Make the five decisions of one session, and one of a sub-agent's session."""
    session = gate.session(f"pay the rent to {IBAN}", approval_wait=0)
    session.call("read_balance", {}, lambda: {"balance": 12000})
    clock.advance(1)
    session.call("send_money", {"recipient": IBAN, "amount": 50}, lambda: "paid")
    clock.advance(1)
    large = {"recipient": IBAN, "amount": 9000}
    try:
        session.call("send_money", large, lambda: "paid")
        raise SystemExit("the large payment was not held")
    except ApprovalRequired as held:
        store = gate.approval_store
        for approver in (alice, bob):
            signed = sign_approval(approver, store.request(held.request), "approve",
                                   clock())
            submit_approval(store, signed, clock())
    clock.advance(1)
    session.call("send_money", large, lambda: "paid")
    clock.advance(1)
    scorer.score_value = 0.05
    try:
        session.call("read_news", {}, lambda: "news")
        raise SystemExit("the misaligned call was allowed")
    except Denied:
        pass
    scorer.score_value = 0.9
    clock.advance(1)

    sub_session = gate.session("pay small amounts", chain=sub_chain, approval_wait=0)
    sub_session.call("send_money", {"recipient": IBAN, "amount": 20}, lambda: "paid")
    clock.advance(1)


def bench_records(directory: Path, decisions: int, runs: int) -> None:
    """Time ``audit_log`` on a gate's published log; print decisions per second."""
    tiles, log_key, principal = build_gate_log(directory, decisions)
    totals, roots = [], []
    for number in range(runs):
        result = audit_log(tiles, [log_key], anchors=[principal])
        if not result.ok:
            print(f"the audit found errors: {result.first_bad()}", file=sys.stderr)
            raise SystemExit(1)
        totals.append(result.seconds)
        roots.append(timed_root_step(Path(tiles), log_key))
        count = result.records.get("decision", 0)
        print(f"records run {number + 1}: audit {result.seconds:.2f} s, "
              f"{count / result.seconds:,.0f} decisions/s; root step alone "
              f"{roots[-1]:.2f} s")
    records = ", ".join(f"{kind} {n:,}" for kind, n in sorted(result.records.items()))
    verdicts = ", ".join(f"{kind} {n:,}" for kind, n in sorted(result.verdicts.items()))
    print(f"records: {result.entries:,} entries ({records}); verdicts: {verdicts}; "
          f"{len(result.findings)} warnings")
    count = result.records.get("decision", 0)
    whole = median(totals)
    record_pass = whole - median(roots)
    print(f"records: median audit {whole:.2f} s, {count / whole:,.0f} decisions/s "
          f"(goal 2,000); record pass alone about {record_pass:.2f} s, "
          f"{count / record_pass:,.0f} decisions/s, "
          f"{result.entries / record_pass:,.0f} records/s")


if __name__ == "__main__":
    main()
