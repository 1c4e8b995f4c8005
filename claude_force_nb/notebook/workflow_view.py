"""The live view of a workflow run: a status table that fills in as nodes change state,
then the final node's answer and the whole run's badge.

Node events arrive on the runner thread, so the table is redrawn only through a display
handle (``update``), never printed. The same table markup serves the workflow widget.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from IPython.display import DisplayHandle, display

from ..core.results import format_cost
from .display import BADGE_STYLE, provenance, result_bundle

if TYPE_CHECKING:  # pragma: no cover
    from ..core.workflow_results import NodeEvent, WorkflowResult

__all__ = ["NodeRow", "NodeTable", "WorkflowView", "run_badge_html", "run_summary", "status_table_html"]

COLUMNS = ("node", "agent", "model", "state", "tokens", "cost", "latency")
STATE_COLOURS = {"pending": "#888", "not sent": "#888", "running": "#06c", "cached": "#0a7", "done": "#0a7",
                 "failed": "#b00", "skipped": "#a60", "cancelled": "#a60"}
UNFINISHED = ("pending", "running")
NO_FIGURES = (*UNFINISHED, "skipped", "cancelled", "not sent")  # states with no tokens, cost or latency to show


@dataclass
class NodeRow:
    """What the table shows for one node (filled in from its latest event)."""

    node: str
    agent: str = ""
    model: str = ""
    state: str = "pending"
    detail: str = ""  # e.g. "needs plan" for a skipped node, the error of a failed one
    tokens: int | None = None
    cost: float | None = None
    latency: float | None = None

    def cells(self) -> tuple[str, ...]:
        state = f"{self.state} ({self.detail})" if self.detail else self.state
        tokens = "" if self.tokens is None or self.state in NO_FIGURES else f"{self.tokens:,}"
        cost = "" if self.cost is None or self.state in NO_FIGURES else format_cost(self.cost)
        latency = "" if self.latency is None or self.state in NO_FIGURES else f"{self.latency:.2f} s"
        return self.node, self.agent, self.model, state, tokens, cost, latency


class NodeTable:
    """The rows of a run, in the order nodes were first seen; thread-safe."""

    def __init__(self, nodes: Iterable[tuple[str, str, str]] = ()) -> None:
        self._rows: dict[str, NodeRow] = {name: NodeRow(name, agent, model) for name, agent, model in nodes}
        self._lock = threading.Lock()

    def apply(self, event: NodeEvent) -> NodeRow:
        """Record a node's new state; a copy of its row."""
        with self._lock:
            row = self._rows.setdefault(event.node, NodeRow(event.node))
            row.agent, row.model = event.agent, event.model
            # A stopped run reports its running nodes failed and its pending ones skipped, both
            # with detail "cancelled": the table says "cancelled", which is what happened.
            row.state = "cancelled" if event.detail == "cancelled" else event.state
            row.detail = event.detail or "" if row.state == "skipped" else ""
            row.tokens, row.cost, row.latency = event.tokens, event.cost_usd, event.latency_s
            return NodeRow(**vars(row))

    def stop_unfinished(self, state: str = "cancelled") -> None:
        """Mark every pending or running node (an interrupted run)."""
        with self._lock:
            for row in self._rows.values():
                if row.state in UNFINISHED:
                    row.state, row.detail = state, ""

    def rows(self) -> list[NodeRow]:
        with self._lock:
            return [NodeRow(**vars(row)) for row in self._rows.values()]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows():
            counts[row.state] = counts.get(row.state, 0) + 1
        return counts


