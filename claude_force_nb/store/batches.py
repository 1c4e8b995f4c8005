"""Message Batches this home submitted, in ``batches.sqlite3`` next to the ledger.

A batch's row keeps its id, when it was created, its agent and model, the state and request
counts last seen, the cost of the answers collected so far and two flags: ``collected``
(every answer is in the cache and ledger) and ``cancel_requested``. Each request keeps what
is needed to write its cache entry and ledger row after a kernel restart, without the
original call: its ``custom_id`` (the cache key without ``v1:``), agent, model, the first
line of its task and its run id.

A batch that is not collected is *pending*: a re-run of the same rows waits for it instead
of submitting them again. Collecting claims requests (``claim``) inside a write
transaction, so two kernels collecting one batch at once never both write a request's
ledger row. Several kernels may share the file (WAL, busy timeout, ``BEGIN IMMEDIATE``,
one connection per thread); schema changes are named migrations, as for the ledger.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core.errors import UnknownBatchError
from ..core.settings import Settings
from ._pool import PooledStore, data_file_pool, readable_connection
from ._sqlite import write_transaction
from .ledger import current_session_id
from .migrations import Migration, migrate, migration

__all__ = ["BATCHES_FILE", "COUNT_NAMES", "MIGRATIONS", "BatchRecord", "BatchRequest", "BatchStore"]

BATCHES_FILE = "batches.sqlite3"
COUNT_NAMES = ("processing", "succeeded", "errored", "canceled", "expired")  # the API's request_counts
_CLAIM_CHUNK = 500  # custom_ids per statement (well under SQLite's variable limit)

MIGRATIONS: list[Migration] = []


@migration(MIGRATIONS)
def m001_batches_and_requests(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE batches(
            id TEXT PRIMARY KEY,
            created REAL NOT NULL,
            session_id TEXT NOT NULL,
            agent TEXT NOT NULL,
            model TEXT NOT NULL,
            state TEXT NOT NULL,
            requests INTEGER NOT NULL,
            processing INTEGER NOT NULL DEFAULT 0,
            succeeded INTEGER NOT NULL DEFAULT 0,
            errored INTEGER NOT NULL DEFAULT 0,
            canceled INTEGER NOT NULL DEFAULT 0,
            expired INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            ended REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            collected INTEGER NOT NULL DEFAULT 0
        )"""
    )
    conn.execute(
        """CREATE TABLE batch_requests(
            batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
            custom_id TEXT NOT NULL,
            agent TEXT NOT NULL,
            model TEXT NOT NULL,
            task_head TEXT NOT NULL,
            run_id TEXT,
            collected INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(batch_id, custom_id)
        )"""
    )
    conn.execute("CREATE INDEX batch_requests_pending ON batch_requests(collected, custom_id)")
    conn.execute("CREATE INDEX batches_created ON batches(created)")


