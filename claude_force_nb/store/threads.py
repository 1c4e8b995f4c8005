"""Conversation threads: named conversations in ``threads.sqlite3``, kept across kernel restarts.

A thread is created by its first turn. A turn made from a notebook cell is keyed by the
cell's id: running the cell again replaces that turn in place (same position, new text,
usage and time) instead of appending a duplicate; a turn without a cell id is appended.
``history`` gives the API ``messages`` that continue a thread within a token budget
(``thread_history`` says how turns are chosen and marked for prompt caching).

The file lives next to the ledger in the private data directory. Several kernels may
write at once (WAL, busy timeout, ``BEGIN IMMEDIATE``, one connection per thread,
reopened after ``fork``); a turn's position is chosen inside its write transaction, so two
processes appending to one thread never share or skip a position. Schema changes are
named, ordered migrations (``MIGRATIONS``), as for the ledger.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..core.agent_files import NAME_PATTERN, NAME_RULE, suggest_name
from ..core.errors import InvalidInputError, UnknownThreadError
from ..core.options import surrogate_problem
from ..core.results import AgentResult, Usage
from ..core.settings import Settings
from ._pool import PooledStore, data_file_pool, readable_connection
from ._sqlite import write_transaction
from .ledger import current_session_id
from .migrations import Migration, migrate, migration
from .thread_history import ThreadSummary, Turn, history_messages, kept_turns, turn_tokens

__all__ = ["MIGRATIONS", "THREADS_FILE", "ThreadStore", "check_thread_name"]

THREADS_FILE = "threads.sqlite3"
_NAME_RE = re.compile(NAME_PATTERN)

MIGRATIONS: list[Migration] = []


@migration(MIGRATIONS)
def m001_threads_and_turns(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE threads(
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            updated REAL NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE turns(
            id INTEGER PRIMARY KEY,
            thread_id INTEGER NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            cell_id TEXT,
            user_text TEXT NOT NULL,
            assistant_text TEXT NOT NULL,
            agent TEXT NOT NULL,
            model TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            created REAL NOT NULL,
            session_id TEXT NOT NULL,
            notebook TEXT,
            UNIQUE(thread_id, position),
            UNIQUE(thread_id, cell_id)
        )"""
    )
    conn.execute("CREATE INDEX turns_session ON turns(session_id, created)")
    conn.execute("CREATE INDEX turns_notebook ON turns(notebook, created)")
    conn.execute("CREATE INDEX turns_created ON turns(created)")


def _setup(conn: sqlite3.Connection) -> None:
    migrate(conn, MIGRATIONS)


def check_thread_name(name: object) -> str:
    """``name`` if it can name a thread; InvalidInputError with the rule and a fix otherwise."""
    if not isinstance(name, str):
        raise InvalidInputError(f"A thread name must be text, not {type(name).__name__}.")
    if _NAME_RE.fullmatch(name) is None:
        fixed = suggest_name(name) if name.strip() else "my-thread"
        raise InvalidInputError(f"{name!r} cannot name a thread: {NAME_RULE}, e.g. {fixed!r}.")
    return name


