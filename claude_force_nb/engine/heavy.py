"""Heavy mode: one question, N perspectives, one answer, as a generated Workflow.

``plan`` (structured output: a list of sub-questions) -> ``part1`` .. ``partN`` (concurrent;
each sees the whole plan and answers its own number, so the parts do not overlap) ->
``answer`` (merges the parts, citing them as [1]..[N]). Being a Workflow run by the same
engine, it has the same states, events, caching, cost ceiling and partial-failure rules:
a failed part skips only the synthesis, and a re-run pays only for what did not finish.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidInputError
from ..core.options import RunOptions
from ..core.workflow import Node, Workflow
from ..core.workflow_results import WorkflowResult
from .workflows import EventCallback, run_workflow

if TYPE_CHECKING:  # pragma: no cover
    from .orchestrator import Orchestrator

__all__ = ["HEAVY_SCHEMA", "HeavyResult", "heavy_workflow", "run_heavy"]

MIN_PARTS, MAX_PARTS = 2, 16
HEAVY_SCHEMA = {
    "type": "object",
    "properties": {"questions": {"type": "array", "items": {"type": "string"},
                                 "description": "The distinct sub-questions, in the order they should be answered."}},
    "required": ["questions"],
}


class HeavyResult(WorkflowResult):
    """A heavy run: the workflow's result plus its sub-questions and each part's answer."""

    @property
    def questions(self) -> list[str]:
        """The planner's sub-questions ([] when the plan did not finish)."""
        plan = self.nodes["plan"]
        data = plan.data if plan is not None and plan.ok else None
        return list(data.get("questions", [])) if isinstance(data, dict) else []

    @property
    def answers(self) -> dict[str, str | None]:
        """``part1``.. -> its answer (None when it did not finish)."""
        return {name: (r.text if r is not None and r.ok else None)
                for name, r in self.nodes.items() if name.startswith("part")}


def heavy_workflow(n: int, *, agent: str = "assistant", synth_agent: str | None = None,
                   model: str | None = None, tools: tuple[str, ...] = ()) -> Workflow:
    """The generated workflow of a heavy run with ``n`` parts (2 to 16)."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_PARTS <= n <= MAX_PARTS:
        raise InvalidInputError(f"n={n!r} is out of range: heavy mode asks {MIN_PARTS} to {MAX_PARTS} agents, "
                                f"e.g. n=4.")
    plan = Node("plan", agent, (
        f"Split the question below into exactly {n} distinct sub-questions that together cover it, each "
        f"answerable on its own by a different expert. Answer with the list only.\n\nQuestion: {{task}}"),
        model=model, schema=HEAVY_SCHEMA)
    parts = [Node(f"part{i}", agent, (
        f"The question: {{task}}\n\nIt was split into these sub-questions (JSON):\n{{plan}}\n\n"
        f"Answer sub-question number {i} only, thoroughly; if there is no number {i}, answer the part of "
        f"the question the others leave out."), model=model, tools=tools) for i in range(1, n + 1)]
    merged = "\n\n".join(f"## Part [{i}]\n{{part{i}}}" for i in range(1, n + 1))
    answer = Node("answer", synth_agent or agent, (
        f"The question: {{task}}\n\n{n} experts each answered one part of it. Merge their answers into one "
        f"complete answer; after each point, cite the part(s) it comes from as [1]..[{n}], and say where they "
        f"disagree.\n\n{merged}"), model=model)
    return Workflow((plan, *parts, answer), final="answer", name="heavy")


async def run_heavy(orch: Orchestrator, question: str, *, n: int = 4, agent: str = "assistant",
                    synth_agent: str | None = None, model: str | None = None,
                    on_event: EventCallback | None = None, tools: Iterable[Any] | None = None,
                    **options: Any) -> HeavyResult:
    """Run heavy mode on ``question`` (see the module docstring); ``tools`` go to every part."""
    given = RunOptions(tools=tools).tools  # type: ignore[arg-type]  # a list (or one function) as a ToolSet
    wf = heavy_workflow(n, agent=agent, synth_agent=synth_agent, model=model, tools=tuple(given or ()))
    result = await run_workflow(orch, wf, question, on_event=on_event, tools=given, **options)
    return HeavyResult(result.workflow, result.task, result.events)
