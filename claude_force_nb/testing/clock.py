"""``ManualClock``: a wall clock that moves only when a test says so."""

from __future__ import annotations

import threading

__all__ = ["ManualClock"]

DEFAULT_START = 1_800_000_000.0
"""2027-01-15T08:00:00Z: a fixed, round epoch second, so time stamps in tests are exact."""


class ManualClock:
    """Epoch seconds that change only through ``advance`` (or ``set``); thread-safe.

    Pass it as ``FakeAnthropicServer(clock=clock)``: rate-limit buckets refill, overload and
    outage periods end, batches finish and stalled requests give up when the test advances it,
    never by themselves::

        clock = ManualClock()
        with FakeAnthropicServer(clock=clock, requests_per_minute=60) as server:
            ...
            clock.advance(1.0)        # one more request's worth of capacity
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (epoch seconds), forward or back: for tests of clock jumps."""
        with self._lock:
            self._now = float(now)

    def __repr__(self) -> str:
        return f"ManualClock({self():.3f})"
