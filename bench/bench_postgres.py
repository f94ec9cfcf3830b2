"""Time 2 and 4 ``agentgate serve`` processes appending to one PostgreSQL log.

For each server count, a new log is created in a schema of its own on the
PostgreSQL server at ``--url`` (default 127.0.0.1:5432, database test). The
servers run as separate processes on the same log, and one wrk per server
(bench/append.lua) loads them at once, ``--connections`` connections in
all, for ``--duration`` seconds; the sum of their receipts/s is the figure.

Then the result is checked to be one consistent log: ``--verify`` more
appends per server, sent by asyncio clients, return receipts that each
verify with the independent ``verifier``; the stored leaves have no
duplicate index and no gap; every stored and returned checkpoint of one
size has one root; and each of those checkpoints is proved consistent with
the final one. Last, the bytes per entry beyond the entry itself are
``pg_total_relation_size`` of the log tables divided by the entries, minus
their mean length.

The baseline, in the same run, is one server on the same PostgreSQL.

Run from the repository root::

    .venv/bin/python bench/bench_postgres.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import shutil
import sys
import tempfile
import threading
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx
from bench_http import LogServer, run_wrk
from common import (
    BENCH_TOKEN,
    DEFAULT_PG_URL,
    ORIGIN,
    bench_signer,
    decision_record,
    print_header,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import verifier
from ledger import Ledger

TABLES = ("log_head", "leaves", "nodes", "checkpoints", "log_keys")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_PG_URL, help="PostgreSQL URL")
    parser.add_argument("--servers", default="1,2,4",
                        help="server counts to run, comma-separated; 1 is the "
                        "baseline")
    parser.add_argument("--connections", type=int, default=64,
                        help="wrk connections in all, split between the servers")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load")
    parser.add_argument("--verify", type=int, default=500,
                        help="appends per server whose receipts are verified")
    args = parser.parse_args()

    print_header("ledger on PostgreSQL: several agentgate serve processes, one log")
    engine = create_engine(args.url, poolclass=NullPool)
    rates = {}
    try:
        for count in (int(value) for value in args.servers.split(",")):
            rates[count] = run_servers(engine, args, count)
    finally:
        engine.dispose()
    if 1 in rates:
        for count, rate in rates.items():
            print(f"{count} servers: {rate:.0f} receipts/s, {rate / rates[1]:.2f}x one")


def run_servers(engine, args, count: int) -> float:
    """Load ``count`` servers on a new log; check it; return receipts/s."""
    schema = "agentgate_bench_" + secrets.token_hex(4)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(args.url).update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)
    scratch = Path(tempfile.mkdtemp(prefix="agentgate-bench-"))
    print(f"## {count} server{'s' if count > 1 else ''} on one log ({schema})")
    try:
        Ledger.open(url, bench_signer()).close()
        with ExitStack() as stack:
            servers = [
                stack.enter_context(LogServer(scratch, url)) for _ in range(count)
            ]
            rate = load(servers, args, count)
            texts = asyncio.run(append_for_receipts(servers, args.verify))
            final_note = httpx.get(servers[0].base_url + "/v1/checkpoint").text
            check_one_log(url, servers[-1].base_url, texts, final_note)
        disk_usage(url, schema)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print()
    return rate


def load(servers: list[LogServer], args, count: int) -> float:
    """Run one wrk per server at once; return the summed receipts/s."""
    results: list[dict] = [{} for _ in servers]
    per_server = max(1, args.connections // count)

    def one(position: int) -> None:
        results[position] = run_wrk(
            servers[position].base_url, per_server, args.duration, position + 1
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for position, result in enumerate(results):
        if not result:
            raise RuntimeError(f"wrk against server {position + 1} failed")
        print(
            f"server {position + 1}: {result['rate']:.0f} receipts/s, p50 "
            f"{result['p50']:.1f} ms, p99 {result['p99']:.1f} ms ({per_server} "
            "connections)"
        )
    total = sum(result["rate"] for result in results)
    print(f"all servers: {total:.0f} receipts/s")
    return total


async def append_for_receipts(servers: list[LogServer], count: int) -> list[str]:
    """Append ``count`` entries through each server at once; return the receipts."""

    async def share(position: int, base_url: str, client_number: int) -> list[str]:
        texts = []
        # Plain HTTP: verify=False only skips loading CA certificates.
        async with httpx.AsyncClient(
            base_url=base_url, timeout=60, verify=False
        ) as client:
            for number in range(client_number, count, 8):
                entry = decision_record(10**9 + number, worker=position + 100)
                response = await client.post(
                    "/v1/entries",
                    content=entry,
                    headers={
                        "Authorization": f"Bearer {BENCH_TOKEN}",
                        "Content-Type": "application/json",
                    },
                )
                response.raise_for_status()
                texts.append(response.json()["receipt"])
        return texts

    shares = await asyncio.gather(
        *(
            share(position, server.base_url, client)
            for position, server in enumerate(servers)
            for client in range(8)
        )
    )
    return [text for texts in shares for text in texts]


def check_one_log(url: str, base_url: str, texts: list[str], final_note: str) -> None:
    """Check receipts, leaves and checkpoints as the module docstring describes."""
    key = str(bench_signer().verifier_key)
    final = verifier.verify_checkpoint(final_note, [key], ORIGIN)
    verified = [verifier.verify_receipt(text, [key], origin=ORIGIN) for text in texts]
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows, distinct, low, high = connection.execute(
                text(
                    "SELECT count(*), count(DISTINCT leaf_index), min(leaf_index), "
                    "max(leaf_index) FROM leaves"
                )
            ).one()
            notes = connection.execute(text("SELECT note FROM checkpoints")).scalars()
            roots = defaultdict(set)
            for note in notes:
                stored = verifier.verify_checkpoint(note, [key], ORIGIN)
                roots[stored.size].add(stored.root)
    finally:
        engine.dispose()
    for receipt in verified:
        roots[receipt.checkpoint.size].add(receipt.checkpoint.root)
    if not rows == distinct == high + 1 == final.size or low != 0:
        raise AssertionError(
            f"leaves: {rows} rows, {distinct} distinct indexes in [{low}, {high}], "
            f"final checkpoint size {final.size}"
        )
    forks = {size: len(found) for size, found in roots.items() if len(found) > 1}
    if forks:
        raise AssertionError(f"tree sizes with several roots: {forks}")
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for size, (root,) in sorted(roots.items()):
            if size == final.size:
                continue
            response = client.get(
                "/v1/proofs/consistency", params={"first": size, "second": final.size}
            )
            response.raise_for_status()
            proof = [base64.b64decode(digest) for digest in response.json()["proof"]]
            verifier.verify_consistency(size, final.size, proof, root, final.root)
    print(
        f"one log: {rows} leaves, no duplicate index; {len(verified)} receipts "
        f"verified; {len(roots)} checkpoint sizes, each consistent with the final "
        f"size {final.size}"
    )


def disk_usage(url: str, schema: str) -> None:
    """Print the table bytes per entry beyond the entry's own length."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            total = sum(
                connection.execute(
                    text("SELECT pg_total_relation_size(:table)"),
                    {"table": f'"{schema}"."{table}"'},
                ).scalar_one()
                for table in TABLES
            )
            entries, entry_bytes = connection.execute(
                text("SELECT count(*), sum(length(entry)) FROM leaves")
            ).one()
    finally:
        engine.dispose()
    mean = entry_bytes / entries
    print(
        f"bytes on disk: {total} for {entries} entries, {total / entries:.0f} per "
        f"entry, {total / entries - mean:.0f} beyond the mean entry of "
        f"{mean:.0f} bytes"
    )


if __name__ == "__main__":
    sys.exit(main())
