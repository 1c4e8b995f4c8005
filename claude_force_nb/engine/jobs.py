"""Jobs of ``run_many``: one agent, one task and its own options, from whatever shape was given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Job", "agent_named_in"]


@dataclass(frozen=True)
class Job:
    """One unit of work for run_many: an agent, a task and per-job options."""

    agent: str
    task: str
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    system: str | None = None
    tools: Any = None
    schema: Any = None
    thread: str | None = None
    max_steps: int | None = None
    cell_id: str | None = None
    notebook: str | None = None

    @classmethod
    def coerce(cls, item: Job | Sequence[Any] | dict[str, Any]) -> Job:
        if isinstance(item, Job):
            return item
        if isinstance(item, dict):
            return cls(**item)
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence):
            raise TypeError(f"a job is (agent, task), (agent, task, {{options}}), a dict or a Job, not {item!r:.40}")
        if len(item) == 3 and isinstance(item[2], dict):
            return cls(item[0], item[1], **item[2])
        return cls(*item)


def agent_named_in(item: Any) -> str:
    """The agent a (possibly malformed) run_many job names, for its error result."""
    agent = getattr(item, "agent", None) or (item.get("agent") if isinstance(item, dict) else None)
    if agent is None and isinstance(item, (list, tuple)) and item:
        agent = item[0]
    return str(agent or "?")
