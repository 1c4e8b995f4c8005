"""Per-process counters of a ResponseCache, and the hit counts not yet written to its file.

A hit never writes on its own: it adds to this process's unwritten counts (key -> hits and
the latest hit's time), which the next write transaction applies to the ``hits`` and
``last_access`` columns: a put, delete or prune, ``close()``, or the write a hit asks for
when the last one is ``FLUSH_INTERVAL_S`` old or more than ``MAX_UNWRITTEN_KEYS`` keys wait.
So recency (the size cap's approximate LRU) is at most an hour stale, and a process killed
in between loses its unwritten counts (never entries). A write per hit would cost ~5x on hit
latency (facts/cache-design.md §4).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["FLUSH_INTERVAL_S", "MAX_UNWRITTEN_KEYS", "Counters", "Unwritten"]

FLUSH_INTERVAL_S = 3600.0
MAX_UNWRITTEN_KEYS = 1024

Unwritten = list[tuple[str, int, float]]       # (key, hits, latest hit time)


class Counters:
    """Hits, misses, integrity failures and evictions of this process, under one lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.hits = self.misses = self.integrity_failures = self.evictions = 0
        self._unwritten: dict[str, int] = {}        # key -> hits not yet written
        self._latest: dict[str, float] = {}         # key -> time of its latest hit
        self._due = clock() + FLUSH_INTERVAL_S      # when unwritten counts are due a write

    def hit(self, key: str, now: float) -> bool:
        """Count a hit on ``key`` at ``now``; True when the unwritten counts are due a write."""
        with self._lock:
            self.hits += 1
            self._unwritten[key] = self._unwritten.get(key, 0) + 1
            self._latest[key] = now
            return now >= self._due or len(self._unwritten) > MAX_UNWRITTEN_KEYS

    def miss(self, *, tampered_key: str | None = None) -> None:
        """Count a miss; with ``tampered_key``, an integrity failure too (its unwritten hits go)."""
        with self._lock:
            self.misses += 1
            if tampered_key is not None:
                self.integrity_failures += 1
                self._forget(tampered_key)

    def evicted(self, rows: int) -> None:
        with self._lock:
            self.evictions += rows

    def has_unwritten(self) -> bool:
        return bool(self._unwritten)

    def take_unwritten(self) -> Unwritten:
        """Remove and return the unwritten counts (for the write transaction that applies them)."""
        with self._lock:
            taken = [(key, hits, self._latest[key]) for key, hits in self._unwritten.items()]
            self._unwritten, self._latest = {}, {}
            self._due = self._clock() + FLUSH_INTERVAL_S
        return taken

    def give_back(self, taken: Unwritten) -> None:
        """Return counts whose write failed, merged with hits counted since."""
        with self._lock:
            for key, hits, latest in taken:
                self._unwritten[key] = self._unwritten.get(key, 0) + hits
                self._latest[key] = max(latest, self._latest.get(key, latest))

    def forget(self, key: str | None = None) -> None:
        """Drop the unwritten counts of ``key`` (of every key when None): its row is going."""
        with self._lock:
            if key is None:
                self._unwritten, self._latest = {}, {}
            else:
                self._forget(key)

    def _forget(self, key: str) -> None:
        self._unwritten.pop(key, None)
        self._latest.pop(key, None)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            hits, misses = self.hits, self.misses
            failures, evictions = self.integrity_failures, self.evictions
        lookups = hits + misses
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / lookups if lookups else 0.0,
            "integrity_failures": failures,
            "evictions": evictions,
        }
