"""Filling ``{name}`` fields of a cell from the notebook's namespace, leaving all other braces alone.

A cell sent to an agent is often code or JSON, full of braces that must reach the
model exactly as written; only a field whose root name is a notebook variable is
filled in.

A DataFrame or Series is never pasted whole by accident: ``{df}`` becomes a summary
(shape, dtypes, the first rows as a Markdown table) within ``table_chars`` characters,
and ``{df!full}`` sends every row as CSV (still subject to ``max_task_chars``).
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.error import UsageError

from ..core.options import surrogate_problem
from ..views.table_text import is_table, table_full, table_summary

__all__ = ["TABLE_CHARS", "interpolate"]

TABLE_CHARS = 2_000  # the default size of a {df} summary

# {name}, {name.attr}, {name[0]}, {name['key']} ... ; {{name}} is a literal {name}.
_EXPR = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\")\])*"
_FIELD = re.compile(rf"\{{\{{(?P<escaped>{_EXPR}(?:!full)?)\}}\}}|\{{(?P<expr>{_EXPR})(?P<full>!full)?\}}")
_STEP = re.compile(r"\.(?P<attr>[A-Za-z_]\w*)|\[(?P<index>-?\d+|'[^'\]]*'|\"[^\"\]]*\")\]")


def interpolate(text: str, namespace: dict[str, Any], table_chars: int = TABLE_CHARS) -> str:
    """Expand ``{name}``-style fields whose root name exists in ``namespace``.

    Everything else (dict literals, nested braces in code, format specs, unknown names)
    stays exactly as written; ``{{name}}`` is the escape for a literal ``{name}``. One
    pass: an inserted value is never expanded again.
    """

    def field(match: re.Match[str]) -> str:
        token = match.group(0)
        if match.group("escaped") is not None:
            return token[1:-1]
        expr = match.group("expr")
        root = re.match(r"[A-Za-z_]\w*", expr).group(0)  # type: ignore[union-attr]
        if root not in namespace:
            return token
        literally = f"Write {{{token}}} to send it literally, or use --no-interpolate."
        try:
            value = namespace[root]
            for step in _STEP.finditer(expr, len(root)):
                if step.group("attr"):
                    value = getattr(value, step.group("attr"))
                else:
                    index = step.group("index")
                    value = value[int(index) if index[0] not in "'\"" else index[1:-1]]
            filled = _text(value, expr, bool(match.group("full")), table_chars)
        except Exception as exc:  # the user's object failed (a property, __getitem__, __str__): not our bug
            raise UsageError(f"Cannot fill in {token}: {type(exc).__name__}: {_first_line(exc)}. {literally}") from None
        if (problem := surrogate_problem(filled, f"The value of {token}")) is not None:
            raise UsageError(f"{problem} {literally}")
        return filled

    return _FIELD.sub(field, text)


def _text(value: Any, expr: str, full: bool, table_chars: int) -> str:
    """What a field becomes: a table's summary (or all of it with ``!full``), else ``str(value)``."""
    if not is_table(value):
        return str(value)
    return table_full(value) if full else table_summary(value, table_chars, expr)


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (a user's __str__ may say anything)."""
    try:
        lines = str(exc).strip().splitlines()
    except Exception:  # an exception whose own __str__ fails
        return "(its message cannot be shown)"
    return lines[0] if lines else "(no message)"
