"""``%%agent NAME --over DF``: the cell is a prompt template, sent once per row of a DataFrame.

::

    %%agent assistant --over reviews --into label -o labelled
    Classify this review as positive or negative: {review}

Row fields and notebook variables: a ``{name}`` that is a column of DF is that row's value;
any other ``{name}`` that is a notebook variable is filled in once, before the run (its
braces are kept literal); a name that is both is the column. A name that is neither is one
clear error before anything is sent, and so is a budget the estimate does not fit.
``{{`` and ``}}`` are literal braces; ``--no-interpolate`` leaves notebook variables alone.

The estimate is shown above a progress bar (map_progress_bar.py); ``--dry-run`` shows only
the estimate. The result frame is the cell's value (and ``-o OUT``). An interrupt returns the
partial frame; running the cell again resumes, since the finished rows are cached.
"""

from __future__ import annotations

import argparse
import re
import string
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, argument_group

from ..views.table_text import is_table
from .arguments import run_options, text_for_agent
from .interpolate import interpolate

if TYPE_CHECKING:  # pragma: no cover
    from .magics import AgentMagics
    from .map_progress_bar import MapProgressBar

__all__ = ["fill_template", "map_arguments", "run_over", "wants_map"]

_MAP_FLAGS = (
    argument_group("Over a DataFrame"),
    argument("--over", metavar="DF", help="Send the cell once per row of this DataFrame; {column} is the row's value."),
    argument("--into", metavar="COL", default="answer", help="Name of the answer column (default: answer)."),
    argument("--dry-run", action="store_true", help="Show what the run would send and cost; send nothing."),
    argument("--window", type=int, metavar="N", help="Most rows in flight at once (default: max_concurrent)."),
    argument("--batch", action="store_true", help="Send the rows through the Message Batches API (half price)."),
)
# %%agent flags that make no sense when every row is its own call: refused with --over.
_SINGLE_CALL_FLAGS = (("thread", "--thread"), ("continue_latest", "-c/--continue"), ("tools", "--tools"),
                      ("max_steps", "--max-steps"), ("bg", "--bg"))


