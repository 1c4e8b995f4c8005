"""The cache file's schema, as named migrations (``store.migrations``), and its checks on open.

One rowid table ``entries`` whose id is the key's first 60 bits (``keys.rowid_of``), so a
hit is one b-tree descent with no key index. ``totals`` (one row) holds the entry count and
byte total, kept exact by triggers, so the size cap costs O(1) per write. ``meta`` holds
the schema version, which versions of claude-force-nb from before named migrations read.

* ``m001_entries``: the first layout: ids assigned by SQLite, a UNIQUE index on the key.
* ``m002_rowid_from_key``: every row moves to the id derived from its key (schema 2).

A new file runs both. A file written before named migrations has no ``_migrations`` table:
``adopt`` reads its version (1: m001 done; 2: both done), so a schema 2 file is never
upgraded again and a schema 1 file is upgraded once, in place, with a logged warning.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

from ...core.errors import CacheError
from .._sqlite import is_disk_full, vacuum
from ..migrations import Migration, migrate, migration
from .keys import stored_rowid

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "adopt", "ensure_schema", "schema_version"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
UPGRADE_CHUNK_ROWS = 256
UPGRADE_SPACE_FACTOR = 1.5          # free disk the upgrade wants, x the file (measured peak: ~1.3x)

MIGRATIONS: list[Migration] = []

# Shared by both layouts: indexes for expiry and recency, the totals row and its triggers.
_ENTRY_INDEXES = (
    "CREATE INDEX entries_expires ON entries(expires) WHERE expires IS NOT NULL",
    "CREATE INDEX entries_access ON entries(last_access)",
)
_TOTAL_TRIGGERS = (
    """CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
        UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1; END""",
    """CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
        UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1; END""",
    """CREATE TRIGGER entries_au AFTER UPDATE OF size ON entries BEGIN
        UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1; END""",
)
_COLUMNS_AFTER_KEY = """
        kid BLOB NOT NULL,
        payload BLOB NOT NULL,      -- payload.encode(): the signed bytes, expiry included
        sig BLOB NOT NULL,          -- signing.Signer.sign(key, payload)
        created REAL NOT NULL,      -- unsigned copies, for eviction only
        expires REAL,
        last_access REAL NOT NULL,
        size INTEGER NOT NULL,      -- key + kid + payload + sig bytes: what the size cap counts
        hits INTEGER NOT NULL DEFAULT 0"""


@migration(MIGRATIONS)
def m001_entries(conn: sqlite3.Connection) -> None:
    conn.execute(f"CREATE TABLE entries(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,{_COLUMNS_AFTER_KEY})")
    for statement in _ENTRY_INDEXES:
        conn.execute(statement)
    conn.execute(
        "CREATE TABLE totals(id INTEGER PRIMARY KEY CHECK (id = 1),"
        " entries INTEGER NOT NULL, bytes INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO totals(id, entries, bytes) VALUES (1, 0, 0)")
    for statement in _TOTAL_TRIGGERS:
        conn.execute(statement)
    conn.execute("CREATE TABLE meta(k TEXT PRIMARY KEY, v)")
    conn.execute("INSERT INTO meta(k, v) VALUES ('schema', 1)")


@migration(MIGRATIONS)
def m002_rowid_from_key(conn: sqlite3.Connection) -> None:
    """Each row moves to the row id derived from its key, and the UNIQUE key index goes.

    Signatures, hit counts and recency move with the rows; totals are recounted by the
    insert trigger. Rows whose key column holds no key (never written by claude-force-nb)
    are dropped; of two keys sharing an id, the more recently used stays. Rows move in
    chunks, each removed from the old table as it goes, so freed pages are reused: the file
    grows little, the WAL to about the file's size until the next checkpoint. Free space of
    UPGRADE_SPACE_FACTOR x the file is checked first."""
    path = Path(conn.execute("PRAGMA database_list").fetchone()[2])
    try:
        _move_rows(conn, path)
    except sqlite3.OperationalError as exc:
        if is_disk_full(exc):
            raise _needs_space(path) from exc
        raise


def _move_rows(conn: sqlite3.Connection, path: Path) -> None:
    needed, free = _upgrade_space(path)
    if free < needed:
        raise _needs_space(path)
    slots: dict[int, tuple[float, int]] = {}       # new id -> (recency, old id)
    total = 0
    for old_id, raw_key, last_access in conn.execute("SELECT id, CAST(key AS BLOB), last_access FROM entries"):
        total += 1
        rowid = stored_rowid(raw_key)
        recency = float(last_access) if isinstance(last_access, (int, float)) else 0.0
        if rowid is not None and (rowid not in slots or recency > slots[rowid][0]):
            slots[rowid] = (recency, old_id)
    if total:
        log.warning("Upgrading the response cache %s to schema 2 (%d entries): once, in place.", path, total)
    for kind, name in (("TRIGGER", "entries_ai"), ("TRIGGER", "entries_ad"), ("TRIGGER", "entries_au"),
                       ("INDEX", "entries_expires"), ("INDEX", "entries_access")):
        conn.execute(f"DROP {kind} IF EXISTS {name}")     # (a hand-edited file may lack some)
    conn.execute("ALTER TABLE entries RENAME TO entries_v1")
    conn.execute("UPDATE totals SET entries = 0, bytes = 0 WHERE id = 1")
    conn.execute(f"CREATE TABLE entries(id INTEGER PRIMARY KEY, key TEXT NOT NULL,{_COLUMNS_AFTER_KEY})")
    for statement in (*_ENTRY_INDEXES, *_TOTAL_TRIGGERS):
        conn.execute(statement)
    moves = [(rowid, old_id) for rowid, (_, old_id) in slots.items()]
    for start in range(0, len(moves), UPGRADE_CHUNK_ROWS):
        chunk = moves[start:start + UPGRADE_CHUNK_ROWS]
        conn.executemany(
            """INSERT INTO entries(id, key, kid, payload, sig, created, expires, last_access, size, hits)
               SELECT ?, key, kid, payload, sig, created, expires, last_access, size, hits
               FROM entries_v1 WHERE id = ?""",
            chunk,
        )
        conn.executemany("DELETE FROM entries_v1 WHERE id = ?", [(old_id,) for _, old_id in chunk])
    conn.execute("DROP TABLE entries_v1")
    conn.execute("UPDATE meta SET v = 2 WHERE k = 'schema'")
    if total:
        log.warning("The response cache was upgraded: %d entries kept, %d dropped (no key, or a shared row id).",
                    len(moves), total - len(moves))


def _upgrade_space(path: Path) -> tuple[int, int]:
    """(bytes the upgrade may need, bytes free) for the cache file at ``path``."""
    return int(path.stat().st_size * UPGRADE_SPACE_FACTOR), shutil.disk_usage(path.parent).free


def _needs_space(path: Path) -> CacheError:
    needed, free = _upgrade_space(path)
    mib = 2**20
    return CacheError(
        f"The response cache {path} must be upgraded once (to schema 2), which needs about "
        f"{needed / mib:.0f} MiB free on its disk; {free / mib:.0f} MiB are free. Free some space, "
        f"or delete {path} to start with an empty cache."
    )


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The version in ``meta``; None for a file without one (a new file)."""
    try:
        row = conn.execute("SELECT v FROM meta WHERE k = 'schema'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else int(row[0])


def adopt(conn: sqlite3.Connection) -> list[str]:
    """The migrations a file from before named migrations already has, from its ``meta`` version."""
    version = schema_version(conn)
    if version is None:
        return []
    if version > SCHEMA_VERSION:
        raise _too_new(version)
    return [fn.__name__ for fn in MIGRATIONS[:version]]


def _too_new(version: int | None) -> CacheError:
    return CacheError(
        f"The cache database has schema version {version}, this version of claude-force-nb "
        f"expects {SCHEMA_VERSION}: upgrade claude-force-nb or use another CLAUDE_FORCE_HOME."
    )


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema of a newly opened connection; refuse a newer file's.

    After a migration, free pages (the old table's) are given back to the file system."""
    if migrate(conn, MIGRATIONS, adopt=adopt):
        vacuum(conn)
    version = schema_version(conn)
    if version != SCHEMA_VERSION:
        raise _too_new(version)
