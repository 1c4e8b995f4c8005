"""store/migrations.py: named, ordered migrations, applied once per file, on real SQLite files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from claude_force_nb.store.migrations import Migration, applied, apply, migrate, migration, pending

STEPS: list[Migration] = []


@migration(STEPS)
def m001_things(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE things(id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE log(step TEXT)")
    conn.execute("INSERT INTO log VALUES ('m001')")


@migration(STEPS)
def m002_colour(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE things ADD COLUMN colour TEXT NOT NULL DEFAULT 'red'")
    conn.execute("INSERT INTO log VALUES ('m002')")


def connect(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=10)


def names(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def test_the_decorator_registers_in_order_and_returns_the_function():
    assert STEPS == [m001_things, m002_colour]
    assert m001_things.__name__ == "m001_things" and callable(m002_colour)


def test_a_new_file_runs_every_migration_once_in_order(tmp_path):
    conn = connect(tmp_path / "db.sqlite3")
    try:
        assert applied(conn) is None and pending(conn, STEPS) == STEPS
        assert migrate(conn, STEPS) == ["m001_things", "m002_colour"]
        assert names(conn) == ["m001_things", "m002_colour"] and applied(conn) == {"m001_things", "m002_colour"}
        assert migrate(conn, STEPS) == [] and pending(conn, STEPS) == []
        assert apply(conn, STEPS) == []                   # an opener that saw them pending finds them done
        assert conn.execute("SELECT step FROM log").fetchall() == [("m001",), ("m002",)]
        assert [row[1] for row in conn.execute("PRAGMA table_info(things)")] == ["id", "name", "colour"]
    finally:
        conn.close()


def test_an_old_file_runs_only_the_new_migrations(tmp_path):
    conn = connect(tmp_path / "db.sqlite3")
    try:
        assert migrate(conn, STEPS[:1]) == ["m001_things"]
        conn.execute("INSERT INTO things(name) VALUES ('kept')")
        assert pending(conn, STEPS) == [m002_colour]
        assert migrate(conn, STEPS) == ["m002_colour"]
        assert conn.execute("SELECT name, colour FROM things").fetchall() == [("kept", "red")]
        assert names(conn) == ["m001_things", "m002_colour"]
    finally:
        conn.close()


def test_nothing_to_do_takes_no_write_lock(tmp_path):
    path = tmp_path / "db.sqlite3"
    conn, holder = connect(path), connect(path)
    try:
        migrate(conn, STEPS)
        holder.execute("PRAGMA busy_timeout = 0")
        holder.execute("BEGIN IMMEDIATE")                 # another process is writing
        conn.execute("PRAGMA busy_timeout = 0")            # a lock attempt would fail at once
        assert migrate(conn, STEPS) == []
        holder.execute("ROLLBACK")
    finally:
        conn.close()
        holder.close()


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path):
    def m003_broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO log VALUES ('m003')")
        raise RuntimeError("disk on fire")

    conn = connect(tmp_path / "db.sqlite3")
    try:
        with pytest.raises(RuntimeError, match="disk on fire"):
            migrate(conn, [*STEPS, m003_broken])
        assert applied(conn) is None                       # one transaction: even m001 is undone
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
        migrate(conn, STEPS)
        with pytest.raises(RuntimeError):
            migrate(conn, [*STEPS, m003_broken])
        assert names(conn) == ["m001_things", "m002_colour"]
        assert conn.execute("SELECT step FROM log").fetchall() == [("m001",), ("m002",)]
    finally:
        conn.close()


def test_adopt_records_what_a_file_from_before_named_migrations_has(tmp_path):
    conn = connect(tmp_path / "db.sqlite3")
    calls: list[int] = []

    def adopt(c: sqlite3.Connection) -> list[str]:
        calls.append(1)
        has_things = c.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'things'").fetchone()[0]
        return ["m001_things"] if has_things else []

    try:
        m001_things(conn)                                  # made by hand, as an older version did
        assert migrate(conn, STEPS, adopt=adopt) == ["m002_colour"]
        assert names(conn) == ["m001_things", "m002_colour"]
        assert conn.execute("SELECT step FROM log").fetchall() == [("m001",), ("m002",)]   # m001 not run again
        assert migrate(conn, STEPS, adopt=adopt) == [] and calls == [1]      # asked once, when adopting
    finally:
        conn.close()


def test_threads_migrating_one_file_at_once_apply_each_migration_once(tmp_path):
    path = tmp_path / "db.sqlite3"
    barrier = threading.Barrier(6)
    ran: list[list[str]] = []

    def opener() -> None:
        conn = connect(path)
        try:
            barrier.wait()
            ran.append(migrate(conn, STEPS))
        finally:
            conn.close()

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ran, key=len) == [[]] * 5 + [["m001_things", "m002_colour"]]
    conn = connect(path)
    try:
        assert conn.execute("SELECT step FROM log").fetchall() == [("m001",), ("m002",)]
    finally:
        conn.close()


CHILD = textwrap.dedent(
    """
    import sqlite3, sys
    from claude_force_nb.store._sqlite import retry_locked
    from claude_force_nb.store.migrations import migrate, migration

    steps = []

    @migration(steps)
    def m001_log(conn):
        conn.execute("CREATE TABLE log(pid INTEGER)")
        conn.execute("INSERT INTO log VALUES (?)", (sys.argv[2],))

    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
    # switching to WAL can meet another opener's lock without waiting: retried, as the stores do
    retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
    print(",".join(migrate(conn, steps)))
    conn.close()
    """
)


def test_processes_migrating_one_file_at_once_apply_each_migration_once(tmp_path):
    path = tmp_path / "db.sqlite3"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert sorted(out.strip() for out, _ in outputs) == ["", "", "", "m001_log"]
    conn = connect(path)
    try:
        (winner,), = conn.execute("SELECT pid FROM log").fetchall()
        assert outputs[winner][0].strip() == "m001_log"
        assert names(conn) == ["m001_log"]
    finally:
        conn.close()
