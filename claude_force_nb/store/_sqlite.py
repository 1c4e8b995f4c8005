"""Shared SQLite plumbing for the cache and the ledger (private); connections are in ``_pool``.

- ``write_transaction``: ``BEGIN IMMEDIATE`` … ``COMMIT`` with rollback on error (a failed
  ``COMMIT`` included: on a full disk SQLite may leave the transaction open).
- ``retry_locked``: retry a callable while SQLite reports "database is locked/busy" —
  used for schema creation, which several kernels may attempt at the same moment.
- ``is_corruption`` / ``is_disk_full``: classify ``sqlite3`` errors.
- ``move_aside``: rename a damaged database and its ``-wal``/``-shm`` files out of the way
  (never delete: the file may hold user data worth recovering).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "BUSY_TIMEOUT_MS",
    "INHERITED",
    "is_corruption",
    "is_disk_full",
    "is_locked",
    "move_aside",
    "reset_after_fork",
    "retry_locked",
    "write_transaction",
]

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000

# Connections inherited through fork() must never be used *or closed* in the child (closing
# one can release the parent's POSIX locks or checkpoint its WAL): pools keep them alive here.
INHERITED: list[sqlite3.Connection] = []


def is_corruption(exc: BaseException) -> bool:
    """A damaged or foreign file: SQLITE_CORRUPT / SQLITE_NOTADB ("malformed", "not a database")."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(
        exc, (sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.ProgrammingError)
    ):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    msg = str(exc).lower()
    return "not a database" in msg or "malformed" in msg


def is_disk_full(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_FULL") or "disk is full" in str(exc).lower()


def is_locked(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    msg = str(exc).lower()
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in msg or "busy" in msg


def retry_locked(fn: Callable[[], T], *, budget_s: float = 30.0, first_wait: float = 0.005) -> T:
    """Call ``fn`` until it stops failing with "database is locked/busy", for at most ``budget_s``.

    SQLite skips the busy handler in a few situations (e.g. two connections creating the
    schema or switching to WAL at the same moment): those surface at once as "locked".
    """
    deadline = time.monotonic() + budget_s
    wait = first_wait
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_locked(exc) or time.monotonic() + wait > deadline:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 0.25)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (takes the write lock up front, waits up to busy_timeout)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


def vacuum(conn: sqlite3.Connection) -> None:
    """Give every free page back to the file system (``auto_vacuum=INCREMENTAL``); best
    effort, a busy database keeps them until next time. ``execute`` would run one step of
    the PRAGMA and free a single page; ``executescript`` runs it to the end."""
    with contextlib.suppress(sqlite3.OperationalError):
        conn.executescript("PRAGMA incremental_vacuum;")


def move_aside(path: Path) -> Path:
    """Rename ``path`` (and ``-wal``/``-shm``) to ``<path>.corrupt-<timestamp>``; return the new name.

    The companion files keep SQLite's naming (``<new>-wal``) so the set can still be opened
    for recovery (``sqlite3 file.corrupt-… .recover``).
    """
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}.{n}")
        n += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(companion, Path(f"{target}{suffix}"))
    return target


_FORK_AWARE: weakref.WeakSet[Any] = weakref.WeakSet()


def reset_after_fork(obj: Any) -> None:
    """Call ``obj._after_fork()`` in a forked child (connections, locks and counters are
    the parent's); ``obj`` is held weakly."""
    _FORK_AWARE.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_FORK_AWARE):
        obj._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
