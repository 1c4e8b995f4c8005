"""Ledger rows that could not be written yet (a full disk, a read-only home), kept in memory.

At most ``limit`` rows are kept, the newest: older ones are dropped and counted, so a long
run on a full disk costs bounded memory and says how much history it lost. Each row gets a
provisional negative id (-1, -2, …) so reports can show it before it has a real one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from .faults import MAX_UNSAVED_ROWS

__all__ = ["Filter", "UnsavedRows", "matches"]

# (column, accepted values) pairs and a lower bound on ts: what Ledger.rows filters by
Filter = tuple[float | None, list[tuple[str, list[Any]]]]


def matches(row: dict[str, Any], where: Filter) -> bool:
    since, columns = where
    if since is not None and row["ts"] < since:
        return False
    return all(row[column] in values for column, values in columns)


class UnsavedRows:
    """The rows waiting to be written, oldest first; the oldest go beyond ``limit``."""

    def __init__(self, limit: int = MAX_UNSAVED_ROWS) -> None:
        self.limit = limit
        self._rows: deque[dict[str, Any]] = deque()
        self._last_id = 0
        self.dropped = 0          # rows dropped since the last successful write

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, rows: Iterable[dict[str, Any]]) -> list[int]:
        """Keep ``rows`` (column -> value, without id); return their provisional ids."""
        ids = []
        for values in rows:
            self._last_id -= 1
            self._rows.append({"id": self._last_id, **values})
            ids.append(self._last_id)
        while len(self._rows) > self.limit:
            self._rows.popleft()
            self.dropped += 1
        return ids

    def values(self) -> list[dict[str, Any]]:
        """The rows to write, oldest first, without their provisional ids."""
        return [{k: v for k, v in row.items() if k != "id"} for row in self._rows]

    def matching(self, where: Filter) -> list[dict[str, Any]]:
        return [dict(row) for row in self._rows if matches(row, where)]

    def written(self) -> tuple[int, int]:
        """Forget the rows (they are in the file now); return (rows written, rows dropped)."""
        counts = len(self._rows), self.dropped
        self._rows.clear()
        self.dropped = 0
        return counts
