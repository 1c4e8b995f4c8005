"""A clock for tests of waiting: time moves only when the code under test sleeps (or the test says so)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime


class FakeClock:
    """Monotonic seconds (``clock()``), epoch seconds (``clock.wall()``) and an async ``sleep``.

    ``sleep`` records each wait in ``sleeps``, yields once to the loop (tasks that are ready
    run first, at the old time, as they would while a real sleep is pending), then jumps the
    time ahead instead of waiting.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._wall_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)
        self.advance(max(0.0, seconds))

    def rfc3339(self, in_s: float) -> str:
        """The wall time ``in_s`` seconds from now, as the API writes its rate-limit resets."""
        return datetime.fromtimestamp(self.wall() + in_s, tz=UTC).isoformat().replace("+00:00", "Z")
