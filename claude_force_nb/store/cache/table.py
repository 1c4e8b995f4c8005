"""SQL on the cache's ``entries`` table: reads, upserts, hit counts and eviction.

Signed columns are read as BLOBs whatever their stored type: a row rewritten as TEXT that
is not UTF-8 must fail its signature check, not the fetch. No signing and no policy here:
``store.ResponseCache`` decides what to write and when.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .counters import Unwritten
from .keys import rowid_of

__all__ = ["EXPIRED_PER_WRITE", "LOOKUP", "SCANNED", "SIGNED", "add_hits", "evict", "totals", "upsert"]

SIGNED = "CAST(kid AS BLOB), CAST(payload AS BLOB), CAST(sig AS BLOB)"
SCANNED = f"id, CAST(key AS BLOB), {SIGNED}"      # a scanned row: bytes, so any key column can be judged
LOOKUP = "SELECT CAST(payload AS BLOB), CAST(sig AS BLOB) FROM entries WHERE id = ?"
EXPIRED_PER_WRITE = 256             # expired rows culled per put (prune() removes all)

Row = tuple[Any, ...]               # (id, key, kid, payload, sig, created, expires, last_access, size)


def upsert(conn: sqlite3.Connection, rows: list[Row]) -> None:
    """Insert or replace entries. An UPSERT (not INSERT OR REPLACE) so the UPDATE trigger keeps
    the totals exact; a row of another key with the same id is replaced whole, hit count too."""
    conn.executemany(
        """INSERT INTO entries(id, key, kid, payload, sig, created, expires, last_access, size)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET key = excluded.key, kid = excluded.kid, payload = excluded.payload,
             sig = excluded.sig, created = excluded.created, expires = excluded.expires,
             last_access = excluded.last_access, size = excluded.size,
             hits = CASE WHEN key = excluded.key THEN hits ELSE 0 END""",
        rows,
    )


def add_hits(conn: sqlite3.Connection, unwritten: Unwritten) -> None:
    """Add hit counts and move recency forward (never back: another process may be later)."""
    conn.executemany(
        "UPDATE entries SET hits = hits + ?, last_access = MAX(last_access, ?) WHERE id = ? AND key = ?",
        [(hits, latest, rowid_of(key), key) for key, hits, latest in unwritten],
    )


def totals(conn: sqlite3.Connection) -> tuple[int, int]:
    """(entries, bytes) as every process left them, from the trigger-kept totals row."""
    entries, nbytes = conn.execute("SELECT entries, bytes FROM totals WHERE id = 1").fetchone()
    return int(entries), int(nbytes)


def evict(conn: sqlite3.Connection, now: float, *, max_bytes: int, keep: int | None = None,
          older_than: float | None = None, all_expired: bool = False) -> int:
    """Delete expired rows (EXPIRED_PER_WRITE of them, or all), rows created before
    ``older_than``, then least-recently-used rows other than ``keep`` until the total is
    under ``max_bytes``. Returns the rows removed."""
    removed = conn.execute(
        "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)",
        (now, -1 if all_expired else EXPIRED_PER_WRITE),
    ).rowcount
    if older_than is not None:
        removed += conn.execute("DELETE FROM entries WHERE created <= ?", (older_than,)).rowcount
    total = totals(conn)[1]
    while total > max_bytes:
        victims = conn.execute(
            "SELECT id, size FROM entries WHERE id IS NOT ? ORDER BY last_access, id LIMIT 64", (keep,)
        ).fetchall()
        if not victims:
            break
        batch = []
        for rowid, size in victims:
            batch.append((rowid,))
            total -= size
            if total <= max_bytes:
                break
        conn.executemany("DELETE FROM entries WHERE id = ?", batch)
        removed += len(batch)
    return removed
