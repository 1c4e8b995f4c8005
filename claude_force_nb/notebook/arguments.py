"""Reading what a user typed after a magic: words, flags and the values they hold.

Every mistake here is the user's, so each check ends in one line (an IPython
UsageError, shown without a traceback) that names the problem and the fix.
"""

from __future__ import annotations

import argparse
import functools
import keyword
import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from traitlets import TraitError

from ..core.errors import ClaudeForceError
from ..core.options import RunOptions, surrogate_problem

__all__ = ["comma_list", "friendly", "parse", "run_options", "split", "text_for_agent", "variable_name",
           "variable_name_problem"]


def split(line: str) -> list[str]:
    """Shell-style words (IPython's own splitter keeps the quotes)."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"Cannot parse the magic's arguments ({exc}): check the quotes.") from None


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def parse(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    """The magic's arguments. A value that starts with "-" (``-t -inf``, ``--max-tokens -5``)
    is kept with its flag, so the value's own check says what is wrong with it instead of
    argparse's "expected one argument"."""
    takes_value = {s for action in parser._actions if action.nargs is None for s in action.option_strings}
    words: list[str] = []
    for word in split(line):
        if words and words[-1] in takes_value and word.startswith("-") and _is_number(word):
            words[-1] = f"{words[-1]}={word}"
        else:
            words.append(word)
    return parser.parse_args(words)


def run_options(args: argparse.Namespace) -> RunOptions:
    """The call options ``%%agent``'s flags give (model, tokens, temperature, system, cache, stream)."""
    return RunOptions(
        model=args.model, max_tokens=args.max_tokens, temperature=args.temperature, system=args.system,
        use_cache=not args.no_cache, refresh=args.refresh, stream=False if args.no_stream else None,
    )


def comma_list(value: str, flag: str, what: str, example: str) -> list[str]:
    """The names in a comma-separated flag value; refused if it names none (``-a ,``)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise UsageError(f"{flag} {value!r} names no {what}: give comma-separated names, e.g. {flag} {example}.")
    return names


def variable_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a notebook variable, with the fix; None if it can."""
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword, so no variable can have that name: use e.g. {name + '_'!r}."
    if not name.isidentifier():
        return (f"{name!r} is not a usable variable name: use letters, digits and _, "
                f"not starting with a digit (e.g. 'result').")
    return None


def variable_name(name: str | None, flag: str = "-o") -> str | None:
    """``name`` if a result can be stored under it (None: no name given)."""
    if name is not None and (problem := variable_name_problem(name)) is not None:
        raise UsageError(f"{flag}: {problem}")
    return name


def text_for_agent(text: str, what: str) -> str:
    """``text`` if it can be sent as UTF-8; the place of a lone surrogate otherwise."""
    if (problem := surrogate_problem(text, what)) is not None:
        raise UsageError(problem)
    return text


def friendly(method: Callable[..., Any]) -> Callable[..., Any]:
    """User mistakes (ClaudeForceError) become one printed line instead of a traceback."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (ClaudeForceError, TraitError) as exc:  # TraitError: a setting refused by its check
            raise UsageError(str(exc)) from None

    return wrapper
