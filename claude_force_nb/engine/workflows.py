"""Running a Workflow on an Orchestrator: every node an ordinary call, each as soon as its inputs are done.

Before anything is sent, every node is prepared as a call would be (agent looked up, options
and tools checked, request built), so an unknown agent or tool refuses the whole workflow in
one line; with a budget set, the worst case of the whole workflow is checked too (every node
at its max_tokens, an upstream answer counted as its max_tokens of input; nodes the cache
will answer are free, so a re-run after a failure is not refused for what it re-uses). Then each node is
a task that waits for its inputs: a node whose input failed or was skipped is ``skipped (needs
X)``, independent branches go on. A node is an ordinary ``Orchestrator`` call, so it is cached
and ledgered like one, and a re-run re-uses every unchanged finished node for free.
Cancelling the run cancels every running node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..core.agents import AgentDefinition
from ..core.errors import BudgetExceededError, ClaudeForceError, InvalidInputError, WorkflowError
from ..core.options import RunOptions
from ..core.tools import ToolSet
from ..core.workflow import Workflow
from ..core.workflow_results import FINISHED, NodeEvent, WorkflowResult
from . import outcomes
from .limits import format_usd, input_token_bound

if TYPE_CHECKING:  # pragma: no cover
    from .orchestrator import Orchestrator

__all__ = ["UPSTREAM", "EventCallback", "NodePlan", "cached_answers", "plan_workflow", "run_workflow", "worst_case_usd"]

EventCallback = Callable[[NodeEvent], Any]
_NOT_COMMON = ("tools", "schema", "thread", "cell_id", "notebook")
UPSTREAM = "…"  # an upstream answer while a node is prepared (its real length is bounded by max_tokens)


@dataclass(frozen=True)
class NodePlan:
    """A node ready to run: its agent, its options (defaults filled in) and tools."""

    agent: AgentDefinition
    options: RunOptions
    model: str
    max_tokens: int
    own_input_tokens: int  # the most input tokens of its request without its inputs' answers


def _node_tools(names: tuple[str, ...], given: ToolSet | None, where: str) -> ToolSet | None:
    if not names:
        return None
    available = dict(given or {})
    missing = [n for n in names if n not in available]
    if missing:
        offered = ", ".join(sorted(available)) or "none were passed"
        raise WorkflowError(f"{where}: unknown tool {missing[0]!r} (tools given: {offered}): pass it in "
                            f"tools=[...] to run_workflow, or remove it from the node.")
    return ToolSet([available[n] for n in names])


def plan_workflow(orch: Orchestrator, wf: Workflow, task: str | None, tools: Iterable[Any] | None,
                  common: RunOptions) -> dict[str, NodePlan]:
    """Every node prepared as its call would be; raises WorkflowError naming the node, before any call."""
    if task is None and any(wf.uses_task(n) for n in wf.names):
        raise WorkflowError("The workflow uses {task} but has no task: pass task=... or add a `task: ...` line.")
    given = RunOptions(tools=tools).tools  # type: ignore[arg-type]  # a list is made a ToolSet
    plans: dict[str, NodePlan] = {}
    for node in wf.nodes:
        where = node.where
        try:
            agent = orch.registry.get(node.agent)
            options = replace(common, model=node.model or common.model,
                              max_tokens=node.max_tokens or common.max_tokens,
                              temperature=node.temperature if node.temperature is not None else common.temperature,
                              tools=_node_tools(node.tools, given, where), schema=node.schema)
            options = RunOptions(**options.as_kwargs())  # checks the node's schema spec
            call = orch._prepare(agent, wf.render(node.name, task, dict.fromkeys(wf.names, UPSTREAM)), options)
        except WorkflowError:
            raise
        except ClaudeForceError as exc:
            raise WorkflowError(f"{where}: {exc}") from None
        plans[node.name] = NodePlan(agent, options, call.model, call.max_tokens, input_token_bound(*call.input_texts))
    return plans


def cached_answers(orch: Orchestrator, wf: Workflow, task: str | None, plans: Mapping[str, NodePlan]) -> dict[str, str]:
    """The nodes a run would answer from the cache, with their answers: a node whose inputs are
    all known has its exact request, so one cache read tells (tool loops are not predicted)."""
    known: dict[str, str] = {}
    for name in wf.order():
        options = plans[name].options
        if options.tools or not options.use_cache or options.refresh or any(u not in known for u in wf.inputs[name]):
            continue
        call = orch._prepare(plans[name].agent, wf.render(name, task, known), options)
        hit = orch.cache.get(orch.cache.key_for(call.body), defer_writes=True)
        if hit is not None and hit.stop_reason != "tool_use":
            known[name] = hit.text
    return known


def worst_case_usd(orch: Orchestrator, wf: Workflow, task: str | None, plans: Mapping[str, NodePlan],
                   cached: Iterable[str] = ()) -> float | None:
    """The most the whole workflow can cost: each node at max_tokens out, every byte of its own
    text an input token, each upstream answer as many input tokens as that node's max_tokens;
    ``cached`` nodes are free. None when a node's model has no price."""
    total = 0.0
    free = set(cached)
    for node in wf.nodes:
        if node.name in free:
            continue
        plan = plans[node.name]
        upstream = sum(plans[u].max_tokens * node.prompt.count(f"{{{u}}}") for u in wf.inputs[node.name])
        cost = orch.prices.worst_case(plan.model, plan.own_input_tokens + upstream, plan.max_tokens)
        if cost is None:
            return None
        total += cost
    return total