def map_arguments(magic: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``--over`` flags to a magic (placed below its other ``@argument`` lines)."""
    for flag in reversed(_MAP_FLAGS):
        magic = flag(magic)
    return magic


def wants_map(args: argparse.Namespace) -> bool:
    """True if the line asks for a map: ``--over``, or a flag that only works with it."""
    return args.over is not None or args.dry_run or args.batch or args.window is not None or args.into != "answer"


def run_over(magics: AgentMagics, args: argparse.Namespace, cell: str) -> Any:
    """Run (or with ``--dry-run`` estimate) the cell's template over ``--over``'s DataFrame."""
    _check_flags(args)
    user_ns = magics.user_ns
    frame = _frame(user_ns, args.over)
    template = text_for_agent(cell, "The cell").strip("\n")
    if magics.interpolate and not args.no_interpolate:
        template = fill_template(template, [str(c) for c in frame.columns], user_ns, magics.table_chars)
    options = run_options(args).as_kwargs()
    if args.schema is not None:
        from .cell_options import resolve_schema  # pydantic: imported with the first schema cell

        options["schema"] = resolve_schema(args.schema, user_ns)
    orch = magics.orchestrator
    if args.dry_run:
        estimate = orch.estimate_map(frame, args.agent, template, batch=args.batch, into=args.into, **options)
        return _stored(user_ns, args.out, estimate)
    if args.batch:
        options["batch"] = True
    bar = _progress_bar(magics, len(frame))
    try:
        out = orch.map_sync(frame, args.agent, template, into=args.into, window=args.window,
                            progress=bar or True, **options)
    except BaseException:
        if bar is not None:
            bar.discard()  # refused before it started (bad template, budget): no empty bar left behind
        raise
    if bar is not None:
        bar.close()
    summary = out.attrs.get("claude_force", {})
    if summary.get("interrupted"):
        print(f"Interrupted after {summary['done']:,} of {summary['rows']:,} rows: "
              "run the cell again to resume (finished rows are cached).")
        for batch_id in summary.get("batch_ids", []):
            print(f"Batch {batch_id} goes on: the cell run again waits for it, or `%agent batch resume {batch_id}`.")
    return _stored(user_ns, args.out, out)


def _progress_bar(magics: AgentMagics, rows: int) -> MapProgressBar | None:
    """The widget bar, shown, in a kernel (a notebook); None in a terminal, which gets the text bar."""
    if getattr(magics.shell, "kernel", None) is None:
        return None
    from .map_progress_bar import MapProgressBar  # ipywidgets and tqdm's widget bar: only when a map runs

    bar = MapProgressBar(rows)
    bar.show()
    return bar


def _check_flags(args: argparse.Namespace) -> None:
    if args.over is None:
        raise UsageError("--into, --dry-run, --window and --batch work with --over DF: name the DataFrame, "
                         "e.g. %%agent assistant --over df --dry-run")
    for dest, flag in _SINGLE_CALL_FLAGS:
        if getattr(args, dest) not in (None, False):
            raise UsageError(f"{flag} does not work with --over: every row is its own call. Drop {flag}, "
                             "or run the rows one by one with %%agent.")
    if args.window is not None and args.window < 1:
        raise UsageError(f"--window {args.window}: at least one row must be in flight; "
                         f"give 1 or more (default: max_concurrent).")
    if args.format != "markdown":
        raise UsageError("-f/--format does not work with --over: the answers come back as a DataFrame. Drop -f.")


def _frame(user_ns: Mapping[str, Any], name: str) -> Any:
    """The DataFrame ``--over`` names."""
    if name not in user_ns:
        raise UsageError(f"--over {name}: there is no notebook variable {name!r}. "
                         f"Load the DataFrame first (e.g. {name} = pd.read_csv(...)) or check the name.")
    value = user_ns[name]
    if not (is_table(value) and len(value.shape) == 2):
        hint = f" (a Series: {name}.to_frame())" if is_table(value) else ""
        raise UsageError(f"--over {name}: {name} is a {type(value).__name__}, not a pandas DataFrame: "
                         f"pass a DataFrame{hint}.")
    return value


def _stored(user_ns: dict[str, Any], name: str | None, value: Any) -> Any:
    if name:
        user_ns[name] = value
    return value


def fill_template(template: str, columns: Collection[str], namespace: dict[str, Any],
                  table_chars: int) -> str:
    """``template`` with every ``{name}`` that is a notebook variable and not a column filled in.

    A filled value's braces are doubled, so it stays literal text in the template; column
    fields, ``{{``/``}}`` and names that are neither stay as written (the map's template
    check then names a name that is neither). A template that does not parse is returned
    unchanged for the same check to explain.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return template
    pieces: list[str] = []
    for literal, name, spec, conversion in parsed:
        pieces.append(_literal(literal))
        if name is None:
            continue
        token = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        root = re.match(r"[^.\[]*", name).group(0)  # type: ignore[union-attr]  # always matches
        if root in columns or root not in namespace:
            pieces.append(token)
        else:
            pieces.append(_literal(_variable(token, namespace, table_chars)))
    return "".join(pieces)


def _variable(token: str, namespace: dict[str, Any], table_chars: int) -> str:
    """A variable field's text: as ``%%agent`` fills it (a DataFrame is summarised), or with a
    format spec or conversion as ``str.format`` would (``{threshold:.2f}``)."""
    filled = interpolate(token, namespace, table_chars)
    if filled != token:
        return filled
    try:
        return string.Formatter().vformat(token, (), namespace)
    except Exception as exc:  # the user's value refused the spec: not our bug
        raise UsageError(f"Cannot fill in {token} from the notebook: {type(exc).__name__}: {exc}. "
                         f"Write {{{token}}} to send it literally.") from None


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
