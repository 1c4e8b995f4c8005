"""ConnectionPool: one SQLite connection per thread to one file (private).

Connections are opened on first use in each thread (``threading.local``), reopened after
``fork`` (pid check), and tracked so ``close()`` closes them all, from any thread. They run
in autocommit mode; writes use explicit ``BEGIN IMMEDIATE`` (``_sqlite.write_transaction``).

Opening never writes to an existing file (page size and auto-vacuum are set on new files
only), so a full disk still lets every thread read.

The pool remembers which file (device, inode) it uses. When another one is at the path (the
file was deleted, or replaced), every connection to the old one is closed before the new
one is opened: an open connection would go on writing to the unlinked inode (every row
would vanish with it), and would keep the old ``-wal``/``-shm`` in use, which SQLite would
mix up with the new file's; for the same reason a new file is never created next to the
``-wal``/``-shm`` of a deleted one. ``check_in_place`` (one ``stat``) lets the owner notice.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Self, TypeVar

from ..core.errors import CacheError, ClaudeForceError, ConfigurationError
from ..core.settings import Settings, ensure_private_dir
from ._sqlite import BUSY_TIMEOUT_MS, INHERITED, is_corruption, reset_after_fork, retry_locked

__all__ = ["ConnectionPool", "FileChange", "PooledStore", "StoreFile", "data_file_pool", "readable_connection"]

CACHE_SIZE_KIB = 32 * 1024         # 32 MiB page cache (facts §4: the 2 MB default is too small)
PAGE_SIZE = 8192                   # new files: 2-3 KB rows waste ~40% of 4 KiB pages, ~10% of 8 KiB
MMAP_SIZE = 64 * 1024 * 1024
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024   # a WAL grown by one big transaction shrinks back when reset

FileChange = Literal["deleted", "replaced"]
T = TypeVar("T")


def _remove_orphans(path: Path) -> None:
    """Delete a ``-wal``/``-shm`` that outlived its database (only the database was deleted,
    while a connection, maybe in another process, still had it open). A new file at ``path``
    would otherwise be read through them, and fail with "disk I/O error". They are looked for
    before the database, so one that exists now was there while the database was not."""
    companions = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    orphans = [c for c in companions if c.exists()]
    if orphans and not path.exists():
        for orphan in orphans:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(orphan)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
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
        self._max_pages: int | None = None
        self._known_id: tuple[int, int] | None = None    # the file this pool uses
        self._change: FileChange | None = None           # noticed, not yet reported by check_in_place
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

    def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op`` on this thread's connection; once more on a new one when another thread closed
        it meanwhile (it found the file deleted or replaced: ``check_in_place``)."""
        conn = self.get()
        try:
            return op(conn)
        except sqlite3.ProgrammingError:
            if self._closed or getattr(self._local, "token", None) is self._token:
                raise                  # not closed by another thread: a bug, keep the traceback
        return op(self.get())

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
        INHERITED.extend(self._conns)
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
        self._notice(local.file_id)
        if local.file_id is None:
            _remove_orphans(self.path)
        token = self._token
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,          # autocommit; we issue BEGIN IMMEDIATE ourselves
            check_same_thread=False,       # so close() may run from any thread
            cached_statements=64,
        )
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._sweep_dead_threads()
            self._conns[conn] = weakref.ref(threading.current_thread())
        if local.file_id is None:
            local.file_id = _file_id(self.path)
        if self._known_id is None:
            self._known_id = local.file_id
        local.conn = conn
        local.token = token
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            # a new file: these only take effect before its first page is written
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
        if self._max_pages is not None:
            conn.execute(f"PRAGMA max_page_count={self._max_pages}")
        if self._setup is not None:
            setup = self._setup
            retry_locked(lambda: setup(conn))

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
        self._close_all(closing=True)
        self._local = threading.local()

    def _close_all(self, *, closing: bool = False) -> None:
        if os.getpid() != self._pid:
            self._after_fork()
        with self._lock:
            conns, self._conns = list(self._conns), {}
            self._token = object()
            self._closed = self._closed or closing
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def check_in_place(self) -> FileChange | None:
        """Whether the file this pool used was deleted or replaced since the last check.

        None when it is still at ``path`` (or none was opened yet); "deleted" when nothing
        was at the path, "replaced" when another file was. Every connection to the old file,
        in every thread, is closed by then; the next ``get`` opens the file at the path, or
        creates it. One ``stat``: call it before a write.
        """
        self._notice(_file_id(self.path))
        change, self._change = self._change, None
        return change

    def _notice(self, at_path: tuple[int, int] | None) -> None:
        if self._known_id is None or at_path == self._known_id:
            return
        self._close_all()
        self._known_id = None
        self._change = "deleted" if at_path is None else "replaced"

    def forget_file(self) -> None:
        """The owner replaced the file itself (corruption recovery): reopen without reporting it."""
        self.reset()
        self._known_id = None
        self._change = None

    def set_max_pages(self, pages: int | None) -> None:
        """Cap the file at ``pages`` pages on every connection (SQLite's per-connection
        ``max_page_count``); None lifts the cap. Writes past it fail with SQLITE_FULL exactly
        as on a full disk. Every thread reopens on its next use to apply it."""
        self._max_pages = pages
        self.reset()

    def thread_file_id(self) -> tuple[int, int] | None:
        """(dev, inode) of the file this thread's connection opened (None if none)."""
        return getattr(self._local, "file_id", None)

    def file_id_at_path(self) -> tuple[int, int] | None:
        return _file_id(self.path)


def data_file_pool(settings: Settings, path: Path | None, file_name: str,
                   setup: Callable[[sqlite3.Connection], None]) -> ConnectionPool:
    """The pool of a store's file: ``path``, else ``file_name`` in the settings' private data
    directory (created 0700 if needed)."""
    path = Path(settings.data_dir) / file_name if path is None else Path(path)
    ensure_private_dir(path.parent)
    return ConnectionPool(path, setup=setup, closed_error=ClaudeForceError)


def readable_connection(pool: ConnectionPool, what: str, holds: str) -> sqlite3.Connection:
    """This thread's connection; a file that is not a readable database is one clear error
    saying to move it aside (it holds ``holds``) rather than lose it."""
    try:
        return pool.get()
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise ConfigurationError(
                f"The {what} {pool.path} is not a readable SQLite database ({exc}): move it aside "
                f"(it holds {holds}) and a new one is created."
            ) from exc
        raise


class StoreFile:
    """A store over one file at ``path``: a context manager that closes it, with a repr naming the file."""

    path: Path

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r})"


class PooledStore(StoreFile):
    """A StoreFile whose connections are one ConnectionPool (``_pool``)."""

    _pool: ConnectionPool

    def close(self) -> None:
        """Close every connection. Idempotent."""
        if not self._pool.closed:
            self._pool.close()
