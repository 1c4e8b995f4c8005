"""The agent list (``%agent list``) and the claude.json workflows (``%agent workflows``) as DataFrames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..core.agents import AgentRegistry

__all__ = ["AGENT_COLUMNS", "WORKFLOW_COLUMNS", "agent_list", "workflow_list"]

AGENT_COLUMNS = ("name", "source", "path", "model", "description", "chars")
WORKFLOW_COLUMNS = ("workflow", "steps", "agents", "unknown_agents")


def agent_list(registry: AgentRegistry) -> pd.DataFrame:
    """One row per usable agent, sorted by name: name, source, path, model, description, chars."""
    import pandas as pd

    defs = list(registry)
    text = {  # object columns keep None as None (pandas 3 would turn it into NaN)
        "name": [d.name for d in defs],
        "source": [d.source for d in defs],
        "path": [None if d.path is None else str(d.path) for d in defs],
        "model": [d.model for d in defs],
        "description": [d.description for d in defs],
    }
    columns: dict[str, Any] = {k: pd.Series(v, dtype=object) for k, v in text.items()}
    columns["chars"] = pd.Series([len(d.system) for d in defs], dtype="int64")
    return pd.DataFrame(columns, columns=list(AGENT_COLUMNS))


def workflow_list(registry: AgentRegistry) -> pd.DataFrame:
    """One row per claude.json workflow, sorted by name: workflow, steps, agents (joined with
    " -> "), unknown_agents (the ones no agent file defines, so the chain would be refused)."""
    import pandas as pd

    defined = sorted(registry.workflows().items())
    return pd.DataFrame({
        "workflow": pd.Series([name for name, _ in defined], dtype=object),
        "steps": pd.Series([len(agents) for _, agents in defined], dtype="int64"),
        "agents": pd.Series([" -> ".join(agents) for _, agents in defined], dtype=object),
        "unknown_agents": pd.Series([", ".join(a for a in agents if a not in registry) for _, agents in defined],
                                    dtype=object),
    }, columns=list(WORKFLOW_COLUMNS))