def status_table_html(rows: Iterable[NodeRow], selected: str | None = None) -> str:
    """The status table (escaped), one coloured state per row; ``selected`` is highlighted."""
    head = "".join(f"<th style='text-align: left; padding: 2px 8px;'>{c}</th>" for c in COLUMNS)
    body = []
    for row in rows:
        cells = [html.escape(c) for c in row.cells()]
        cells[3] = f"<span style='color: {STATE_COLOURS.get(row.state, '#666')};'>{cells[3]}</span>"
        shade = " style='background: #eef4ff;'" if row.node == selected else ""
        body.append(f"<tr{shade}>" + "".join(f"<td style='padding: 2px 8px;'>{c}</td>" for c in cells) + "</tr>")
    return f"<table class='claude-force-workflow'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def status_table_text(rows: Iterable[NodeRow]) -> str:
    """The same table as plain text (for frontends without HTML, and for logs)."""
    lines = [" | ".join(COLUMNS)]
    lines += [" | ".join(row.cells()) for row in rows]
    return "\n".join(lines)


def run_summary(result: WorkflowResult, seconds: float | None = None) -> str:
    """One line for a whole run: the result's summary (states, cost, savings), its tokens and time."""
    tokens = sum(r.usage.total_tokens for r in result.nodes.values() if r is not None)
    timing = f" · in {seconds:.2f} s" if seconds is not None else ""
    return f"{result.summary()} · {tokens:,} tokens{timing}"


def run_badge_html(summary: str, ok: bool) -> str:
    colour = "#666" if ok else "#b00"
    return f'<div style="{BADGE_STYLE} color: {colour};">{html.escape(summary)}</div>'


class WorkflowView:
    """A cell's live workflow status: a table (display handle) updated on every node
    event, then the final answer with the run's badge below it.

    ``on_event`` may be called from the runner thread; nothing drawn after ``finish`` or
    ``fail`` can replace what they drew.
    """

    def __init__(self, nodes: Iterable[tuple[str, str, str]] = (), title: str = "") -> None:
        self.table = NodeTable(nodes)
        self.title = title
        self._lock = threading.Lock()
        self._done = False
        self.handle: DisplayHandle = display(self._bundle(), raw=True, display_id=True)

    def _bundle(self, note: str = "") -> dict[str, str]:
        rows = self.table.rows()
        title = f"<div style='font-weight: bold;'>{html.escape(self.title)}</div>" if self.title else ""
        tail = f"<div style='{BADGE_STYLE}'>{html.escape(note)}</div>" if note else ""
        return {"text/html": title + status_table_html(rows) + tail, "text/plain": status_table_text(rows)}

    def on_event(self, event: NodeEvent) -> None:
        """A node changed state: redraw the table."""
        self.table.apply(event)
        with self._lock:
            if not self._done:
                self.handle.update(self._bundle(), raw=True)

    def _final_table(self, note: str = "") -> None:
        with self._lock:
            self._done = True
            self.handle.update(self._bundle(note), raw=True)

    def finish(self, result: WorkflowResult, seconds: float | None = None) -> None:
        """The final table, then the final node's answer and the run's badge (a new output)."""
        for event in result.events.values():  # the result is the truth
            self.table.apply(event)
        self._final_table()
        summary = run_summary(result, seconds)
        final, ok = result.final, result.ok
        if final is not None:
            bundle = result_bundle(final)
            bundle["text/markdown"] += "\n\n" + run_badge_html(summary, ok)
            bundle["text/plain"] += f"\n-- {summary}"
            display(bundle, raw=True, metadata=provenance(final))
        else:
            why = [(e.node, e.label + (f": {e.detail}" if e.state == "failed" and e.detail else ""))
                   for e in result.events.values() if e.state in ("failed", "skipped")]
            listed = "".join(f"\n- **{html.escape(node)}** {html.escape(label)}" for node, label in why)
            display({"text/markdown": f"**The final node did not run.**{listed}\n\n{run_badge_html(summary, ok)}",
                     "text/plain": "The final node did not run." + "".join(f"\n- {n} {w}" for n, w in why)
                     + f"\n-- {summary}"}, raw=True)

    def fail(self, message: str, unfinished: str = "cancelled") -> None:
        """The run stopped (an interrupt; ``unfinished="not sent"`` when it was refused before
        the first call): nodes still pending or running are marked so, and ``message`` is shown."""
        self.table.stop_unfinished(unfinished)
        self._final_table(message)
