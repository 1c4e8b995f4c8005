"""claude-force-nb: Claude agents in Jupyter notebooks.

``%load_ext claude_force_nb`` adds the ``%%agent``, ``%agent`` and ``%%compare`` magics.
From Python: ``Orchestrator().run_sync("code-reviewer", code)``.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.agents import AgentDefinition, AgentRegistry
    from .core.errors import (
        APICallError,
        BudgetExceededError,
        ClaudeForceError,
        InvalidInputError,
        UnknownAgentError,
    )
    from .core.pricing import cost_of
    from .core.results import AgentResult, Usage
    from .core.settings import Settings
    from .core.workflow import Workflow
    from .engine.orchestrator import Job, Orchestrator
    from .store.cache import ResponseCache
    from .store.ledger import Ledger
    from .views import reports

# A library does not decide where log lines go: without a handler configured by the user,
# warnings from the background loop must not print into whichever cell happens to run.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# Public names are imported on first use: `%load_ext claude_force_nb` must not pay for
# the anthropic SDK or pandas before the first agent call.
_LAZY = {
    "AgentDefinition": "core.agents", "AgentRegistry": "core.agents", "ResponseCache": "store.cache",
    "APICallError": "core.errors", "BudgetExceededError": "core.errors", "ClaudeForceError": "core.errors",
    "InvalidInputError": "core.errors", "UnknownAgentError": "core.errors", "Ledger": "store.ledger",
    "Job": "engine.orchestrator", "Orchestrator": "engine.orchestrator", "cost_of": "core.pricing",
    "AgentResult": "core.results", "Usage": "core.results", "Settings": "core.settings",
    "ThreadStore": "store.threads", "tool": "core.tools", "Workflow": "core.workflow",
}


def __getattr__(name: str) -> Any:
    if name == "reports":
        return importlib.import_module(".views.reports", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "APICallError",
    "AgentDefinition",
    "AgentRegistry",
    "AgentResult",
    "BudgetExceededError",
    "ClaudeForceError",
    "InvalidInputError",
    "Job",
    "Ledger",
    "Orchestrator",
    "ResponseCache",
    "Settings",
    "ThreadStore",
    "UnknownAgentError",
    "Usage",
    "Workflow",
    "cost_of",
    "load_ipython_extension",
    "reports",
    "tool",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext claude_force_nb``: register the magics."""
    from .notebook.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext claude_force_nb``: unregister the magics and stop background work."""
    from .notebook.magics import unload

    unload(ipython)
