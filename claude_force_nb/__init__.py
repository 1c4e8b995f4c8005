"""claude-force-nb: Claude agents in Jupyter notebooks.

``%load_ext claude_force_nb`` adds the ``%%agent``, ``%agent`` and ``%%compare`` magics.
From Python: ``Orchestrator().run_sync("code-reviewer", code)``.
"""

from __future__ import annotations

from typing import Any

from . import reports
from .agents import AgentDefinition, AgentRegistry
from .cache import ResponseCache
from .errors import (
    APICallError,
    BudgetExceededError,
    ClaudeForceError,
    InvalidInputError,
    UnknownAgentError,
)
from .ledger import Ledger
from .orchestrator import Job, Orchestrator
from .pricing import cost_of
from .results import AgentResult, Usage
from .settings import Settings

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
    "UnknownAgentError",
    "Usage",
    "cost_of",
    "load_ipython_extension",
    "reports",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext claude_force_nb``: register the magics."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext claude_force_nb``: unregister the magics and stop background work."""
    from .magics import unload

    unload(ipython)
