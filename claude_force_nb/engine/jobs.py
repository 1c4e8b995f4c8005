"""``run_many``: its jobs (one agent, one task and its own options, from whatever shape was
given), run concurrently, each failure its own result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import ClaudeForceError, InvalidInputError
from ..core.options import RunOptions
from ..core.results import AgentResult
from . import outcomes

if TYPE_CHECKING:  # pragma: no cover
    from ..core.agents import AgentDefinition
    from .orchestrator import Orchestrator

__all__ = ["Job", "agent_named_in", "run_jobs"]


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


async def run_jobs(
    orch: Orchestrator, items: list[Any], on_result: Callable[[int, AgentResult], Any] | None, common: dict[str, Any]
) -> list[AgentResult]:
    """``run_many``: every job concurrently; one result per job, in input order, whatever fails."""
    resolved: dict[str, AgentDefinition] = {}  # one registry scan per agent, not per job
    on_text = common.pop("on_text", None)
    on_step = common.pop("on_step", None)

    async def one(i: int, item: Any) -> AgentResult:
        model = orch.settings.default_model  # what a refused job shows, until its own model is known
        try:
            try:
                job = Job.coerce(item)
            except (TypeError, ValueError) as exc:  # a malformed job tuple/dict; bugs elsewhere propagate
                raise InvalidInputError(
                    f"Job {i} is malformed ({exc}): use (agent, task) or (agent, task, {{options}})."
                ) from None
            own = {k: v for k, v in vars(job).items() if k not in ("agent", "task") and v is not None}
            options = RunOptions.from_kwargs(**{**common, **own})
            if job.agent not in resolved:
                resolved[job.agent] = orch.registry.get(job.agent)
            model = options.resolve(resolved[job.agent], orch.settings).model or model
            result = await orch._run(resolved[job.agent], job.task, options, on_text, on_step)
        except ClaudeForceError as exc:
            result = outcomes.refused(agent_named_in(item), exc, model=model,
                                      offline=orch.offline)
        if on_result is not None:
            on_result(i, result)
        return result

    tasks = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(items)]
    try:
        # A bug in one job lets the others finish (their answers are paid for, and land in
        # the cache and ledger), then raises with its traceback.
        done = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:  # cancelled (interrupt, close): stop the siblings rather than orphan them
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    results: list[AgentResult] = []
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
        results.append(outcome)
    return results
