"""Notebook tools: ``list_variables`` and ``describe``, so an agent can look at the data.

``notebook_tools(user_ns)`` builds both as :class:`~claude_force_nb.core.tools.Tool`\\ s
bound to one namespace (a kernel's ``shell.user_ns``, or any dict in a test). They show
what a user would see with ``%who`` — no modules, functions, classes or IPython's own
names (``In``, ``Out``, ``_``-names and ``shell.user_ns_hidden``) — and every answer has a
character cap, so a million-row frame never floods the conversation.

DataFrames and Series are recognised by what they have (``shape``, ``dtypes``,
``describe``...), not by importing pandas (only views/ imports it), so polars frames work
too.
"""

from __future__ import annotations

import difflib
import inspect
import textwrap
from collections.abc import Container, Mapping
from typing import Any

from ..core.errors import ToolError
from ..core.schemas import short_repr
from ..core.tools import Tool, tool
from ..views.table_text import is_table

__all__ = ["DEFAULT_HIDDEN", "NOTEBOOK_TOOLS", "notebook_tools"]

NOTEBOOK_TOOLS = ("list_variables", "describe")  # what ``--tools notebook`` offers
DEFAULT_HIDDEN = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
_TYPING_MODULES = frozenset({"typing", "typing_extensions"})
_LINE_CHARS = 160  # one variable in list_variables
_MAX_COLS, _MAX_COLWIDTH = 30, 40


def notebook_tools(
    user_ns: Mapping[str, Any],
    *,
    hidden: Container[str] = (),
    list_chars: int = 4_000,
    describe_chars: int = 8_000,
    head_rows: int = 5,
) -> list[Tool]:
    """``list_variables`` and ``describe`` over ``user_ns``. Names in ``hidden`` are left out
    besides ``DEFAULT_HIDDEN``: pass ``hidden=shell.user_ns_hidden`` in a kernel to leave out
    everything IPython itself put there."""

    @tool
    def list_variables() -> str:
        """List the notebook's variables: name, type and a short summary (a DataFrame's shape and
        columns, a container's length, a short value). Call describe(name) for more on one."""
        variables = _visible(user_ns, hidden)
        if not variables:
            return "The notebook has no variables yet."
        lines, size = [], 0
        for index, (name, value) in enumerate(variables):
            line = textwrap.shorten(f"{name}: {_summary(value)}", _LINE_CHARS, placeholder=" …")
            if size + len(line) > list_chars:
                lines.append(f"… and {len(variables) - index} more (the list is capped at {list_chars:,} characters)")
                break
            lines.append(line)
            size += len(line) + 1
        return "\n".join(lines)

    @tool
    def describe(name: str) -> str:
        """Describe one notebook variable: for a DataFrame or Series its shape, dtypes, first rows
        and describe() statistics; for anything else its type, size and a short repr.

        Args:
            name: The variable's name, as list_variables shows it.
        """
        variables = dict(_visible(user_ns, hidden))
        if name not in variables:
            close = difflib.get_close_matches(name, list(variables), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ToolError(f"No variable {name!r} in the notebook{hint}: call list_variables to see the names.")
        value = variables[name]
        text = _describe_table(name, value, head_rows) if is_table(value) else _describe_object(name, value)
        return _cut(text, describe_chars)

    return [list_variables, describe]


def _visible(user_ns: Mapping[str, Any], hidden: Container[str]) -> list[tuple[str, Any]]:
    """The user's own variables, in the order they were defined."""
    return [
        (name, value)
        for name, value in list(user_ns.items())
        if not name.startswith("_")
        and name not in DEFAULT_HIDDEN
        and name not in hidden
        and not (inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value))
        and type(value).__module__ not in _TYPING_MODULES  # from typing import Literal, Optional...
        and not isinstance(value, Tool)
    ]


def _summary(value: Any) -> str:
    """One short line about a value."""
    kind = type(value).__name__
    try:
        shape: Any = getattr(value, "shape", None)
        if is_table(value) and len(shape) == 2:
            columns = ", ".join(str(c) for c in list(value.columns)[:10])
            more = ", …" if shape[1] > 10 else ""
            return f"{kind} {shape[0]:,} rows × {shape[1]:,} columns ({columns}{more})"
        if is_table(value):
            return f"{kind} {shape[0]:,} values, dtype {value.dtype}"
        if isinstance(shape, tuple) and hasattr(value, "dtype"):
            return f"{kind} shape {shape}, dtype {value.dtype}"
        if isinstance(value, str | bytes):
            return f"{kind} of {len(value):,} characters: {short_repr(value, 60)}"
        if hasattr(value, "__len__"):
            return f"{kind} of {len(value):,} items: {short_repr(value, 40)}"
        return f"{kind}: {short_repr(value, 80)}"
    except Exception as exc:  # a summary must never break the listing
        return f"{kind} (cannot be summarised: {type(exc).__name__})"


def _describe_table(name: str, value: Any, head_rows: int) -> str:
    shape = value.shape
    if len(shape) == 2:
        header = f"{name}: {type(value).__name__}, {shape[0]:,} rows × {shape[1]:,} columns"
        dtypes = "\n".join(f"{column}: {dtype}" for column, dtype in zip(value.columns, value.dtypes))
    else:
        header = f"{name}: {type(value).__name__}, {shape[0]:,} values, dtype {value.dtype}"
        dtypes = ""
    parts = [header]
    if dtypes:
        parts.append(f"dtypes:\n{dtypes}")
    parts.append(f"First {head_rows} rows:\n{_attempt(lambda: _text_table(value.head(head_rows)))}")
    parts.append(f"describe():\n{_attempt(lambda: _text_table(value.describe()))}")
    return "\n\n".join(parts)


def _describe_object(name: str, value: Any) -> str:
    shape = getattr(value, "shape", None)
    try:
        if isinstance(shape, tuple):
            size = f", shape {shape}" + (f", dtype {value.dtype}" if hasattr(value, "dtype") else "")
        else:
            size = f", {len(value):,} {'characters' if isinstance(value, str | bytes) else 'items'}"
    except Exception:  # no length
        size = ""
    return f"{name}: {type(value).__name__}{size}\n{_attempt(lambda: short_repr(value, 2_000, 50))}"


def _text_table(table: Any) -> str:
    """A frame or series as plain text, limited in width (pandas' to_string, else str())."""
    to_string = getattr(table, "to_string", None)
    if to_string is None:
        return str(table)
    try:
        return str(to_string(max_cols=_MAX_COLS, max_colwidth=_MAX_COLWIDTH))
    except TypeError:  # a Series takes neither option
        return str(to_string())


def _attempt(make: Any) -> str:
    try:
        return str(make())
    except Exception as exc:
        return f"(failed: {type(exc).__name__}: {exc})"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[cut: {len(text):,} characters in all, only the first {limit:,} are shown]"
