"""The cache's SQLite file: connections, recovery from corruption, and write transactions.

Every write runs in ``BEGIN IMMEDIATE`` and first applies this process's unwritten hit
counts (``counters``), which go back to the counters if the write fails. A corrupt file is
renamed to ``cache.sqlite3.corrupt-<ts>`` (with its ``-wal``/``-shm``) and recreated, with a
logged warning: never deleted, it may hold answers worth recovering. A file deleted while in
use is noticed before the next write and created again, with a warning.

A storage fault (a full or failing disk, a home that cannot be written: ``store.faults``)
never fails a call: lookups that cannot read are misses, reports see an empty cache,
best-effort writes are skipped, and ``RETRY_S`` after a failed write the next one tries
again. A lock held past the busy timeout skips a best-effort write, and makes a lookup a
miss, with one warning.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ...core.errors import CacheError
from ...core.settings import ensure_private_dir
from .._pool import ConnectionPool
from .._sqlite import is_corruption, is_locked, move_aside, reset_after_fork, vacuum, write_transaction
from ..faults import FaultState, fault_kind, tell, warn_once
from . import table
from .counters import Counters, Unwritten
from .schema import ensure_schema

__all__ = ["CacheFile", "warn_once"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class CacheFile:
    """One cache file, opened now (so schema races and corruption surface in the constructor),
    with this process's counters. Fork-aware: a child starts with fresh counters.

    ``fault`` is why the file cannot be opened (its directory could not be made): the cache
    then works without it, every lookup a miss, and tries again later unless ``retry`` is
    False (no key could be made: nothing it signs may be stored)."""

    def __init__(self, path: Path, clock: Callable[[], float], *, fault: BaseException | None = None,
                 retry: bool = True) -> None:
        self.path = path
        self._clock = clock
        self.counters = Counters(clock)
        self.fault = FaultState(path, clock=clock)
        self._recover_lock = threading.Lock()
        self.pool = ConnectionPool(path, setup=ensure_schema)
        reset_after_fork(self)
        if fault is not None:
            self._failed(fault, retry=retry)
            return
        try:
            self.run(lambda conn: None)
        except (sqlite3.OperationalError, OSError) as exc:
            self._failed(exc)

    @property
    def writes_enabled(self) -> bool:
        return self.fault.ok

    def _after_fork(self) -> None:
        # In a forked child: the parent's unwritten hit counts are the parent's to write,
        # counters are per process, and a parent thread may have held the lock.
        self.counters = Counters(self._clock)
        self._recover_lock = threading.Lock()

    def _failed(self, exc: BaseException, *, retry: bool = True) -> None:
        """Record a storage fault, or re-raise ``exc`` when it is not one."""
        kind = fault_kind(exc)
        if kind is None:
            raise exc
        self.fault.failed(exc, kind, retry=retry)

    def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op(conn)``; a corrupt database is moved aside, recreated, and ``op`` retried once."""
        try:
            return self.pool.run(op)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            self._recover(exc)
        return self.pool.run(op)

    def read(self, op: Callable[[sqlite3.Connection], T], empty: T) -> T:
        """``run(op)``, or ``empty`` when the file cannot be read (a storage fault)."""
        try:
            return self.run(op)
        except (sqlite3.OperationalError, OSError) as exc:
            if fault_kind(exc) in (None, "locked"):
                raise
            self._failed(exc)
            return empty

    def _recover(self, exc: BaseException) -> None:
        with self._recover_lock:
            opened = self.pool.thread_file_id()
            self.pool.forget_file()
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
        a lock held past the busy timeout, or a file that cannot be read, is a miss.

        Every hit comes here, so the common case asks this thread's open connection directly;
        on any error the read is simply made again through ``read``, which recovers from a
        corrupt, deleted or unreadable file and decides what the user is told."""
        try:
            return self.pool.get().execute(table.LOOKUP, (rowid,)).fetchone()
        except (sqlite3.Error, OSError):
            pass
        try:
            return self.read(lambda conn: conn.execute(table.LOOKUP, (rowid,)).fetchone(), None)
        except sqlite3.OperationalError as err:
            if not is_locked(err):
                raise
            warn_once("get-locked", "The response cache %s is locked; treating lookups as misses.", self.path)
            return None

    def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op`` inside BEGIN IMMEDIATE, after this process's unwritten hit counts. A storage
        fault raises CacheError (one line: why, and the fix); other errors propagate."""
        if not self.fault.due():
            raise CacheError(f"The response cache {self.path} cannot be written now ({self.fault.reason}).")
        taken: Unwritten = []

        def transaction(conn: sqlite3.Connection) -> T:
            nonlocal taken
            with write_transaction(conn):
                taken = self.counters.take_unwritten()
                table.add_hits(conn, taken)
                return op(conn)

        try:
            self._check_in_place()
            result = self.run(transaction)
        except BaseException as exc:
            if taken and not is_corruption(exc):
                self.counters.give_back(taken)
            if isinstance(exc, (sqlite3.OperationalError, OSError)) and fault_kind(exc) not in (None, "locked"):
                self._failed(exc)
                reason = self.fault.reason
                raise CacheError(f"The response cache {self.path} cannot be written now ({reason}).") from exc
            raise
        if self.fault.cleared():
            log.info("The response cache %s can be written again: caching is back on.", self.path)
        return result

    def _check_in_place(self) -> None:
        """A cache file deleted while in use is created again (the pool reopens), one replaced
        is used instead, with a warning; after a fault, the directory is created again too."""
        change = self.pool.check_in_place()
        if change == "deleted" or not self.fault.ok:
            ensure_private_dir(self.path.parent)
        if change is not None:
            self.counters.forget()
            tell(f"The response cache {self.path} was deleted while in use: a new empty cache was created."
                 if change == "deleted" else
                 f"The response cache {self.path} was replaced while in use: the file now there is used.")

    def try_write(self, op: Callable[[sqlite3.Connection], Any]) -> bool:
        """Best-effort ``write``: False when the database cannot be written now."""
        if not self.fault.due():
            return False
        try:
            self.write(op)
        except CacheError:
            if self.fault.ok:            # not a storage fault (a closed cache): the caller's to see
                raise
            return False
        except sqlite3.OperationalError as exc:
            if is_locked(exc):
                warn_once("locked", "The response cache %s stayed locked: a write was skipped (%s).", self.path, exc)
                return False
            raise
        return True

    def write_hits(self) -> None:
        """Write this process's unwritten hit counts and recency (best effort)."""
        if not self.fault.due():
            self.counters.forget()       # nowhere to write them: keep memory bounded
        elif self.counters.has_unwritten():
            self.try_write(lambda conn: None)

    def vacuum(self) -> None:
        """Give free pages back to the file system (best effort)."""
        self.read(vacuum, None)

    def close(self) -> None:
        """Write unwritten hit counts and close every connection. Idempotent."""
        if self.pool.closed:
            return
        with contextlib.suppress(sqlite3.Error, CacheError):
            self.write_hits()
        self.pool.close()