def _check_ceiling(orch: Orchestrator, wf: Workflow, task: str | None, plans: Mapping[str, NodePlan]) -> None:
    budget = orch.budget
    if budget.budget_usd is None:
        return
    worst = worst_case_usd(orch, wf, task, plans, cached_answers(orch, wf, task, plans))
    if worst is None:
        unpriced = sorted({p.model for p in plans.values() if orch.prices.prices(p.model) is None})
        raise BudgetExceededError(
            f"A budget of {format_usd(budget.budget_usd)} is set but {', '.join(map(repr, unpriced))} has no "
            f"price, so the workflow cannot be checked: add it to prices.json or unset the budget.")
    left = max(0.0, budget.budget_usd - budget.spent_usd - budget.reserved_usd)
    if worst > left + 1e-12:
        raise BudgetExceededError(
            f"Budget {format_usd(budget.budget_usd)} would be exceeded: this workflow of {len(wf.nodes)} nodes may "
            f"cost up to {format_usd(worst)} and {format_usd(left)} is left. Raise it with `%agent budget USD` "
            f"(or Settings.budget_usd), lower the nodes' max_tokens, or use a cheaper model.")


async def run_workflow(orch: Orchestrator, wf: Workflow, task: str | None = None, *,
                       on_event: EventCallback | None = None, tools: Iterable[Any] | None = None,
                       **options: Any) -> WorkflowResult:
    """Run ``wf`` (on the runner loop); see the module docstring. ``options``: defaults for
    every node (model, max_tokens, temperature, use_cache, refresh, stream, system)."""
    if not isinstance(wf, Workflow):
        raise InvalidInputError(f"run_workflow needs a Workflow, not {type(wf).__name__}: "
                                f"build one with Workflow.parse(text).")
    if refused := sorted(set(options) & set(_NOT_COMMON)):
        raise InvalidInputError(f"{refused[0]}= is set per node in a workflow, not for the whole run.")
    task = task if task is not None else wf.task
    plans = plan_workflow(orch, wf, task, tools, RunOptions.from_kwargs(**options))
    _check_ceiling(orch, wf, task, plans)
    result = WorkflowResult(wf, task)

    def emit(event: NodeEvent) -> None:
        result.events[event.node] = event
        if on_event is not None:
            on_event(event)

    for name, plan in plans.items():
        emit(NodeEvent(name, plan.agent.name, plan.model, "pending"))

    async def run_node(name: str) -> None:
        plan, inputs = plans[name], wf.inputs[name]
        if inputs:
            await asyncio.wait([tasks[u] for u in inputs])
        if blocked := [u for u in inputs if result.events[u].state not in FINISHED]:
            emit(NodeEvent(name, plan.agent.name, plan.model, "skipped", detail=f"needs {', '.join(blocked)}"))
            return
        prompt = wf.render(name, task, {u: result.events[u].result.text for u in inputs})  # type: ignore[union-attr]
        emit(NodeEvent(name, plan.agent.name, plan.model, "running"))
        try:
            answer = await orch._run(plan.agent, prompt, plan.options, None)
        except ClaudeForceError as exc:  # refused at send time (budget, key): the node fails, others go on
            answer = outcomes.refused(plan.agent.name, exc, model=plan.model, offline=orch.offline)
        emit(NodeEvent.finished(name, answer))

    tasks = {name: asyncio.ensure_future(run_node(name)) for name in wf.order()}
    try:
        await asyncio.gather(*tasks.values())
    except BaseException as exc:  # cancelled (Stop, interrupt) or a bug in on_event: stop every node
        for t in tasks.values():
            t.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for event in list(result.events.values()):
            if event.state in ("pending", "running"):
                stopped = replace(event, state="failed" if event.state == "running" else "skipped", detail="cancelled")
                if isinstance(exc, asyncio.CancelledError):
                    emit(stopped)
                else:  # the callback itself failed: do not call it again
                    result.events[event.node] = stopped
        raise
    return result
