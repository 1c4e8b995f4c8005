"""The prompt of a map run: a template whose ``{names}`` are a DataFrame's columns.

``"Classify: {review}"`` is rendered once per row with ``str.format_map``: ``{review}`` is
that row's value, ``{{`` and ``}}`` are literal braces, and a format spec works as in an
f-string (``{price:.2f}``). Every name is checked against the columns before anything
is sent, so a typo is one clear error rather than 10,000 failed rows. A missing value
(None, NaN, <NA>, NaT) renders as an empty string.

The engine never imports pandas: rows are read through the frame's own ``columns`` and
``itertuples``.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Iterator, Sequence
from typing import Any

from ..core.errors import InvalidInputError

__all__ = ["RowPrompts"]

_BRACES_HELP = "write {{ and }} for literal braces"


class RowPrompts:
    """A checked template over a frame's columns; renders the prompt of each row."""

    def __init__(self, template: str, columns: Sequence[Any]) -> None:
        if not isinstance(template, str) or not template.strip():
            raise InvalidInputError("The prompt is empty: give a template such as 'Classify: {review}'.")
        self.template = template
        names = {str(column): position for position, column in enumerate(columns)}
        self.fields = _fields(template)
        unknown = [name for name in self.fields if name not in names]
        if unknown:
            raise InvalidInputError(_unknown_message(unknown[0], list(names)))
        if not self.fields:
            raise InvalidInputError(
                "The prompt names no column, so every row would get the same answer: "
                "put a column in braces, e.g. 'Classify: {review}'."
            )
        self._positions = [names[name] for name in self.fields]

    def render(self, values: Sequence[Any]) -> str:
        """The prompt of one row, given the row's values in column order (as itertuples yields them)."""
        row = {name: _shown(values[position]) for name, position in zip(self.fields, self._positions, strict=True)}
        return self.template.format_map(row)

    def rows(self, frame: Any) -> Iterator[str]:
        """Every row's prompt, in order, one at a time (nothing is held for the whole frame)."""
        for values in frame.itertuples(index=False, name=None):
            yield self.render(values)


def _fields(template: str) -> list[str]:
    """The distinct names the template refers to, in order; positional fields are refused."""
    found: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone "{" or "}"
        raise InvalidInputError(f"The prompt is not a valid template ({exc}): {_BRACES_HELP}.") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise InvalidInputError(
                "The prompt has a positional field ('{}' or '{0}'): name a column, e.g. '{review}', "
                f"or {_BRACES_HELP}."
            )
        if any(mark in name for mark in ".[!:"):
            raise InvalidInputError(
                f"The prompt field {{{name}}} has '.' or '[' in its name, which a template reads as an attribute "
                f"or an index: rename the column (df.rename(columns=...)) to a plain name."
            )
        if name not in found:
            found.append(name)
    return found


def _unknown_message(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f"did you mean {{{close[0]}}}? " if close else ""
    shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
    return (
        f"The prompt names {{{name}}}, which is not a column of the DataFrame ({shown}): {hint}"
        f"name a column, or {_BRACES_HELP}."
    )


def _shown(value: Any) -> Any:
    """A row value as the template gets it: missing values (None, NaN, <NA>, NaT) become ''."""
    if value is None:
        return ""
    try:
        missing = bool(value != value)  # NaN and NaT differ from themselves
    except (TypeError, ValueError):  # pandas.NA refuses to be a bool; an array-valued cell is kept
        missing = type(value).__name__ == "NAType"
    return "" if missing else value
