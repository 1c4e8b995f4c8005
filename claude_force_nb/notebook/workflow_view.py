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
from typing import Any

from IPython.display import DisplayHandle, display

from ..core.results import AgentResult, format_cost
from .display import BADGE_STYLE, provenance, result_bundle

__all__ = ["NodeRow", "NodeTable", "WorkflowView", "run_badge_html", "run_summary", "status_table_html"]

COLUMNS = ("node", "agent", "model", "state", "tokens", "cost", "latency")
STATE_COLOURS = {"pending": "#888", "running": "#06c", "cached": "#0a7", "done": "#0a7", "failed": "#b00",
                 "skipped": "#a60", "cancelled": "#a60"}
UNFINISHED = ("pending", "running")


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
        tokens = "" if self.tokens is None else f"{self.tokens:,}"
        cost = "" if self.cost is None or self.state in UNFINISHED else format_cost(self.cost)
        latency = "" if self.latency is None or self.state in UNFINISHED else f"{self.latency:.2f} s"
        return self.node, self.agent, self.model, state, tokens, cost, latency


def _attr(event: Any, *names: str) -> Any:
    """The first of ``names`` the event has (NodeEvent field names, tolerant of spelling)."""
    for name in names:
        if (value := getattr(event, name, None)) is not None:
            return value
    return None


class NodeTable:
    """The rows of a run, in the order nodes were first seen; thread-safe."""

    def __init__(self, nodes: Iterable[tuple[str, str, str]] = ()) -> None:
        self._rows: dict[str, NodeRow] = {name: NodeRow(name, agent, model) for name, agent, model in nodes}
        self._lock = threading.Lock()

    def apply(self, event: Any) -> NodeRow:
        """Record a NodeEvent (node, agent, model, state, tokens, cost, latency, detail)."""
        name = str(event.node)
        with self._lock:
            row = self._rows.setdefault(name, NodeRow(name))
            row.agent = _attr(event, "agent") or row.agent
            row.model = _attr(event, "model") or row.model
            state = str(_attr(event, "state") or row.state)
            row.state, _, detail = state.partition(" (")
            row.detail = detail.rstrip(")") or str(_attr(event, "detail", "reason", "error") or "")
            row.tokens = _attr(event, "tokens", "total_tokens")
            row.cost = _attr(event, "cost", "cost_usd")
            row.latency = _attr(event, "latency", "latency_s")
            return NodeRow(**vars(row))

    def settle(self, name: str, state: str, result: AgentResult | None) -> None:
        """A node's final state and figures, as the WorkflowResult has them."""
        with self._lock:
            row = self._rows.setdefault(name, NodeRow(name))
            row.state, _, detail = state.partition(" (")
            row.detail = detail.rstrip(")")
            if result is not None:
                row.agent, row.model = result.agent, result.model
                row.tokens, row.cost, row.latency = result.usage.total_tokens, result.cost_usd, result.latency_s

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


def run_summary(states: dict[str, str], results: Iterable[AgentResult | None], seconds: float | None = None) -> str:
    """One line for a whole run: node states, tokens, cost (and what the cache saved), time."""
    counts: dict[str, int] = {}
    for state in states.values():
        key = str(state).partition(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    finished = [r for r in results if r is not None]
    tokens = sum(r.usage.total_tokens for r in finished)
    costs = [r.cost_usd for r in finished]
    cost = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
    saved = sum(r.saved_usd for r in finished)
    parts = [f"workflow · {len(states)} nodes: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
             f"{tokens:,} tokens", format_cost(cost) + (f" (saved {format_cost(saved)})" if saved else "")]
    if seconds is not None:
        parts.append(f"in {seconds:.2f} s")
    return " · ".join(parts)


def run_badge_html(summary: str, ok: bool) -> str:
    colour = "#666" if ok else "#b00"
    return f'<div style="{BADGE_STYLE} color: {colour};">{html.escape(summary)}</div>'


def _final_result(result: Any) -> AgentResult | None:
    """The final node's AgentResult of a WorkflowResult, if it ran."""
    final = getattr(result, "final", None)
    if isinstance(final, AgentResult):
        return final
    nodes = getattr(result, "nodes", {}) or {}
    name = getattr(result, "final_node", None) or (list(nodes)[-1] if nodes else None)
    value = nodes.get(name) if name is not None else None
    return value if isinstance(value, AgentResult) else None


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

    def on_event(self, event: Any) -> None:
        """A node changed state: redraw the table."""
        self.table.apply(event)
        with self._lock:
            if not self._done:
                self.handle.update(self._bundle(), raw=True)

    def _final_table(self, note: str = "") -> None:
        with self._lock:
            self._done = True
            self.handle.update(self._bundle(note), raw=True)

    def finish(self, result: Any, seconds: float | None = None) -> None:
        """The final table, then the final node's answer and the run's badge (a new output)."""
        for name, state in result.states.items():  # the result is the truth
            self.table.settle(name, str(state), result.nodes.get(name))
        self._final_table()
        summary = run_summary(result.states, result.nodes.values(), seconds)
        final = _final_result(result)
        ok = bool(result.ok)
        if final is not None:
            bundle = result_bundle(final)
            bundle["text/markdown"] += "\n\n" + run_badge_html(summary, ok)
            bundle["text/plain"] += f"\n-- {summary}"
            display(bundle, raw=True, metadata=provenance(final))
        else:
            display({"text/markdown": f"**The final node did not run.**\n\n{run_badge_html(summary, ok)}",
                     "text/plain": f"The final node did not run.\n-- {summary}"}, raw=True)

    def fail(self, message: str) -> None:
        """The run stopped (interrupt, refused before sending): unfinished nodes are marked."""
        self.table.stop_unfinished()
        self._final_table(message)
