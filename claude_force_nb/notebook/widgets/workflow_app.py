"""WorkflowApp: write a workflow, Run; its nodes' states update in a table, select a node
to read its answer, Stop cancels every running node."""

from __future__ import annotations

import concurrent.futures
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...core.errors import ClaudeForceError
from ...core.results import AgentResult
from ..display import result_bundle
from ..workflow_view import NodeTable, run_summary, status_table_html
from ._base import App, finished, output

if TYPE_CHECKING:  # pragma: no cover
    from ...core.workflow_results import NodeEvent
    from ...engine.orchestrator import Orchestrator

__all__ = ["WorkflowApp"]

EXAMPLE = """task: Why did churn rise in Q3?
plan   = data-analyst: Plan an analysis of: {task}
stats  = python-expert: Write the pandas code for: {plan}
risks  = code-reviewer: What could mislead us in: {plan}
report = technical-writer: Write the findings from {stats} and {risks}"""
NO_WORKFLOW = "Write a workflow first (`name = agent: prompt` lines): nothing was sent."


class WorkflowApp(App):
    """A workflow's nodes with their states in a table that updates as they run; select a
    node (``nodes``) to see its answer in ``answer``; ``cancel_button`` (Stop) cancels
    every running node.

    ``run()`` returns a Future resolving to the WorkflowResult (None when nothing was
    sent), also kept in ``result``.
    """

    def __init__(self, orchestrator: Orchestrator | None = None, text: str = "") -> None:
        super().__init__(orchestrator)
        self.result: Any = None
        self._table = NodeTable()
        self._answers: dict[str, AgentResult] = {}  # finished nodes' results, as they arrive
        self.source = W.Textarea(value=text, placeholder=EXAMPLE, layout=W.Layout(width="100%", height="9em"))
        self.use_cache = W.Checkbox(value=True, description="Use cache", indent=False)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play", tooltip="Run the workflow")
        self.cancel_button = W.Button(description="Stop", icon="stop", disabled=True,
                                      tooltip="Cancel every running node")
        self.status = W.HTML()
        self.table = W.HTML(status_table_html([]))
        self.nodes = W.Select(options=[], description="Node", rows=6, layout=W.Layout(width="22em"))
        self.answer = W.Output(layout=W.Layout(border="1px solid #ddd", padding="0.25em 0.75em", min_height="2.5em",
                                               flex="1 1 auto"))
        self.root = W.VBox([
            self.source,
            W.HBox([self.run_button, self.cancel_button, self.use_cache, self.status],
                   layout=W.Layout(align_items="center")),
            self.table,
            W.HBox([self.nodes, self.answer]),
        ])
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.nodes.observe(lambda _change: self._show_answer(), names="value")

    # -- running ----------------------------------------------------------------------------

    def _parse(self) -> Any:
        """The Workflow in ``source``, with every agent checked (raises ClaudeForceError with the fix)."""
        from ...core.workflow import Workflow
        from ..workflow_magics import workflow_nodes

        if not self.source.value.strip():
            raise ClaudeForceError(NO_WORKFLOW)
        workflow = Workflow.parse(self.source.value)
        return workflow, workflow_nodes(workflow, self.orchestrator)

    def run(self) -> concurrent.futures.Future[Any]:
        """Check the workflow, start it in the background, return at once."""
        if (busy := self._busy("A workflow")) is not None:
            return busy
        try:
            workflow, nodes = self._parse()
        except ClaudeForceError as exc:
            self._say(str(exc), "warn")
            return finished(None)
        self._table = NodeTable(nodes)
        self._answers = {}
        self.result = None
        self.nodes.options = [name for name, _agent, _model in nodes]
        self._redraw()
        self._set_running(True)
        self._say(f"Running {len(nodes)} nodes…")
        use_cache = bool(self.use_cache.value)
        return self._start(lambda: self._work(workflow, use_cache), self._cancelled)

    def _on_event(self, event: NodeEvent) -> None:
        """A node changed state (runner thread): redraw the table, and its answer if it is selected."""
        row = self._table.apply(event)
        if event.result is not None:
            self._answers[row.node] = event.result
        self._redraw()
        counts = self._table.counts()
        self._say(" · ".join(f"{n} {state}" for state, n in counts.items()))
        if row.node == self.nodes.value:
            self._show_answer()

    async def _work(self, workflow: Any, use_cache: bool) -> Any:
        import time

        t0 = time.monotonic()
        try:
            result = await self.orchestrator.run_workflow(workflow, on_event=self._on_event, use_cache=use_cache)
        except ClaudeForceError as exc:  # e.g. the budget refused the whole workflow before sending
            self._table.stop_unfinished("not sent")
            self._redraw()
            self._refused(exc)
            return None
        except Exception as exc:
            self._bug(exc)
            raise
        self.result = result
        self._answers.update({name: r for name, r in result.nodes.items() if r is not None})
        self._redraw()
        self._say(run_summary(result, time.monotonic() - t0),
                  "ok" if result.ok else "error")
        self._set_running(False)
        self._show_answer()
        return result

    def _cancelled(self) -> None:
        self._table.stop_unfinished()
        self._redraw()
        self._say("Stopped: every running node was cancelled; finished nodes are cached for a re-run.", "warn")
        self._set_running(False)

    # -- showing ----------------------------------------------------------------------------

    def _redraw(self) -> None:
        self.table.value = status_table_html(self._table.rows(), selected=self.nodes.value)

    def _show_answer(self) -> None:
        """The selected node's answer (or its state, while it has none)."""
        name = self.nodes.value
        if name is None:
            self.answer.outputs = ()
            return
        self._redraw()
        result = self._answers.get(name)
        if result is not None:
            self.answer.outputs = (output(result_bundle(result)),)
            return
        row = next((r for r in self._table.rows() if r.node == name), None)
        state = row.state + (f" ({row.detail})" if row.detail else "") if row else "unknown"
        self.answer.outputs = (output({"text/markdown": f"*{html.escape(name)}: {html.escape(state)}*",
                                       "text/plain": f"{name}: {state}"}),)
