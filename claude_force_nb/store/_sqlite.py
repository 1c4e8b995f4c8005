"""Shared SQLite plumbing for the cache and the ledger (private).

- ``ConnectionPool``: one connection per thread (``threading.local``), reopened after
  ``fork`` (pid check), every connection tracked so ``close()`` closes them all, from any
  thread. Connections run in autocommit mode; writes use explicit ``BEGIN IMMEDIATE``.
- ``write_transaction``: ``BEGIN IMMEDIATE`` … ``COMMIT`` with rollback on error.
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
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..core.errors import CacheError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "ConnectionPool",
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
CACHE_SIZE_KIB = 32 * 1024         # 32 MiB page cache (facts §4: the 2 MB default is too small)
PAGE_SIZE = 8192                   # new files: 2-3 KB rows waste ~40% of 4 KiB pages, ~10% of 8 KiB
MMAP_SIZE = 64 * 1024 * 1024
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024   # a WAL grown by one big transaction shrinks back when reset

# Connections inherited through fork() must never be used *or closed* in the child (closing
# one can release the parent's POSIX locks or checkpoint its WAL). We keep them alive here.
_INHERITED: list[sqlite3.Connection] = []


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
        conn.execute("COMMIT")


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


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class ConnectionPool:
    """Per-thread connections to one SQLite file, fork-aware, closable from any thread.

    ``setup(conn)`` runs once per new connection after the pragmas (schema checks etc.),
    retried while another process holds the lock. Use after ``close()`` raises ``closed_error``.
    """

    def __init__(
        self,
        path: Path,
        *,
        setup: Callable[[sqlite3.Connection], None] | None = None,
        closed_error: type[Exception] = CacheError,
    ) -> None:
        self.path = Path(path)
        self._setup = setup
        self._closed_error = closed_error
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # connection -> weakref to the thread that owns it (to close those of dead threads)
        self._conns: dict[sqlite3.Connection, weakref.ref[threading.Thread]] = {}
        self._closed = False
        self._token = object()    # replaced by reset()/close()/fork: each thread then reopens
        reset_after_fork(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, again after ``reset`` or a fork)."""
        local = self._local
        if getattr(local, "token", None) is self._token:
            return local.conn          # hot path: two attribute reads, no syscall
        return self._get_slow()

    def _get_slow(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:   # a fork the at-fork hook did not see (belt and braces)
            self._after_fork()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._discard(conn)        # stale after reset(): this thread owns it, close it
        return self._open()

    def _after_fork(self) -> None:
        # Runs in the child: forget (but never close) every connection of the parent.
        self._lock = threading.Lock()
        _INHERITED.extend(self._conns)
        self._conns = {}
        self._local = threading.local()
        self._token = object()
        self._pid = os.getpid()

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise self._closed_error(f"{self.path} was closed: create a new instance to use it again.")
        local = self._local
        local.conn = None
        # which file this thread is about to open: lets recovery tell "the file I found
        # corrupt" from "a fresh file another thread/process already put in its place"
        local.file_id = _file_id(self.path)
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,          # autocommit; we issue BEGIN IMMEDIATE ourselves
            check_same_thread=False,       # so close() may run from any thread
            cached_statements=64,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # only effective on a brand-new file, before WAL mode writes its header
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")        # (page_size must come first)
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            # journal_mode=WAL is persistent; setting it races with other openers → retry.
            mode = retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if str(mode).lower() != "wal":  # pragma: no cover - e.g. a filesystem without shm
                raise sqlite3.OperationalError(f"cannot switch {self.path} to WAL (journal_mode={mode})")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA cache_size=-{CACHE_SIZE_KIB}")
            conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
            conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            conn.execute("PRAGMA foreign_keys=ON")
            if self._setup is not None:
                setup = self._setup
                retry_locked(lambda: setup(conn))
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._sweep_dead_threads()
            self._conns[conn] = weakref.ref(threading.current_thread())
        if local.file_id is None:
            local.file_id = _file_id(self.path)
        local.conn = conn
        local.token = self._token
        return conn

    def _discard(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._conns.pop(conn, None)
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        self._local.conn = None

    def _sweep_dead_threads(self) -> None:
        for conn, ref in list(self._conns.items()):
            thread = ref()
            if thread is None or not thread.is_alive():
                del self._conns[conn]
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def reset(self) -> None:
        """Drop this thread's connection and make every other thread reopen on its next use.

        Other threads' connections are not closed under their feet (they may be mid-query):
        each closes its own when it next calls ``get``.
        """
        if os.getpid() != self._pid:
            self._after_fork()
        self._token = object()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._discard(conn)

    def close(self) -> None:
        """Close every connection (call when no other thread is using them); later use raises CacheError."""
        if os.getpid() != self._pid:
            self._after_fork()
        with self._lock:
            conns, self._conns = list(self._conns), {}
            self._token = object()
            self._closed = True
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def thread_file_id(self) -> tuple[int, int] | None:
        """(dev, inode) of the file this thread's connection opened (None if none)."""
        return getattr(self._local, "file_id", None)

    def file_id_at_path(self) -> tuple[int, int] | None:
        return _file_id(self.path)
