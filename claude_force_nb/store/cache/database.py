"""The cache's SQLite file: connections, recovery from corruption, and write transactions.

Every write runs in ``BEGIN IMMEDIATE`` and first applies this process's unwritten hit
counts (``counters``), which go back to the counters if the write fails. A corrupt file is
renamed to ``cache.sqlite3.corrupt-<ts>`` (with its ``-wal``/``-shm``) and recreated, with a
logged warning: never deleted, it may hold answers worth recovering. A full disk turns
writes off for this process and keeps reads working; a lock held past the busy timeout
skips a best-effort write, and makes a lookup a miss, with one warning.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._pool import ConnectionPool
from .._sqlite import (
    is_corruption,
    is_disk_full,
    is_locked,
    move_aside,
    reset_after_fork,
    vacuum,
    write_transaction,
)
from ...core.errors import CacheError
from . import table
from .counters import Counters, Unwritten
from .schema import ensure_schema

__all__ = ["CacheFile", "warn_once"]

log = logging.getLogger(__name__)

_warned: set[str] = set()           # warnings already logged by this process


def warn_once(tag: str, message: str, *args: Any) -> None:
    """Log a warning the first time ``tag`` is seen in this process."""
    if tag not in _warned:
        _warned.add(tag)
        log.warning(message, *args)


class CacheFile:
    """One cache file, opened now (so schema races and corruption surface in the constructor),
    with this process's counters. Fork-aware: a child starts with fresh counters."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        self.counters = Counters(clock)
        self.writes_enabled = True
        self._recover_lock = threading.Lock()
        self.pool = ConnectionPool(path, setup=ensure_schema)
        reset_after_fork(self)
        self.run(lambda conn: None)

    def _after_fork(self) -> None:
        # In a forked child: the parent's unwritten hit counts are the parent's to write,
        # counters are per process, and a parent thread may have held the lock.
        self.counters = Counters(self._clock)
        self._recover_lock = threading.Lock()

    def run(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``op(conn)``; a corrupt database is moved aside, recreated, and ``op`` retried once."""
        try:
            return op(self.pool.get())
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            self._recover(exc)
        return op(self.pool.get())

    def _recover(self, exc: BaseException) -> None:
        with self._recover_lock:
            opened = self.pool.thread_file_id()
            self.pool.reset()
            # another thread or process may have moved it aside and made a new file already
            if opened is not None and self.pool.file_id_at_path() == opened:
                target = move_aside(self.path)
                log.warning(
                    "The response cache %s was corrupt (%s); it was moved to %s and a new empty cache "
                    "was created. Delete the old file once you no longer need it.",
                    self.path, exc, target,
                )
            self.counters.forget()

    def lookup(self, rowid: int) -> tuple[Any, Any] | None:
        """(payload, sig) of the row ``rowid`` as bytes, or None. Corruption is recovered from;
        a lock held past the busy timeout is a miss."""
        try:
            return self.pool.get().execute(table.LOOKUP, (rowid,)).fetchone()
        except sqlite3.DatabaseError as exc:
            try:
                if not is_corruption(exc):
                    raise
                self._recover(exc)
                return self.run(lambda conn: conn.execute(table.LOOKUP, (rowid,)).fetchone())
            except sqlite3.OperationalError as err:
                if not is_locked(err):
                    raise
                warn_once("get-locked", "The response cache %s is locked; treating lookups as misses.", self.path)
                return None

    def write(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        """``op`` inside BEGIN IMMEDIATE, after this process's unwritten hit counts. Errors propagate."""
        taken: Unwritten = []

        def transaction(conn: sqlite3.Connection) -> Any:
            nonlocal taken
            with write_transaction(conn):
                taken = self.counters.take_unwritten()
                table.add_hits(conn, taken)
                return op(conn)

        try:
            return self.run(transaction)
        except BaseException as exc:
            if taken and not is_corruption(exc):
                self.counters.give_back(taken)
            if is_disk_full(exc):
                self._disable_writes(exc)
            raise

    def try_write(self, op: Callable[[sqlite3.Connection], Any]) -> bool:
        """Best-effort ``write``: False (and a log line) when the database cannot be written."""
        if not self.writes_enabled:
            return False
        try:
            self.write(op)
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):
                return False
            if is_locked(exc):
                warn_once("locked", "The response cache %s stayed locked: a write was skipped (%s).", self.path, exc)
                return False
            raise
        return True

    def write_hits(self) -> None:
        """Write this process's unwritten hit counts and recency (best effort)."""
        if not self.writes_enabled:
            self.counters.forget()       # nowhere to write them: keep memory bounded
        elif self.counters.has_unwritten():
            self.try_write(lambda conn: None)

    def _disable_writes(self, exc: BaseException) -> None:
        self.writes_enabled = False
        log.warning(
            "The disk holding the response cache %s is full (%s): caching new responses is off for "
            "this process; cached answers are still served. Free space and restart the kernel.",
            self.path, exc,
        )

    def vacuum(self) -> None:
        """Give free pages back to the file system (best effort)."""
        self.run(vacuum)

    def close(self) -> None:
        """Write unwritten hit counts and close every connection. Idempotent."""
        if self.pool.closed:
            return
        with contextlib.suppress(sqlite3.Error, CacheError):
            self.write_hits()
        self.pool.close()
