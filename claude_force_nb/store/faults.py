"""Storage faults: a home that cannot be written, a full disk, a failing disk, a long lock.

None of them may fail a call: the answer is paid for and in hand. A store that meets one
keeps going without its file (``FaultState``): the ledger keeps its rows in memory, the cache
stops caching; both try their file again every ``RETRY_S`` seconds and carry on as before
once it works. The user is told once per fault and directory, in one line that says what is
not being saved, why, and how to fix it (``describe``), however many stores and calls meet it.

That line is a ``StorageWarning`` (``warnings.warn``), which a notebook shows under the
cell; the package's log records have no handler unless the user sets one up.
"""

from __future__ import annotations

import errno
import logging
import math
import sqlite3
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ._sqlite import is_disk_full, is_locked

__all__ = ["MAX_UNSAVED_ROWS", "RETRY_S", "FaultKind", "FaultState", "StorageWarning", "describe", "fault_kind",
           "tell", "warn_once"]

log = logging.getLogger("claude_force_nb.store")

RETRY_S = 10.0              # how often a store that met a fault tries its file again
MAX_UNSAVED_ROWS = 10_000   # ledger rows kept in memory while they cannot be written (oldest dropped)

FaultKind = Literal["read-only", "full", "io", "locked"]

_READ_ONLY_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.ENOENT, errno.EISDIR}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

_warned: set[Any] = set()       # warnings already logged by this process
_warned_lock = threading.Lock()


class StorageWarning(UserWarning):
    """Something is not being saved (or was lost) because of the disk: what, why, and the fix."""


def _first_time(tag: Any) -> bool:
    with _warned_lock:
        if tag in _warned:
            return False
        _warned.add(tag)
        return True


def warn_once(tag: Any, message: str, *args: Any) -> bool:
    """Log a warning the first time ``tag`` is seen in this process; True when logged."""
    if not _first_time(tag):
        return False
    log.warning(message, *args)
    return True


def tell(message: str, *, once: Any = None) -> None:
    """Show ``message`` to the user as a StorageWarning (only the first time ``once`` is seen
    in this process, when given)."""
    if once is None or _first_time(once):
        warnings.warn(message, StorageWarning, stacklevel=2)


def fault_kind(exc: BaseException) -> FaultKind | None:
    """What kind of storage fault ``exc`` is, or None when it is not one (a bug, corruption)."""
    if isinstance(exc, sqlite3.OperationalError):
        if is_disk_full(exc):
            return "full"
        if is_locked(exc):
            return "locked"
        name = getattr(exc, "sqlite_errorname", "") or ""
        msg = str(exc).lower()
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) or (
                "unable to open" in msg or "readonly" in msg):
            return "read-only"
        if name.startswith("SQLITE_IOERR") or "disk i/o error" in msg:
            return "io"
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _FULL_ERRNOS:
            return "full"
        if exc.errno in _READ_ONLY_ERRNOS:
            return "read-only"
        if exc.errno == errno.EIO:
            return "io"
    return None


def describe(kind: FaultKind, where: Path, exc: BaseException) -> str:
    """One line: what is not being saved, why, and the fix."""
    unsaved = (f"new answers are not cached, and ledger rows are kept in memory (the newest "
               f"{MAX_UNSAVED_ROWS:,}) and written to {where} once it can be written again")
    if kind == "full":
        return f"The disk holding {where} is full ({exc}): {unsaved}. Free some disk space; nothing else is needed."
    if kind == "read-only":
        return (f"{where} cannot be written ({exc}): running without persistence — {unsaved}. Make it "
                "writable, or set CLAUDE_FORCE_HOME to a writable directory and restart the kernel.")
    if kind == "io":
        return f"Writing to {where} fails with a disk error ({exc}): {unsaved}. Check the disk."
    return (f"{where} stayed locked by another process ({exc}): ledger rows are kept in memory and "
            "written on a later try.")


class FaultState:
    """Whether a store's file can be written, and when to try again after a fault.

    ``failed(exc)`` records a fault (a warning on entering it, once per kind and directory for
    the whole process); ``due()`` says whether the next write should try the file; ``cleared()``
    ends the fault. ``clock`` is monotonic seconds (tests pass a fake one).
    """

    def __init__(self, path: Path, *, clock: Callable[[], float]) -> None:
        self.path = Path(path)
        self._clock = clock
        self.kind: FaultKind | None = None
        self.reason: str | None = None
        self._retry_at = 0.0

    @property
    def ok(self) -> bool:
        return self.kind is None

    def failed(self, exc: BaseException, kind: FaultKind, *, retry: bool = True) -> None:
        """Record a fault; warn when this store enters it and no store has said so yet. The
        file is tried again RETRY_S after this failure (never, with ``retry=False``); failed
        reads while waiting do not push the next try back."""
        entering = self.kind is None
        if entering or self.due():
            self._retry_at = self._clock() + RETRY_S if retry else math.inf
        self.kind = kind
        self.reason = f"{kind}: {exc}"
        if entering:
            where = self.path.parent
            tell(describe(kind, where, exc), once=("fault", kind, str(where)))

    def due(self) -> bool:
        """True when the file should be tried: no fault, or RETRY_S has passed since the last."""
        return self.kind is None or self._clock() >= self._retry_at

    def cleared(self) -> bool:
        """End the fault (the file worked again); True when there was one. The next fault warns again."""
        if self.kind is None:
            return False
        with _warned_lock:
            _warned.discard(("fault", self.kind, str(self.path.parent)))
        self.kind = self.reason = None
        return True

    def status(self) -> dict[str, Any]:
        return {"persistent": self.kind is None, "reason": self.reason}
