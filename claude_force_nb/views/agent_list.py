"""The agent list as a DataFrame (``%agent list``): one row per usable agent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..core.agents import AgentRegistry

__all__ = ["AGENT_COLUMNS", "agent_list"]

AGENT_COLUMNS = ("name", "source", "path", "model", "description", "chars")


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
