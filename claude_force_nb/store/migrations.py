"""Named, ordered schema migrations for the package's SQLite files (as in simonw/llm).

A database lists its schema changes as functions that take a connection, in the order they
were written. ``migrate`` records the name of every applied function in
``_migrations(name, applied_at)`` and runs the missing ones, all in one ``BEGIN IMMEDIATE``
transaction whose first step re-reads the applied names: two processes opening an old file
at once cannot both apply a migration, and one that waited finds the work done.

Append new migrations; never edit, rename or reorder applied ones. A file made before its
database used named migrations is recognised by ``adopt``, which says which of them the
file already has (the cache's schema 1 and 2 files record their version in a ``meta`` row).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence

from ._sqlite import retry_locked, write_transaction

__all__ = ["Adopt", "Migration", "apply", "applied", "migrate", "migration", "pending"]

Migration = Callable[[sqlite3.Connection], None]
Adopt = Callable[[sqlite3.Connection], Iterable[str]]


def migration(steps: list[Migration]) -> Callable[[Migration], Migration]:
    """A decorator that appends a migration function to ``steps`` and returns it unchanged."""

    def register(fn: Migration) -> Migration:
        steps.append(fn)
        return fn

    return register


def applied(conn: sqlite3.Connection) -> set[str] | None:
    """Names of the applied migrations; None when the file has no ``_migrations`` table yet."""
    try:
        return {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise


def pending(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations not applied yet, read without a lock (``apply`` checks again under it)."""
    done = applied(conn) or set()
    return [fn for fn in migrations if fn.__name__ not in done]


def apply(conn: sqlite3.Connection, migrations: Sequence[Migration], *, adopt: Adopt | None = None) -> list[str]:
    """Run the missing migrations in one write transaction; return the names run.

    On a file without ``_migrations``, the names ``adopt(conn)`` gives are recorded as
    applied first, so a file from before named migrations is brought up to date, not redone.
    """
    ran: list[str] = []
    with write_transaction(conn):
        done = applied(conn)
        if done is None:
            conn.execute("CREATE TABLE _migrations(name TEXT PRIMARY KEY, applied_at REAL)")
            done = set(adopt(conn)) if adopt is not None else set()
            _record(conn, [fn.__name__ for fn in migrations if fn.__name__ in done])
        for fn in migrations:
            if fn.__name__ not in done:
                fn(conn)
                _record(conn, [fn.__name__])
                ran.append(fn.__name__)
    return ran


def _record(conn: sqlite3.Connection, names: list[str]) -> None:
    now = time.time()
    conn.executemany("INSERT INTO _migrations(name, applied_at) VALUES (?, ?)", [(name, now) for name in names])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], *, adopt: Adopt | None = None) -> list[str]:
    """Bring the file up to date; return the names run. Takes no write lock when nothing is
    missing; otherwise retries while another process holds the lock."""
    if not pending(conn, migrations):
        return []
    return retry_locked(lambda: apply(conn, migrations, adopt=adopt))
