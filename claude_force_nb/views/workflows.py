"""Workflow tables: a run's nodes (the live status table and the result's frame) and the defined workflows.

pandas is imported inside each function so ``%load_ext`` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from ..core.workflow_results import WorkflowResult

__all__ = ["NODE_COLUMNS", "nodes_frame", "workflows_frame"]

NODE_COLUMNS = ["node", "agent", "model", "state", "tokens", "cost", "latency"]


def nodes_frame(result: WorkflowResult) -> pd.DataFrame:
    """One row per node in the workflow's order: node, agent, model, state (``skipped (needs X)``),
    tokens, cost (USD; NaN when the model has no price), latency (seconds)."""
    import pandas as pd

    frame = pd.DataFrame(result.rows(), columns=NODE_COLUMNS)
    frame["cost"] = frame["cost"].astype("float64")
    return frame


def workflows_frame(workflows: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The claude.json workflows: name, number of steps, and the chain of agents."""
    import pandas as pd

    return pd.DataFrame(
        {
            "workflow": list(workflows),
            "steps": [len(agents) for agents in workflows.values()],
            "agents": [" → ".join(agents) for agents in workflows.values()],
        }
    )