def _text(value: object, what: str) -> str:
    """Text the API accepts as a message: a str with something besides whitespace."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text, not {type(value).__name__}.")
    if not value.strip():
        raise InvalidInputError(f"{what} is empty: the API refuses empty messages, so it cannot join a thread.")
    if (problem := surrogate_problem(value, what)) is not None:
        raise InvalidInputError(problem)
    return value


_USAGE_COLUMNS = tuple(Usage.__dataclass_fields__)
_TURN_SELECT = (
    "SELECT position, user_text, assistant_text, agent, model, tokens, created, session_id, "
    f"{', '.join(_USAGE_COLUMNS)}, cost_usd, cell_id, notebook FROM turns"
)


def _turn(row: tuple[Any, ...]) -> Turn:
    """A row of ``_TURN_SELECT`` as a Turn."""
    index, user, assistant, agent, model, tokens, created, session_id = row[:8]
    usage, (cost_usd, cell_id, notebook) = row[8:-3], row[-3:]
    return Turn(index, user, assistant, agent, model, tokens, created, session_id,
                usage=Usage(*usage), cost_usd=cost_usd, cell_id=cell_id, notebook=notebook)


class ThreadStore(PooledStore):
    """Named conversation threads shared by all kernels of this user::

        store = ThreadStore()
        messages = store.history("sales", 8_000) + [{"role": "user", "content": task}]
        ...  # send them, then keep the exchange:
        store.add_turn("sales", task, answer, agent="data-analyst", model="claude-sonnet-4-6",
                       cell_id=cell_id)
    """

    def __init__(self, settings: Settings | None = None, *, path: Path | None = None) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self._pool = data_file_pool(self.settings, path, THREADS_FILE, _setup)
        self.path = self._pool.path
        self._conn()          # open now so a bad file is reported here, not at the first turn

    def _conn(self) -> sqlite3.Connection:
        return readable_connection(self._pool, "thread store", "your conversations")

    # ------------------------------------------------------------------ writing

    def add_turn(
        self,
        thread: str,
        user: str,
        assistant: str,
        *,
        agent: str,
        model: str,
        usage: Usage | None = None,
        cost_usd: float | None = None,
        cell_id: str | None = None,
        notebook: str | None = None,
        created: float | None = None,
    ) -> Turn:
        """Add one exchange to ``thread`` (created if new) and return it as stored.

        With a ``cell_id`` that already has a turn in this thread, that turn is replaced in
        place; otherwise the turn is appended. ``notebook`` names the notebook the turn came
        from (any stable text, e.g. its path), for ``latest``; ``created`` defaults to now.
        """
        check_thread_name(thread)
        values = {
            "user_text": _text(user, "The user message"),
            "assistant_text": _text(assistant, "The answer"),
            "agent": str(agent),
            "model": str(model),
            "tokens": turn_tokens(user, assistant),
            **(usage or Usage()).to_dict(),
            "cost_usd": None if cost_usd is None or math.isnan(cost_usd) else float(cost_usd),  # NaN: unknown
            "created": time.time() if created is None else float(created),
            "session_id": current_session_id(),
            "notebook": notebook,
        }
        if cell_id is not None and (not isinstance(cell_id, str) or not cell_id):
            raise InvalidInputError(f"cell_id must be a non-empty str or None, not {cell_id!r}.")
        conn = self._conn()
        with write_transaction(conn):
            conn.execute(
                "INSERT INTO threads(name, created, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET updated = MAX(updated, excluded.updated)",
                (thread, values["created"], values["created"]),
            )
            thread_id = conn.execute("SELECT id FROM threads WHERE name = ?", (thread,)).fetchone()[0]
            found = None
            if cell_id is not None:
                found = conn.execute(
                    "SELECT position FROM turns WHERE thread_id = ? AND cell_id = ?", (thread_id, cell_id)
                ).fetchone()
            if found is not None:
                position = found[0]
                assignments = ", ".join(f"{column} = ?" for column in values)
                conn.execute(
                    f"UPDATE turns SET {assignments} WHERE thread_id = ? AND position = ?",
                    (*values.values(), thread_id, position),
                )
            else:
                position = conn.execute(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM turns WHERE thread_id = ?", (thread_id,)
                ).fetchone()[0]
                row = {"thread_id": thread_id, "position": position, "cell_id": cell_id, **values}
                conn.execute(
                    f"INSERT INTO turns({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
                )
            stored = conn.execute(f"{_TURN_SELECT} WHERE thread_id = ? AND position = ?", (thread_id, position))
            return _turn(stored.fetchone())

    def record(
        self, thread: str, task: str, result: AgentResult, *, cell_id: str | None = None, notebook: str | None = None
    ) -> Turn:
        """Add a successful call's task and answer to ``thread`` (see ``add_turn``); a failed
        call has no answer to continue from and is refused."""
        if not result.ok:
            raise InvalidInputError(f"A failed call cannot join a thread ({result.error_type or 'error'}): "
                                    "run it again, or continue from the last answer.")
        return self.add_turn(thread, task, result.text, agent=result.agent, model=result.model,
                             usage=result.usage, cost_usd=result.cost_usd, cell_id=cell_id, notebook=notebook)

    def reset(self, thread: str) -> int:
        """Forget every turn of ``thread`` but keep its name; returns how many were removed."""
        return self._clear(thread, delete=False)

    def delete(self, thread: str) -> int:
        """Remove ``thread`` and its turns; returns how many turns were removed."""
        return self._clear(thread, delete=True)

    def _clear(self, thread: str, *, delete: bool) -> int:
        check_thread_name(thread)
        conn = self._conn()
        with write_transaction(conn):
            thread_id = self._thread_id(conn, thread)
            removed = conn.execute("DELETE FROM turns WHERE thread_id = ?", (thread_id,)).rowcount
            if delete:
                conn.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
            else:
                conn.execute("UPDATE threads SET updated = MAX(updated, ?) WHERE id = ?", (time.time(), thread_id))
        return int(removed)

    # ------------------------------------------------------------------ reading

    def _thread_id(self, conn: sqlite3.Connection, thread: str) -> int:
        row = conn.execute("SELECT id FROM threads WHERE name = ?", (thread,)).fetchone()
        if row is None:
            raise UnknownThreadError(thread, self.names())
        return int(row[0])

    def names(self) -> list[str]:
        """Every thread's name, sorted."""
        return [row[0] for row in self._conn().execute("SELECT name FROM threads ORDER BY name")]

    def turns(self, thread: str) -> list[Turn]:
        """The turns of ``thread``, oldest first. Raises UnknownThreadError (with close names)."""
        check_thread_name(thread)
        conn = self._conn()
        thread_id = self._thread_id(conn, thread)
        return [_turn(row) for row in conn.execute(f"{_TURN_SELECT} WHERE thread_id = ? ORDER BY position",
                                                   (thread_id,))]

    def window(self, thread: str, budget_tokens: int, *, cell_id: str | None = None) -> list[Turn]:
        """The turns the next call in ``thread`` resends, oldest first (``kept_turns``).

        A thread that does not exist yet has none. With the ``cell_id`` of a turn of this
        thread (a cell run again), only the turns before that one count: the cell's old
        answer and the turns that followed it are not the context it was asked in.
        """
        check_thread_name(thread)
        if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 0:
            raise InvalidInputError(f"budget_tokens must be a whole number of tokens >= 0, not {budget_tokens!r}.")
        rows = self._conn().execute(
            f"{_TURN_SELECT} WHERE thread_id = (SELECT id FROM threads WHERE name = ?) ORDER BY position", (thread,)
        )
        turns = [_turn(row) for row in rows]
        own = next((turn.index for turn in turns if cell_id is not None and turn.cell_id == cell_id), None)
        if own is not None:
            turns = [turn for turn in turns if turn.index < own]
        return kept_turns(turns, budget_tokens)

    def history(
        self, thread: str, budget_tokens: int, *, cell_id: str | None = None, cache: bool = True
    ) -> list[dict[str, Any]]:
        """The API ``messages`` that continue ``thread`` (put the new user message after them):
        the ``window`` turns, the last one marked for prompt caching unless ``cache`` is False."""
        return history_messages(self.window(thread, budget_tokens, cell_id=cell_id), cache=cache)

    def latest(self, *, notebook: str | None = None, session: str | None = None) -> str | None:
        """The thread of the most recent turn from ``notebook`` and/or kernel ``session``
        (any thread when both are None): what ``--continue`` continues. None if there is none."""
        conditions: list[str] = []
        params: list[str] = []
        if notebook is not None:
            conditions.append("u.notebook = ?")
            params.append(notebook)
        if session is not None:
            conditions.append("u.session_id = ?")
            params.append(session)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        row = self._conn().execute(
            f"SELECT t.name FROM turns u JOIN threads t ON t.id = u.thread_id {where} "
            "ORDER BY u.created DESC, u.id DESC LIMIT 1",
            params,
        ).fetchone()
        return None if row is None else str(row[0])

    def threads(self) -> list[ThreadSummary]:
        """Every thread at a glance, most recently used first."""
        billed = " + ".join(f"u.{column}" for column in _USAGE_COLUMNS)
        last = "(SELECT {} FROM turns WHERE thread_id = t.id ORDER BY created DESC, id DESC LIMIT 1)"
        rows = self._conn().execute(
            f"""SELECT t.name, COUNT(u.id), COALESCE(SUM(u.tokens), 0), COALESCE(SUM({billed}), 0),
                       CASE WHEN COUNT(u.cost_usd) = COUNT(u.id) THEN COALESCE(SUM(u.cost_usd), 0.0) END,
                       t.created, t.updated, {last.format('agent')}, {last.format('model')}
                FROM threads t LEFT JOIN turns u ON u.thread_id = t.id
                GROUP BY t.id ORDER BY t.updated DESC, t.id DESC"""
        )
        return [ThreadSummary(*row) for row in rows]
