"""The tables the notebook shows beside its answers: the comparison of runs and the
filtered view of cache entries.

Only views build DataFrames; the magics and the widgets call these and display the
result. pandas is imported inside each function so ``%load_ext`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..core.results import AgentResult
    from ..core.schemas import OutputSchema

__all__ = ["ALL", "clip", "clip_columns", "comparison_frame", "filter_entries"]

ALL = "(all)"
"""The filter value that matches every agent or model (what the widgets' dropdowns show)."""


def comparison_frame(results: Sequence[AgentResult], schema: OutputSchema | None = None) -> pd.DataFrame:
    """The %%compare table: one row per run, in the order the runs were asked for.

    With the runs' ``schema``, each of its fields gets a column after ``text``, typed as the
    schema says (integer: Int64, number: Float64, string: string, boolean: boolean, else
    object; a failed run's field is <NA>); a field named like a run column (``text``,
    ``model``...) is called ``data.text``.
    """
    import pandas as pd

    frame = pd.DataFrame(
        {
            "agent": [r.agent for r in results],
            "model": [r.model for r in results],
            "text": [r.text if r.ok else None for r in results],
            "input_tokens": [r.usage.total_input_tokens for r in results],
            "output_tokens": [r.usage.output_tokens for r in results],
            "cost_usd": [r.cost_usd for r in results],
            "latency_s": [r.latency_s for r in results],
            "cached": [r.cached for r in results],
            "error": [r.error for r in results],
        }
    )
    if schema is None:
        return frame
    records = [schema.fields_of(r.data) for r in results]
    data = pd.DataFrame(
        {f"data.{name}" if name in frame.columns else name:  # never hide a run column
         pd.Series([record.get(name) for record in records], dtype=object, index=frame.index).astype(dtype)
         for name, dtype in schema.column_dtypes().items()},
        index=frame.index,
    )
    at = frame.columns.get_loc("text") + 1
    return pd.concat([frame.iloc[:, :at], data, frame.iloc[:, at:]], axis=1)


def filter_entries(
    frame: pd.DataFrame, agent: str | None = None, model: str | None = None, text: str | None = None
) -> pd.DataFrame:
    """Rows of the cache's entries matching an agent, a model (None, "" or ``ALL``: any)
    and a case-insensitive substring of the task or the answer. Order is kept."""
    mask = frame.index == frame.index  # all True, aligned with the frame
    if agent not in (None, "", ALL):
        mask = mask & (frame["agent"] == agent).to_numpy(dtype=bool, na_value=False)
    if model not in (None, "", ALL):
        mask = mask & (frame["model"] == model).to_numpy(dtype=bool, na_value=False)
    needle = (text or "").strip().casefold()
    if needle:
        def has(column: str) -> Any:
            values = frame[column].fillna("").astype(str).str.casefold()
            return values.str.contains(needle, regex=False).to_numpy(dtype=bool)

        mask = mask & (has("task") | has("answer"))
    return frame[mask]


def clip(text: Any, limit: int) -> Any:
    """A string cut to ``limit`` characters, ending in "…" when it was longer; other values as they are."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def clip_columns(frame: pd.DataFrame, columns: Iterable[str], limit: int) -> pd.DataFrame:
    """A copy of ``frame`` whose text ``columns`` are clipped to ``limit`` characters (for a table on screen)."""
    return frame.assign(**{column: frame[column].map(lambda t: clip(t, limit)) for column in columns})
