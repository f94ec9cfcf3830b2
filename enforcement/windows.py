"""Sliding-window sums of weighted events, for rate limits and volume rules.

Each key (an agent, a session, a tool of an agent, or the records or bytes
of a data class read by one of them) has a series of events, each a moment
in POSIX seconds and a weight. ``total`` returns the summed weight of the
events in ``(now - window, now]`` in O(log n): the series keeps running
totals, and a binary search finds the first event inside the window.
Events older than ``horizon`` seconds (the longest window of any rule) are
dropped when a newer event is added to their key. A key whose newest event
is that old is forgotten by a sweep every ``_SWEEP_AFTER`` additions, and
``discard`` forgets keys at once (a session's, when it ends), so keys that
stop receiving events do not pile up in a long-running gate.

The moments of one key never decrease: an event added with an earlier
moment than the key's last event (a clock that went backwards) is recorded
at the last event's moment. That can only keep an event inside a window
longer, so a limit is never checked against fewer events than happened.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

# Dropped events are removed from the front of a series in one slice once
# this many have accumulated, so that each removal costs O(1) amortized.
_COMPACT_AFTER = 256
# Additions between two sweeps for keys without an event inside the horizon.
_SWEEP_AFTER = 4096


class _Series:
    """The events of one key: moments in order and running totals of weights."""

    __slots__ = ("moments", "totals", "start", "base")

    def __init__(self) -> None:
        self.moments: list[float] = []
        # totals[i] is the summed weight of the key's events up to and
        # including event i, dropped events included. ``base`` is the summed
        # weight of the events already removed from the lists.
        self.totals: list[int] = []
        self.base = 0
        # Events before this index are dropped but not yet removed.
        self.start = 0

    def add(self, moment: float, weight: int) -> None:
        if self.moments and moment < self.moments[-1]:
            moment = self.moments[-1]
        self.moments.append(moment)
        self.totals.append((self.totals[-1] if self.totals else self.base) + weight)

    def drop_until(self, moment: float) -> None:
        """Drop the events at or before ``moment``."""
        self.start = max(self.start, bisect_right(self.moments, moment, self.start))
        if self.start >= _COMPACT_AFTER and self.start * 2 >= len(self.moments):
            self.base = self.totals[self.start - 1]
            del self.moments[:self.start]
            del self.totals[:self.start]
            self.start = 0

    def since(self, moment: float) -> int:
        """Return the summed weight of the events after ``moment``."""
        if not self.totals:
            return 0
        first = bisect_right(self.moments, moment, self.start)
        before = self.totals[first - 1] if first > 0 else self.base
        return self.totals[-1] - before


class Windows:
    """Series of weighted events per key, kept for ``horizon`` seconds."""

    def __init__(self, horizon: float) -> None:
        self._horizon = horizon
        self._series: dict[str, _Series] = {}
        self._added = 0

    def total(self, key: str, now: float, window: float) -> int:
        """Return the summed weight of the events in ``(now - window, now]``.

        Events recorded after ``now`` (when the clock went backwards) count
        as inside the window.
        """
        series = self._series.get(key)
        if series is None:
            return 0
        return series.since(now - window)

    def add(self, key: str, now: float, weight: int = 1,
            horizon: float | None = None) -> None:
        """Record an event of ``weight`` at ``now`` under ``key``.

        ``horizon`` (at most the windows' own) is the longest window that
        is ever read from ``key``; its events older than that are dropped.
        """
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        keep = self._horizon if horizon is None else min(horizon, self._horizon)
        series.drop_until(now - keep)
        series.add(now, weight)
        self._added += 1
        if self._added >= _SWEEP_AFTER:
            self._added = 0
            self._drop_idle(now - self._horizon)

    def discard(self, keys: Iterable[str]) -> None:
        """Forget the events of ``keys``; their totals start again from zero."""
        for key in keys:
            self._series.pop(key, None)

    def __len__(self) -> int:
        return len(self._series)

    def _drop_idle(self, moment: float) -> None:
        """Forget the keys whose newest event is at or before ``moment``.

        Such a key adds nothing to any window of at most ``horizon`` seconds.
        """
        idle = [key for key, series in self._series.items()
                if series.moments and series.moments[-1] <= moment]
        for key in idle:
            del self._series[key]
