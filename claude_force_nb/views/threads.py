"""pandas views of conversation threads (``%agent threads``, ``%agent thread show T``).

Functions return DataFrames with fixed dtypes, also when there is nothing to show; they
never display. pandas is imported inside each function so ``%load_ext`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.results import Usage

if TYPE_CHECKING:
    import pandas as pd

    from ..store.threads import ThreadStore

__all__ = ["THREADS_COLUMNS", "THREAD_COLUMNS", "thread_frame", "threads_frame"]

TIME = "datetime64[ns, UTC]"
# threads_frame(): one row per thread, indexed by its name
THREADS_COLUMNS: dict[str, str] = {
    "turns": "int64", "history_tokens": "int64", "total_tokens": "int64", "cost_usd": "float64",
    "created": TIME, "last_used": TIME, "last_agent": "string", "last_model": "string",
}
# thread_frame(): one row per turn, indexed by its place in the thread (1 = oldest)
THREAD_COLUMNS: dict[str, str] = {
    "user": "string", "assistant": "string", "agent": "string", "model": "string",
    **{name: "int64" for name in Usage.__dataclass_fields__},
    "history_tokens": "int64", "cost_usd": "float64", "created": TIME,
    "cell_id": "string", "session_id": "string", "notebook": "string",
}


def _frame(records: Sequence[dict[str, Any]], columns: dict[str, str], index: str) -> pd.DataFrame:
    """``records`` as a frame with ``columns`` in order and dtype (times from unix seconds;
    None becomes NaN or <NA>), indexed by the ``index`` key of each record."""
    import pandas as pd

    data = {}
    for name, dtype in columns.items():
        values = [record[name] for record in records]
        if dtype == TIME:
            seconds = pd.Series(values, dtype="float64")
            data[name] = pd.to_datetime(seconds, unit="s", utc=True).astype(TIME)
        else:
            data[name] = pd.Series(values, dtype="float64" if dtype == "float64" else object).astype(dtype)
    frame = pd.DataFrame(data)
    frame.index = pd.Index([record[index] for record in records], name=index,
                           dtype="string" if index == "thread" else "int64")
    return frame


def threads_frame(store: ThreadStore) -> pd.DataFrame:
    """Every thread, most recently used first, indexed by name: turns, ``history_tokens``
    (estimated size of all its turns), ``total_tokens`` (billed), ``cost_usd`` (NaN when a
    turn's price is unknown), created, last_used, last_agent and last_model."""
    records = [{**vars(summary), "thread": summary.name} for summary in store.threads()]
    return _frame(records, THREADS_COLUMNS, "thread")


def thread_frame(store: ThreadStore, name: str) -> pd.DataFrame:
    """The turns of thread ``name``, oldest first, indexed by ``turn``: the texts, agent and
    model, the raw usage, the turn's estimated ``history_tokens``, cost, time and where it
    came from. Raises UnknownThreadError (with close names) for a thread that does not exist."""
    records = [
        {**vars(turn), **turn.usage.to_dict(), "turn": turn.index, "history_tokens": turn.tokens}
        for turn in store.turns(name)
    ]
    return _frame(records, THREAD_COLUMNS, "turn")
