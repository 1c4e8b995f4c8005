"""Showing the orchestrator's pacing in the notebook: status lines that say a run is
held back (429, 529, the API's own limits), and the counters behind ``%agent pacing``.

The Pacer lives on the runner loop, so the watch polls it there with a loop timer:
nothing blocks the kernel, and what it shows goes out through display handles and
widget state, which any thread may update.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..engine import runner

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.pacing import PacingStats

__all__ = ["PacingWatch", "pacing_line", "pacing_summary"]

WATCH_EVERY_S = 0.2


def pacing_line(stats: PacingStats) -> str | None:
    """What a waiting cell says about pacing ("paced: 429, resuming in 1.2s"); None when not paced."""
    return stats.status if stats.pacing else None


def pacing_summary(stats: PacingStats) -> str:
    """The counters of ``%agent pacing``, on two lines."""
    return (
        f"Pacing: {stats.status}\n"
        f"429 (rate limited): {stats.rate_limited} · 529 (overloaded): {stats.overloaded} · "
        f"waited {stats.waited_s:.1f} s · concurrency {stats.concurrency} of {stats.max_concurrency} "
        f"({stats.in_flight} in flight)"
    )


class PacingWatch:
    """Calls ``show(line)`` whenever the pacing line changes (None: no longer paced).

    ``stats`` is read every ``every_s`` on the runner loop, and ``show`` is called there.
    ``stop()`` may be called from any thread, more than once; once it has returned,
    ``show`` is not called again.
    """

    def __init__(self, stats: Callable[[], PacingStats], show: Callable[[str | None], None],
                 every_s: float = WATCH_EVERY_S) -> None:
        self._stats, self._show, self.every_s = stats, show, every_s
        self._lock = threading.Lock()
        self._stopped = False
        self._shown: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop = runner.get_loop()
        self._loop.call_soon_threadsafe(self._tick)

    def _tick(self) -> None:
        with self._lock:
            if self._stopped:
                return
            line = pacing_line(self._stats())
            if line != self._shown:
                self._shown = line
                self._show(line)
            self._timer = self._loop.call_later(self.every_s, self._tick)

    def stop(self) -> None:
        with self._lock:  # waits for a tick that is showing something right now
            self._stopped = True
            timer, self._timer = self._timer, None
        if timer is not None:
            self._loop.call_soon_threadsafe(timer.cancel)
