"""Prometheus metrics of the log server, each server in a registry of its own."""

from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..errors import LedgerError
from ..log import Ledger
from ..receipt import Receipt

__all__ = ["MeteredLedger", "RequestMetrics", "ServerMetrics"]

# Standard methods (RFC 9110 section 9 and PATCH); clients may send others.
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


class ServerMetrics:
    """Prometheus metrics of one server, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.appends = Counter(
            "agentgate_ledger_appends",
            "Receipts returned by POST /v1/entries.",
            registry=self.registry,
        )
        self.batches = Counter(
            "agentgate_ledger_batches",
            "Batches the sequencer wrote, each one transaction and one checkpoint.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "agentgate_ledger_batch_size",
            "Entries per batch written by the sequencer.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "agentgate_ledger_append_seconds",
            "Seconds from a complete request body to its receipt.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.tree_size = Gauge(
            "agentgate_ledger_tree_size",
            "Entries in the log as this server last saw it.",
            registry=self.registry,
        )
        self.requests = Counter(
            "agentgate_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        return generate_latest(self.registry)


class MeteredLedger:
    """The ledger methods a ``Sequencer`` calls, counting each batch written."""

    def __init__(self, ledger: Ledger, metrics: ServerMetrics) -> None:
        self._ledger = ledger
        self._metrics = metrics

    def append_each(
        self, items: Sequence[tuple[bytes, str | None]]
    ) -> list[Receipt | LedgerError]:
        outcomes = self._ledger.append_each(items)
        self._count(sum(isinstance(outcome, Receipt) for outcome in outcomes))
        return outcomes

    def append_batch(self, items: Sequence[tuple[bytes, str | None]]) -> list[Receipt]:
        receipts = self._ledger.append_batch(items)
        self._count(len(receipts))
        return receipts

    def store_checkpoints(self) -> int:
        return self._ledger.store_checkpoints()

    def _count(self, receipts: int) -> None:
        if receipts:
            self._metrics.batches.inc()
            self._metrics.batch_size.observe(receipts)


class RequestMetrics:
    """ASGI middleware that counts every HTTP request by route and status.

    ``templates`` maps each endpoint function to its path template. The
    router puts the matched endpoint in the scope, and the label is its
    template, so ``/tile/0/000`` counts as ``/tile/{level}/{index_path:path}``.
    Methods other than the standard HTTP ones count as ``other``.
    """

    def __init__(
        self, app: Any, metrics: ServerMetrics, templates: dict[Any, str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates
        # Label lookups take a lock and validate the labels; the counter of
        # each label set is looked up once and kept.
        self._counters: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_record(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # Unmatched paths share one label, so scanners cannot grow the
            # label set.
            template = self.templates.get(scope.get("endpoint"), "unmatched")
            method = scope["method"] if scope["method"] in _METHODS else "other"
            labels = (template, method, str(status))
            counter = self._counters.get(labels)
            if counter is None:
                counter = self.metrics.requests.labels(*labels)
                self._counters[labels] = counter
            counter.inc()
