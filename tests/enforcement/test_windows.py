"""Sliding windows: the running-total windows against a literal reference that
sums every event it keeps, for random event streams and queries."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from enforcement.windows import Windows

HORIZON = 100.0


class ReferenceWindows:
    """Keep every event of a key and sum those inside the window on each query."""

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self.events: dict[str, deque[tuple[float, int]]] = {}

    def total(self, key: str, now: float, window: float) -> int:
        return sum(weight for moment, weight in self.events.get(key, ())
                   if now - window < moment and moment > now - self.horizon)

    def add(self, key: str, now: float, weight: int = 1) -> None:
        self.events.setdefault(key, deque()).append((now, weight))


operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "total"]),
        st.sampled_from(["agent:a", "session:s", "tool:a:t"]),
        st.sampled_from([0.0, 0.5, 1.0, 7.0, 60.0]),
        st.integers(min_value=1, max_value=5),
        st.sampled_from([1.0, 10.0, 60.0, HORIZON]),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_totals_match_reference(steps):
    windows = Windows(HORIZON)
    reference = ReferenceWindows(HORIZON)
    now = 0.0

    for action, key, advance, weight, window in steps:
        now += advance
        if action == "add":
            windows.add(key, now, weight)
            reference.add(key, now, weight)
        else:
            assert windows.total(key, now, window) == reference.total(
                key, now, window), (key, now, window)


def test_totals_across_compactions():
    """Dropped events leave the lists in batches; every total stays exact."""
    windows = Windows(10.0)
    reference = ReferenceWindows(10.0)

    for second in range(2000):
        windows.add("k", float(second), second % 3 + 1)
        reference.add("k", float(second), second % 3 + 1)
        events = reference.events["k"]
        while events[0][0] <= second - 10.0:
            events.popleft()
        for window in (3.0, 10.0):
            assert windows.total("k", float(second), window) == reference.total(
                "k", float(second), window), (second, window)


def test_window_excludes_its_start():
    windows = Windows(HORIZON)
    windows.add("k", 40.0)
    windows.add("k", 50.0)

    assert windows.total("k", 100.0, 60.0) == 1
    assert windows.total("k", 100.0, 60.5) == 2


def test_unknown_key_totals_zero():
    assert Windows(HORIZON).total("nobody", 5.0, 10.0) == 0


def test_backwards_clock_keeps_event_later():
    windows = Windows(HORIZON)
    windows.add("k", 50.0)
    windows.add("k", 20.0)

    # The second event counts as made at 50, so a window ending at 75 that
    # starts after 20 still contains both.
    assert windows.total("k", 75.0, 30.0) == 2


def test_discard_forgets_keys():
    windows = Windows(HORIZON)
    windows.add("session:a", 1.0)
    windows.add("session:b", 1.0)

    windows.discard(["session:a", "session:unknown"])

    assert windows.total("session:a", 2.0, HORIZON) == 0
    assert windows.total("session:b", 2.0, HORIZON) == 1
    assert len(windows) == 1


def test_idle_keys_swept(monkeypatch):
    """Keys without an event inside the horizon go at the next sweep; others stay."""
    monkeypatch.setattr("enforcement.windows._SWEEP_AFTER", 4)
    windows = Windows(HORIZON)
    windows.add("idle", 0.0)
    windows.add("recent", 50.0)
    windows.add("busy", 60.0)

    windows.add("busy", HORIZON + 1.0)

    assert len(windows) == 2
    assert windows.total("recent", HORIZON + 1.0, HORIZON) == 1
    assert windows.total("busy", HORIZON + 1.0, HORIZON) == 2


def test_key_horizon_drops_older_events():
    """A key added with a shorter horizon keeps only the events inside it."""
    windows = Windows(HORIZON)
    windows.add("agent:a", 1.0, horizon=10.0)
    windows.add("agent:a", 5.0, horizon=10.0)
    windows.add("agent:a", 12.0, horizon=10.0)

    assert windows.total("agent:a", 12.0, 10.0) == 2
    assert windows.total("agent:a", 12.0, HORIZON) == 2


def test_key_horizon_capped_by_windows_horizon():
    windows = Windows(HORIZON)
    windows.add("agent:a", 0.0, horizon=10 * HORIZON)
    windows.add("agent:a", HORIZON + 1.0, horizon=10 * HORIZON)

    assert windows.total("agent:a", HORIZON + 1.0, 10 * HORIZON) == 1
