"""What ``%%agent``'s acting flags name, looked up in the notebook: tools, schema, thread, cell.

``--tools f,g`` names functions in the notebook (``@tool`` ones or plain ``def``\\ s) or
``notebook`` (``list_variables`` and ``describe`` over the notebook's variables);
``--schema SPEC`` is a variable holding a pydantic model or JSON-schema dict, or a field
list such as ``'title, score float'``; ``--thread T`` / ``-c`` choose the conversation.
Where a cell comes from is read from the front end: the execute request's
``metadata.cellId`` (JupyterLab, Notebook 7 and VS Code send it) keys a thread's turn, and
the notebook's path (``JPY_SESSION_NAME``, or VS Code's ``__vsc_ipynb_file__``) tells
``--continue`` which threads are this notebook's. Every mistake is one line naming the fix.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Container, Mapping
from typing import Any

from IPython.core.error import UsageError

from ..core.errors import UnknownToolError
from ..core.schemas import OutputSchema
from ..core.tools import Tool, tool
from ..store.ledger import current_session_id
from ..store.threads import ThreadStore, check_thread_name
from .arguments import comma_list
from .context_tools import notebook_tools

__all__ = ["NOTEBOOK", "cell_id", "notebook_key", "resolve_schema", "resolve_thread", "resolve_tools"]

NOTEBOOK = "notebook"  # the --tools name for list_variables and describe


def _offered(user_ns: Mapping[str, Any]) -> list[str]:
    """The notebook's tools and functions: the names ``--tools`` accepts besides ``notebook``."""
    return [name for name, value in list(user_ns.items())
            if not name.startswith("_") and (isinstance(value, Tool) or inspect.isfunction(value))]


def resolve_tools(value: str, user_ns: Mapping[str, Any], hidden: Container[str] = ()) -> list[Tool]:
    """The tools a ``--tools`` value names, in order (``notebook`` adds the two notebook tools).

    A plain function becomes a tool here, so a signature that cannot be one (no type hints,
    ``*args``...) or a name that holds no function is refused before anything is sent.
    """
    chosen: list[Tool] = []
    for name in comma_list(value, "--tools", "tool", "describe,notebook"):
        if name == NOTEBOOK:
            chosen.extend(notebook_tools(user_ns, hidden=hidden))
        elif name in user_ns:
            chosen.append(tool(user_ns[name]))
        else:
            raise UnknownToolError(name, _offered(user_ns))
    return chosen


def resolve_schema(spec: str, user_ns: Mapping[str, Any]) -> OutputSchema:
    """The schema ``--schema`` names: a notebook variable (pydantic model or dict), else a field list."""
    spec = spec.strip()
    source: Any = user_ns[spec] if spec.isidentifier() and spec in user_ns else spec
    return OutputSchema.from_spec(source)  # an invalid one raises InvalidSchemaError: one line


def resolve_thread(thread: str | None, continue_latest: bool, threads: Callable[[], ThreadStore],
                   notebook: str | None) -> str:
    """The thread this cell continues: ``--thread T`` or this notebook's latest (``-c``, looked
    up in the store ``threads()`` returns, opened only then)."""
    if thread is not None and continue_latest:
        raise UsageError("Give either --thread NAME or -c/--continue, not both.")
    if thread is not None:
        return check_thread_name(thread)
    store = threads()
    latest = store.latest(notebook=notebook) if notebook else store.latest(session=current_session_id())
    if latest is None:
        raise UsageError("-c/--continue: this notebook has no thread yet; start one with --thread NAME.")
    return latest


def cell_id(shell: Any) -> str | None:
    """The running cell's id, as the front end sent it in the execute request's metadata."""
    parent = getattr(shell, "parent_header", None) or {}
    found = (parent.get("metadata") or {}).get("cellId")
    return found if isinstance(found, str) and found else None


def notebook_key(user_ns: Mapping[str, Any]) -> str | None:
    """The notebook's path as the front end tells the kernel (None in a console or a script)."""
    found = os.environ.get("JPY_SESSION_NAME") or user_ns.get("__vsc_ipynb_file__")
    return str(found) if found else None
