"""The ledger's ``calls`` table: its named migrations and ``COLUMNS``, the one description
of it that readers use (``Ledger.rows`` returns it, ``views.reports.runs`` derives dtypes from it).

Append new migrations; never edit, rename or reorder applied ones (``store.migrations``).
"""

from __future__ import annotations

import sqlite3

from .migrations import Migration, migrate, migration

__all__ = ["COLUMNS", "MIGRATIONS", "ensure_schema"]

# The calls table as readers see it, in rows() order: column -> the Python type of its values
# (flags are bool, stored as 0/1; NULL where unknown). The file's own column order follows
# the migrations.
COLUMNS: dict[str, type] = {
    "id": int, "ts": float, "session_id": str, "agent": str, "model": str, "cached": bool,
    "input_tokens": int, "output_tokens": int, "cache_write_5m_tokens": int, "cache_write_1h_tokens": int,
    "cache_read_tokens": int, "cost_usd": float, "saved_usd": float, "latency_s": float, "ok": bool,
    "error_type": str, "request_id": str, "cache_key": str, "offline": bool, "attempts": int, "task_head": str,
    "rate_limited": int, "overloaded": int, "waited_s": float, "run_id": str,
    "batch": bool,
}

MIGRATIONS: list[Migration] = []


@migration(MIGRATIONS)
def m001_calls(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE calls(
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            session_id TEXT NOT NULL,
            agent TEXT,
            model TEXT,
            cached INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            saved_usd REAL NOT NULL DEFAULT 0,
            latency_s REAL,
            ok INTEGER NOT NULL DEFAULT 1,
            error_type TEXT,
            request_id TEXT,
            cache_key TEXT
        )"""
    )


@migration(MIGRATIONS)
def m002_prompt_cache_tokens(conn: sqlite3.Connection) -> None:
    for column in ("cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens"):
        conn.execute(f"ALTER TABLE calls ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")


@migration(MIGRATIONS)
def m003_offline_attempts_task(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE calls ADD COLUMN offline INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE calls ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1")
    conn.execute("ALTER TABLE calls ADD COLUMN task_head TEXT NOT NULL DEFAULT ''")


@migration(MIGRATIONS)
def m004_indexes(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE INDEX IF NOT EXISTS calls_ts ON calls(ts)")
    conn.execute("CREATE INDEX IF NOT EXISTS calls_session ON calls(session_id, ts)")
    conn.execute("CREATE INDEX IF NOT EXISTS calls_agent ON calls(agent, ts)")


@migration(MIGRATIONS)
def m005_pacing(conn: sqlite3.Connection) -> None:
    """What the call met on the way: 429s, 529s, and seconds it waited for pacing or retry-after."""
    conn.execute("ALTER TABLE calls ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE calls ADD COLUMN overloaded INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE calls ADD COLUMN waited_s REAL NOT NULL DEFAULT 0")


@migration(MIGRATIONS)
def m006_run_id(conn: sqlite3.Connection) -> None:
    """The run a call belongs to: every step of one tool loop shares it (NULL for older rows)."""
    conn.execute("ALTER TABLE calls ADD COLUMN run_id TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS calls_run ON calls(run_id)")


@migration(MIGRATIONS)
def m007_batch(conn: sqlite3.Connection) -> None:
    """Whether the call was answered through the Message Batches API (priced at batch rates)."""
    conn.execute("ALTER TABLE calls ADD COLUMN batch INTEGER NOT NULL DEFAULT 0")


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create or upgrade the table of a newly opened connection."""
    migrate(conn, MIGRATIONS)
