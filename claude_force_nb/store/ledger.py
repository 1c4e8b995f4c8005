"""Ledger: one SQLite row per agent call — cache hits, API calls and failures alike.

The ledger lives in ``ledger.sqlite3`` next to (never inside) the cache, so clearing the
cache never loses cost history. Several kernels may write at once (WAL, busy timeout,
one connection per thread, reopened after ``fork``).

The table's schema (named migrations, applied when a connection opens) and ``COLUMNS``, the
one description of it that readers use, are in ``ledger_schema``.

Recording never fails a call. When the file cannot be written (a read-only home, a full or
failing disk, a lock held too long) rows are kept in memory (``unsaved``, the newest
``MAX_UNSAVED_ROWS``), one warning says so (``faults``), and every ``RETRY_S`` the next
record tries the file again with them; ``rows()`` returns them meanwhile, with negative
ids. A file deleted while in use is noticed before the next write and created again.

With a team tier (``Settings.redis_url``) each row saved to the file is also sent to the
team's Redis stream (``team_ledger``): now, or by a later record once Redis answers.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..core.errors import ClaudeForceError, ConfigurationError
from ..core.results import AgentResult, task_head
from ..core.settings import Settings, ensure_private_dir
from ._pool import ConnectionPool, PooledStore
from ._sqlite import is_corruption, reset_after_fork, write_transaction
from .faults import FaultState, fault_kind, tell
from .ledger_schema import COLUMNS, MIGRATIONS, ensure_schema
from .team_ledger import TeamLedger
from .unsaved import Filter, UnsavedRows

__all__ = ["COLUMNS", "MIGRATIONS", "Ledger", "current_session_id"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# --------------------------------------------------------------------------- session id

_session: tuple[int, str] | None = None


def current_session_id() -> str:
    """This process's session id (12 hex chars): one per kernel, new after ``fork``."""
    global _session
    pid = os.getpid()
    if _session is None or _session[0] != pid:
        _session = (pid, uuid.uuid4().hex[:12])
    return _session[1]


def _reset_session_after_fork() -> None:
    global _session
    _session = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_session_after_fork)

# --------------------------------------------------------------------------- the ledger

def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


def _count(result: AgentResult, name: str) -> int:
    return int(getattr(result, name, 0) or 0)


def _seconds(result: AgentResult, name: str) -> float:
    value = float(getattr(result, name, 0.0) or 0.0)
    return value if math.isfinite(value) else 0.0


