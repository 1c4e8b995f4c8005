"""WorkflowMagics: ``%%workflow`` (a DAG of agents in one cell) and ``%%heavy`` (one
question, N perspectives, one answer).

Both show the same live view (workflow_view.py): a status table that fills in as nodes
run, then the final answer and the run's badge. The run blocks the cell through the
notebook-safe runner, so the kernel's Stop (an interrupt) cancels every running node.
The orchestrator and settings are those of the AgentMagics instance they are loaded with.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..core.errors import ClaudeForceError
from .arguments import friendly, parse, text_for_agent, variable_name
from .interpolate import interpolate
from .workflow_view import WorkflowView

if TYPE_CHECKING:  # pragma: no cover
    from ..core.workflow import Workflow
    from ..engine.orchestrator import Orchestrator
    from .magics import AgentMagics

__all__ = ["WorkflowMagics", "fill_workflow", "workflow_nodes"]

INTERRUPTED = "Interrupted: every running node was cancelled; finished nodes are cached for a re-run."


def fill_workflow(workflow: Workflow, fill: Callable[[str], str]) -> Workflow:
    """``workflow`` with ``fill`` applied to its task and to every node's prompt.

    Notebook variables are filled in after parsing, prompt by prompt, so a value with
    several lines (a DataFrame's text, say) stays inside its prompt.
    """
    from ..core.workflow import Workflow

    nodes = tuple(replace(node, prompt=fill(node.prompt)) for node in workflow.nodes)
    task = fill(workflow.task) if workflow.task is not None else None
    return Workflow(nodes, task=task, final=workflow.final, name=workflow.name)


def workflow_nodes(workflow: Any, orch: Orchestrator) -> list[tuple[str, str, str]]:
    """(node, agent, model) of every node, in the workflow's order; each agent is looked up
    first, so an unknown one is refused (with suggestions) before anything is shown."""
    from ..core.options import RunOptions

    rows = []
    for node in workflow.nodes:
        definition = orch.registry.get(node.agent)
        model = RunOptions(model=node.model).resolve(definition, orch.settings).model
        rows.append((node.name, node.agent, model or ""))
    return rows


@magics_class
class WorkflowMagics(Magics):
    """Run many agents on one question from a cell: %%workflow and %%heavy."""

    def __init__(self, shell: Any, agent_magics: AgentMagics) -> None:
        super().__init__(shell=shell)
        self.agent_magics = agent_magics

    @property
    def orchestrator(self) -> Orchestrator:
        return self.agent_magics.orchestrator

    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    # -- %%workflow ------------------------------------------------------------------------

    @magic_arguments()
    @argument("name", nargs="?", help="A workflow of .claude/claude.json (`%agent workflows`); the cell is its task.")
    @argument("-o", "--out", metavar="VAR", help="Store the WorkflowResult in this variable.")
    @argument("--no-cache", action="store_true", help="Neither read nor write the response cache.")
    @argument("--no-interpolate", action="store_true", help="Leave {names} of notebook variables unfilled.")
    @cell_magic
    @friendly
    def workflow(self, line: str, cell: str) -> None:
        """Run a DAG of agents written in the cell; nodes run as soon as their inputs are ready.

        Each line ``name = agent [options]: prompt`` is a node; ``{task}`` and ``{node}``
        refer to the task and to upstream answers (those references are the edges); any
        other ``{name}`` is filled from the notebook first. A failed node skips the nodes
        that need it; finished nodes are cached, so a re-run only sends what changed or failed.
        Example::

            %%workflow -o wf
            task: Why did churn rise in Q3? Data: {summary}
            plan   = data-analyst: Plan an analysis of: {task}
            stats  = python-expert [model=claude-haiku-4-5]: Write the pandas code for: {plan}
            risks  = code-reviewer: What could mislead us in: {plan}
            report = technical-writer: Write the findings from {stats} and {risks}

        With NAME, the claude.json workflow of that name runs as a chain, the cell as its task.
        """
        from ..core.workflow import TASK, Workflow

        args = parse(self.workflow.parser, line)
        variable_name(args.out)
        orch = self.orchestrator
        text = text_for_agent(cell, "The cell").strip("\n")
        task: str | None = None
        if args.name:
            workflow = Workflow.chain(args.name, _defined_agents(args.name, orch))
            task = self._fill(text, set(), args.no_interpolate)
            title = f"workflow {args.name}"
        else:
            with warnings.catch_warnings():  # its warnings are shown once, for the filled-in workflow
                warnings.simplefilter("ignore")
                raw = Workflow.parse(text)
            keep = {TASK, *raw.names}
            workflow = fill_workflow(raw, lambda prompt: self._fill(prompt, keep, args.no_interpolate))
            title = "workflow"
        view = WorkflowView(workflow_nodes(workflow, orch), title)
        self._run(view, lambda on_event: orch.run_workflow_sync(
            workflow, task, on_event=on_event, use_cache=not args.no_cache), args.out)

    def _fill(self, text: str, keep: set[str], raw: bool) -> str:
        """``text`` with notebook variables filled in, except the names in ``keep``."""
        if raw or not self.agent_magics.interpolate:
            return text
        namespace = {k: v for k, v in self._namespace().items() if k not in keep}
        return interpolate(text, namespace)

    def _run(self, view: WorkflowView, start: Callable[[Callable[[Any], None]], Any], out: str | None) -> Any:
        """Run (blocking) with the view's live table; the final answer and badge, then ``-o``."""
        t0 = time.monotonic()
        try:
            result = start(view.on_event)
        except ClaudeForceError as exc:  # refused before the first call (budget, key...)
            view.fail(str(exc), "not sent")
            raise
        except KeyboardInterrupt:
            view.fail(INTERRUPTED)
            raise
        view.finish(result, time.monotonic() - t0)
        if out:
            from ..views.workflows import nodes_frame

            result.table = nodes_frame(result)  # -o holds the nodes' table too
            self._namespace()[out] = result
        return result

    # -- %%heavy ---------------------------------------------------------------------------

    @magic_arguments()
    @argument("-n", type=int, default=4, help="How many sub-questions and agents (2 to 16).")
    @argument("-a", "--agent", default="assistant", help="The agent answering each sub-question.")
    @argument("--synth", metavar="AGENT", help="The agent merging the answers (default: the -a agent).")
    @argument("-m", "--model", help="Model id for every call, e.g. claude-haiku-4-5.")
    @argument("-o", "--out", metavar="VAR", help="Store the WorkflowResult in this variable.")
    @argument("--no-interpolate", action="store_true", help="Send {braces} exactly as written.")
    @cell_magic
    @friendly
    def heavy(self, line: str, cell: str) -> None:
        """One question, N perspectives, one answer: a planning call splits the cell's question
        into N sub-questions, N agents answer them concurrently, a synthesis merges the answers
        (saying which part came from where). Same live table, caching and Stop as %%workflow.
        Example::

            %%heavy -n 4 -a data-analyst -o h
            Should we move our nightly ETL from pandas to DuckDB?
        """
        from ..engine.heavy import heavy_workflow  # checks -n, and names the nodes the table starts with

        args = parse(self.heavy.parser, line)
        variable_name(args.out)
        orch = self.orchestrator
        question = self._fill(text_for_agent(cell, "The cell").strip("\n"), set(), args.no_interpolate)
        generated = heavy_workflow(args.n, agent=args.agent, synth_agent=args.synth, model=args.model)
        view = WorkflowView(workflow_nodes(generated, orch), f"heavy · {args.n} × {args.agent}")
        self._run(view, lambda on_event: orch.run_heavy_sync(
            question, n=args.n, agent=args.agent, synth_agent=args.synth, model=args.model, on_event=on_event),
            args.out)


def _defined_agents(name: str, orch: Orchestrator) -> list[str]:
    """The agents of the claude.json workflow ``name``; one line naming the defined ones if none is."""
    from ..core.errors import WorkflowError

    defined = orch.registry.workflows()
    if name not in defined:
        known = ", ".join(sorted(defined)) or 'none (add "workflows" to .claude/claude.json)'
        raise WorkflowError(f"No workflow named {name!r}: defined ones are {known} (`%agent workflows`).")
    return defined[name]
