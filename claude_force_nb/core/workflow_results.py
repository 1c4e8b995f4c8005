"""What a workflow run reports: one NodeEvent per state change, and the WorkflowResult at the end."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Literal

from .results import AgentResult, format_cost
from .workflow import Workflow

__all__ = ["FINISHED", "NodeEvent", "NodeState", "WorkflowResult"]

NodeState = Literal["pending", "running", "cached", "done", "failed", "skipped"]
FINISHED = ("cached", "done")  # the states whose answer downstream nodes can use


@dataclass(frozen=True)
class NodeEvent:
    """A node changed state. ``detail``: why it was skipped ("needs risks") or how it failed."""

    node: str
    agent: str
    model: str
    state: NodeState
    tokens: int = 0
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    detail: str | None = None
    result: AgentResult | None = None

    @property
    def label(self) -> str:
        """The state as a status table shows it: ``skipped (needs risks)``."""
        return f"{self.state} ({self.detail})" if self.state == "skipped" and self.detail else self.state

    @classmethod
    def finished(cls, node: str, result: AgentResult) -> NodeEvent:
        """The event of a node whose call came back (from the cache, the API, or refused)."""
        state: NodeState = "failed" if not result.ok else "cached" if result.cached else "done"
        return cls(node, result.agent, result.model, state, result.usage.total_tokens, result.cost_usd,
                   result.latency_s, detail=result.error, result=result)


@dataclass
class WorkflowResult:
    """Every node's AgentResult (None: never ran), each node's last event, and the final answer."""

    workflow: Workflow
    task: str | None
    events: dict[str, NodeEvent] = field(default_factory=dict)  # node -> its latest event
    table: Any = None  # the nodes as a DataFrame, once the notebook has shown them (views.workflows.nodes_frame)

    @property
    def nodes(self) -> dict[str, AgentResult | None]:
        return {name: self.events[name].result if name in self.events else None for name in self.workflow.names}

    @property
    def states(self) -> dict[str, str]:
        return {name: self.events[name].state if name in self.events else "pending" for name in self.workflow.names}

    @property
    def final(self) -> AgentResult | None:
        return self.nodes[self.workflow.final or ""]

    @property
    def text(self) -> str:
        """The final node's answer ("" when it did not finish)."""
        final = self.final
        return final.text if final is not None and final.ok else ""

    @property
    def ok(self) -> bool:
        return all(state in FINISHED for state in self.states.values())

    @property
    def cost_usd(self) -> float | None:
        """What the run cost (cache hits are free); None when a node's model has no price."""
        costs = [r.cost_usd for r in self.nodes.values() if r is not None]
        return None if any(c is None for c in costs) else float(sum(c or 0.0 for c in costs))

    @property
    def saved_usd(self) -> float:
        return float(sum(r.saved_usd for r in self.nodes.values() if r is not None))

    def rows(self) -> list[dict[str, Any]]:
        """One row per node, in the workflow's order: node, agent, model, state, tokens, cost, latency."""
        out = []
        for node in self.workflow.nodes:
            event = self.events.get(node.name)
            out.append({
                "node": node.name,
                "agent": node.agent,
                "model": event.model if event else (node.model or ""),
                "state": event.label if event else "pending",
                "tokens": event.tokens if event else 0,
                "cost": event.cost_usd if event else 0.0,
                "latency": event.latency_s if event else 0.0,
            })
        return out

    def summary(self) -> str:
        """One line: how many nodes finished, failed and were skipped, cost and cache savings."""
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        parts = [f"{n} {state}" for state, n in counts.items()]
        parts.append(format_cost(self.cost_usd))
        if self.saved_usd:
            parts.append(f"saved {format_cost(self.saved_usd)}")
        return " · ".join([f"workflow {self.workflow.name or ''}".rstrip(), *parts])

    def _repr_markdown_(self) -> str:
        if self.text:
            body = self.text
        else:
            problems = [f"- **{e.node}**: {e.label}" + (f" — {e.detail}" if e.state == "failed" else "")
                        for e in self.events.values() if e.state in ("failed", "skipped")]
            body = "**The final node did not finish.**\n\n" + "\n".join(problems)
        return f"{body}\n\n---\n<sub>{html.escape(self.summary())}</sub>\n"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<WorkflowResult {self.summary()}>"
