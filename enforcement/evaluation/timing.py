"""A scorer wrapper that records how long each score takes."""

from __future__ import annotations

import statistics
import time

from enforcement.alignment import AlignmentResult, Scorer, ScoringContext


class TimedScorer:
    """Delegates to a scorer and keeps the duration of every call, in seconds."""

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.durations: list[float] = []

    def score(self, context: ScoringContext) -> AlignmentResult:
        started = time.perf_counter()
        try:
            return self.inner.score(context)
        finally:
            self.durations.append(time.perf_counter() - started)

    def summary(self) -> dict[str, float | int]:
        """Return the count and the p50/p99 latency in microseconds."""
        if not self.durations:
            return {"calls": 0}
        ordered = sorted(self.durations)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return {
            "calls": len(ordered),
            "p50_us": round(statistics.median(ordered) * 1e6, 1),
            "p99_us": round(p99 * 1e6, 1),
        }