class Ledger(PooledStore):
    """Append-only record of every call, shared by all kernels of this user.

    ``clock`` (monotonic seconds) paces the retries after a storage fault; tests pass a fake one.
    """

    def __init__(self, settings: Settings | None = None, *, path: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.path = Path(self.settings.ledger_path if path is None else path)
        self._dir = Path(self.settings.data_dir) if path is None else self.path.parent
        self._pool = ConnectionPool(self.path, setup=ensure_schema, closed_error=ClaudeForceError)
        self._fault = FaultState(self.path, clock=clock)
        self._unsaved = UnsavedRows()
        self._lock = threading.Lock()       # one writer at a time: the unsaved rows go in order
        reset_after_fork(self)
        try:
            self._run(lambda conn: None, create=True)   # open now: a bad file is reported here, not at a record
        except (sqlite3.OperationalError, OSError) as exc:
            self._failed(exc)
        self.team = TeamLedger.for_settings(self.settings, self._run)    # None without redis_url
        if self.team is not None:
            self.team.start()

    def _after_fork(self) -> None:
        # In a forked child: the unsaved rows are the parent's to write.
        self._lock = threading.Lock()
        self._unsaved = UnsavedRows()

    def _run(self, op: Callable[[sqlite3.Connection], T], *, create: bool = False) -> T:
        """``op`` on this thread's connection, after checking the file is still the one in
        use: a deleted file is created again, a replaced one used instead, with a warning."""
        change = self._pool.check_in_place()
        if change == "deleted":
            tell(f"The ledger {self.path} was deleted while in use: a new one was created (the rows it held "
                 "are gone; rows from now on are saved in it).")
        elif change == "replaced":
            tell(f"The ledger {self.path} was replaced while in use (deleted and created again, or restored): "
                 "rows from now on are saved in the file now there.")
        if create or change == "deleted" or not self._fault.ok:
            ensure_private_dir(self._dir)
        try:
            return self._pool.run(op)
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise ConfigurationError(
                    f"The ledger {self.path} is not a readable SQLite database ({exc}): move it aside "
                    "(it holds your call history) and a new one is created."
                ) from exc
            raise

    def _failed(self, exc: BaseException) -> None:
        """Record a storage fault, or re-raise ``exc`` when it is not one (a bug)."""
        kind = fault_kind(exc)
        if kind is None:
            raise exc
        self._fault.failed(exc, kind)

    @property
    def session_id(self) -> str:
        return current_session_id()

    def record(self, result: AgentResult, *, task: str | None = None, ts: float | None = None) -> int:
        """Append one call; returns its row id."""
        return self.record_many([(result, task)], ts=ts)[0]

    def record_many(self, calls: Iterable[tuple[AgentResult, str | None]], *, ts: float | None = None) -> list[int]:
        """Append several calls in one transaction; returns their row ids, in order (negative:
        kept in memory, the file cannot be written now). Never raises for a storage fault."""
        rows = [self._values(result, task, ts) for result, task in calls]
        if not rows:
            return []
        with self._lock:
            if not self._fault.due():
                return self._unsaved.add(rows)
            waiting = self._unsaved.values()
            try:
                ids = self._insert(waiting + rows)
            except (sqlite3.OperationalError, OSError) as exc:
                self._failed(exc)
                return self._unsaved.add(rows)
            if self._fault.cleared() or waiting:
                self._saved_again()
        if self.team is not None:
            self.team.sync()
        return ids[len(waiting):]

    def flush(self) -> int:
        """Try now to write the rows kept in memory (and send rows the team stream lacks);
        returns how many are still waiting for the file."""
        with self._lock:
            if self._unsaved:
                try:
                    self._insert(self._unsaved.values())
                except (sqlite3.OperationalError, OSError) as exc:
                    self._failed(exc)
                else:
                    self._fault.cleared()
                    self._saved_again()
            waiting = len(self._unsaved)
        if self.team is not None:
            self.team.sync()
        return waiting

    def _saved_again(self) -> None:
        written, dropped = self._unsaved.written()
        lost = f"; {dropped:,} older ones were dropped while it could not be written" if dropped else ""
        log.info("The ledger %s can be written again: %d rows kept in memory were saved%s.", self.path, written, lost)

    def _insert(self, rows: list[dict[str, Any]]) -> list[int]:
        names = ", ".join(rows[0])
        marks = ", ".join("?" * len(rows[0]))
        sql = f"INSERT INTO calls({names}) VALUES ({marks})"

        def insert(conn: sqlite3.Connection) -> list[int]:
            with write_transaction(conn):
                return [int(conn.execute(sql, tuple(values.values())).lastrowid or 0) for values in rows]

        return self._run(insert)

    @staticmethod
    def _values(result: AgentResult, task: str | None, ts: float | None) -> dict[str, Any]:
        u = result.usage
        cost = result.cost_usd
        if cost is not None:
            cost = float(cost)
            if math.isnan(cost):
                cost = None
        return {
            "ts": time.time() if ts is None else float(ts),
            "session_id": current_session_id(),
            "agent": result.agent,
            "model": result.model,
            "cached": int(bool(result.cached)),
            "input_tokens": int(u.input_tokens),
            "output_tokens": int(u.output_tokens),
            "cache_write_5m_tokens": int(u.cache_write_5m_tokens),
            "cache_write_1h_tokens": int(u.cache_write_1h_tokens),
            "cache_read_tokens": int(u.cache_read_tokens),
            "cost_usd": cost,
            "saved_usd": float(result.saved_usd or 0.0),
            "latency_s": float(result.latency_s),
            "ok": int(result.ok),
            "error_type": result.error_type,
            "request_id": result.request_id,
            "cache_key": result.cache_key,
            "offline": int(bool(result.offline)),
            "attempts": int(result.attempts),
            "task_head": task_head(task),
            "rate_limited": _count(result, "rate_limited"),
            "overloaded": _count(result, "overloaded"),
            "waited_s": _seconds(result, "waited_s"),
            "run_id": getattr(result, "run_id", None),
            "batch": int(bool(getattr(result, "batch", False))),
        }

    def rows(
        self,
        *,
        since: float | datetime | None = None,
        agent: str | Iterable[str] | None = None,
        model: str | Iterable[str] | None = None,
        session: str | Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Calls as dicts (COLUMNS order, raw values), oldest first: the file's, then those kept
        in memory because it cannot be written (negative ids). ``since`` is a unix time or a
        datetime (a naive datetime is local time, as ``datetime.timestamp`` reads it); the
        other filters take one value or several."""
        if since is not None:
            since = since.timestamp() if isinstance(since, datetime) else float(since)
        columns = [(column, values) for column, values in
                   (("agent", _as_list(agent)), ("model", _as_list(model)), ("session_id", _as_list(session)))
                   if values is not None]
        where: Filter = (since, columns)
        with self._lock:
            unsaved = self._unsaved.matching(where)
        return self._file_rows(where) + [{name: row[name] for name in COLUMNS} for row in unsaved]

    def _file_rows(self, where: Filter) -> list[dict[str, Any]]:
        since, columns = where
        clauses = [] if since is None else ["ts >= ?"]
        params: list[Any] = [] if since is None else [since]
        for column, values in columns:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        sql = f"SELECT {', '.join(COLUMNS)} FROM calls"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [dict(zip(COLUMNS, row)) for row in self._read(sql + " ORDER BY id", params)]

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of a query on the file; none when it cannot be opened (a storage fault)."""
        try:
            return self._run(lambda conn: conn.execute(sql, params).fetchall())
        except (sqlite3.OperationalError, OSError) as exc:
            self._failed(exc)
            return []

    def __len__(self) -> int:
        counted = self._read("SELECT COUNT(*) FROM calls", [])
        return (int(counted[0][0]) if counted else 0) + len(self._unsaved)

    def status(self) -> dict[str, Any]:
        """Whether rows reach the file: ``persistent`` (bool), ``reason`` (why not, or None),
        ``unsaved_rows`` kept in memory and ``dropped_rows`` lost since the fault began."""
        return {**self._fault.status(), "unsaved_rows": len(self._unsaved), "dropped_rows": self._unsaved.dropped,
                "path": str(self.path)}

    def close(self) -> None:
        """Try once more to write the rows kept in memory, then close every connection. Idempotent."""
        if not self._pool.closed and (self._unsaved or self.team is not None):
            self.flush()
        super().close()
