"""A DataFrame or Series as prompt text: a compact summary within a budget, or the whole table.

``{df}`` in a cell must not paste a million-row repr into a prompt: :func:`table_summary`
gives the shape, the dtypes and the first rows as a Markdown table, as many rows as fit
``budget_chars``. ``{df!full}`` asks for :func:`table_full` (CSV, every row). Frames are
recognised by what they have (``shape``, ``dtypes``, ``head``), so no pandas import is
needed to tell; pandas itself is never imported here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_table", "markdown_table", "table_full", "table_summary"]

HEAD_ROWS = 5
CELL_CHARS = 40  # one value in the Markdown head; longer ones end in "…"


def is_table(value: Any) -> bool:
    """A DataFrame (2-D) or Series (1-D); numpy arrays have no ``describe``."""
    shape = getattr(value, "shape", None)
    return isinstance(shape, tuple) and len(shape) in (1, 2) and hasattr(value, "describe") and hasattr(value, "head")


def _cell(value: Any) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def markdown_table(frame: Any) -> str:
    """``frame`` (its index first, when it has one) as a GitHub Markdown table."""
    if len(frame.shape) == 1:
        frame = frame.to_frame()
    index = getattr(frame, "index", None)
    names = [_cell(getattr(index, "name", None) or "")] if index is not None else []
    header = names + [_cell(column) for column in frame.columns]
    rows = []
    for position, values in enumerate(frame.itertuples(index=False, name=None)):
        label = [_cell(index[position])] if index is not None else []
        rows.append(label + [_cell(value) for value in values])
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _dtypes(value: Any) -> str:
    if len(value.shape) == 1:
        return f"dtype {value.dtype}"
    return "columns: " + ", ".join(f"{column} ({dtype})" for column, dtype in zip(value.columns, value.dtypes))


def table_summary(value: Any, budget_chars: int, name: str = "") -> str:
    """The shape, dtypes and first rows of ``value`` in at most ``budget_chars`` characters.

    The head shrinks until it fits; if even the shape and dtypes do not, they are cut and
    the text says so (``{name!full}`` sends everything).
    """
    kind = type(value).__name__
    shape = value.shape
    size = f"{shape[0]:,} rows × {shape[1]:,} columns" if len(shape) == 2 else f"{shape[0]:,} values"
    head = f"{kind}{' ' + name if name else ''}, {size}; {_dtypes(value)}"
    for rows in range(min(HEAD_ROWS, shape[0]), 0, -1):
        shown = "all rows" if rows == shape[0] else ("first row" if rows == 1 else f"first {rows} rows")
        text = f"{head}\n{shown}:\n{markdown_table(value.head(rows))}"
        if len(text) <= budget_chars:
            return text
    if len(head) <= budget_chars:
        return head
    cut = f"… [cut at {budget_chars:,} characters]"
    return head[: max(0, budget_chars - len(cut))] + cut


def table_full(value: Any) -> str:
    """Every row and column of ``value`` as CSV (what ``{df!full}`` sends)."""
    return str(value.to_csv())