def _setup(conn: sqlite3.Connection) -> None:
    migrate(conn, MIGRATIONS)


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch, as kept for collecting it later."""

    custom_id: str
    agent: str
    model: str
    task_head: str
    run_id: str | None = None


@dataclass(frozen=True)
class BatchRecord:
    """A batch as this home last saw it."""

    id: str
    created: float
    session_id: str
    agent: str
    model: str
    state: str
    requests: int
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    cost_usd: float
    ended: float | None
    cancel_requested: bool
    collected: bool

    @property
    def pending(self) -> bool:
        """Its answers are not all collected yet."""
        return not self.collected

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_RECORD_COLUMNS = ", ".join(f.name for f in fields(BatchRecord))


def _record(row: Sequence[Any]) -> BatchRecord:
    values = list(row)
    values[-2:] = [bool(values[-2]), bool(values[-1])]
    return BatchRecord(*values)


def _summary(values: Iterable[str]) -> str:
    """One name, or several comma-joined (a batch of mixed agents or models)."""
    names = sorted(set(values))
    return names[0] if len(names) == 1 else ", ".join(names)


class BatchStore(PooledStore):
    """The batches of this home, shared by all its kernels::

        store = BatchStore(settings)
        store.add("msgbatch_…", [BatchRequest(cid, "code-reviewer", "claude-haiku-4-5", "Review …")])
        store.pending(custom_ids)          # {custom_id: batch id} of requests still to collect
    """

    def __init__(self, settings: Settings | None = None, *, path: Path | None = None) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self._pool = data_file_pool(self.settings, path, BATCHES_FILE, _setup)
        self.path = self._pool.path
        self._conn()  # open now so a bad file is reported here, not at the first batch

    def _conn(self) -> sqlite3.Connection:
        return readable_connection(self._pool, "batch list", "the ids of your submitted batches")

    # ------------------------------------------------------------------ writing

    def add(self, batch_id: str, requests: Sequence[BatchRequest], *, state: str = "in_progress",
            created: float | None = None) -> BatchRecord:
        """Record a batch just submitted, with its requests."""
        conn = self._conn()
        with write_transaction(conn):
            conn.execute(
                "INSERT INTO batches(id, created, session_id, agent, model, state, requests, processing) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_id, time.time() if created is None else created, current_session_id(),
                 _summary(r.agent for r in requests), _summary(r.model for r in requests), state,
                 len(requests), len(requests)),
            )
            conn.executemany(
                "INSERT INTO batch_requests(batch_id, custom_id, agent, model, task_head, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(batch_id, r.custom_id, r.agent, r.model, r.task_head, r.run_id) for r in requests],
            )
        return self.get(batch_id)

    def update(self, batch_id: str, state: str, counts: Mapping[str, int], *, ended: float | None = None) -> None:
        """The state and request counts the API reports now."""
        conn = self._conn()
        with write_transaction(conn):
            conn.execute(
                f"UPDATE batches SET state = ?, ended = COALESCE(?, ended), "
                f"{', '.join(f'{name} = ?' for name in COUNT_NAMES)} WHERE id = ?",
                (state, ended, *(int(counts.get(name, 0)) for name in COUNT_NAMES), batch_id),
            )

    def claim(self, batch_id: str, costs: Mapping[str, float | None]) -> set[str]:
        """Mark the requests ``costs`` names as collected; returns those not collected before
        (whose ledger rows the caller writes) and adds their known costs to the batch's."""
        claimed: set[str] = set()
        ids = list(costs)
        conn = self._conn()
        with write_transaction(conn):
            for start in range(0, len(ids), _CLAIM_CHUNK):
                chunk = ids[start:start + _CLAIM_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT custom_id FROM batch_requests WHERE batch_id = ? AND collected = 0 "
                    f"AND custom_id IN ({marks})", (batch_id, *chunk))
                claimed.update(row[0] for row in rows)
                conn.execute(f"UPDATE batch_requests SET collected = 1 WHERE batch_id = ? AND custom_id IN ({marks})",
                             (batch_id, *chunk))
            cost = sum(costs[cid] or 0.0 for cid in claimed)
            conn.execute("UPDATE batches SET cost_usd = cost_usd + ? WHERE id = ?", (cost, batch_id))
        return claimed

    def finish(self, batch_id: str, state: str = "ended") -> None:
        """Every answer of the batch is collected (or it is gone): it is no longer pending."""
        conn = self._conn()
        with write_transaction(conn):
            conn.execute("UPDATE batch_requests SET collected = 1 WHERE batch_id = ?", (batch_id,))
            conn.execute("UPDATE batches SET collected = 1, state = ? WHERE id = ?", (state, batch_id))

    def cancel_requested(self, batch_id: str, state: str) -> None:
        """A cancel was sent for the batch; ``state`` is what the API answered."""
        conn = self._conn()
        with write_transaction(conn):
            conn.execute("UPDATE batches SET cancel_requested = 1, state = ? WHERE id = ?", (state, batch_id))

    # ------------------------------------------------------------------ reading

    def get(self, batch_id: str) -> BatchRecord:
        """The batch; UnknownBatchError if this home has no record of it."""
        row = self._conn().execute(f"SELECT {_RECORD_COLUMNS} FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise UnknownBatchError(batch_id)
        return _record(row)

    def batches(self) -> list[BatchRecord]:
        """Every batch, newest first."""
        rows = self._conn().execute(f"SELECT {_RECORD_COLUMNS} FROM batches ORDER BY created DESC, rowid DESC")
        return [_record(row) for row in rows]

    def requests(self, batch_id: str) -> dict[str, BatchRequest]:
        """The batch's requests by custom_id."""
        rows = self._conn().execute(
            "SELECT custom_id, agent, model, task_head, run_id FROM batch_requests WHERE batch_id = ?", (batch_id,))
        return {row[0]: BatchRequest(*row) for row in rows}

    def pending(self, custom_ids: Iterable[str]) -> dict[str, str]:
        """Which of ``custom_ids`` wait in a batch not collected yet: {custom_id: batch id}."""
        wanted = set(custom_ids)
        rows = self._conn().execute(
            "SELECT r.custom_id, r.batch_id FROM batch_requests r JOIN batches b ON b.id = r.batch_id "
            "WHERE r.collected = 0 AND b.collected = 0 ORDER BY b.created")
        return {cid: batch_id for cid, batch_id in rows if cid in wanted}
