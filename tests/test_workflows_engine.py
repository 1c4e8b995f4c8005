"""Running workflows: real SDK over HTTP against FakeAnthropicServer, asserting on what the server saw."""

from __future__ import annotations

import asyncio
import json

import pytest

from claude_force_nb.core.errors import BudgetExceededError, InvalidInputError, WorkflowError
from claude_force_nb.core.options import RunOptions
from claude_force_nb.core.pricing import price_table
from claude_force_nb.core.workflow import Workflow
from claude_force_nb.core.workflow_results import NodeEvent
from claude_force_nb.engine import runner
from claude_force_nb.engine.limits import format_usd, input_token_bound
from claude_force_nb.engine.workflows import UPSTREAM, cached_answers, plan_workflow, run_workflow, worst_case_usd
from claude_force_nb.testing import Fault

# Two branches after `plan`: stats -> check, and risks; `report` needs both.
DAG = """\
task: Why did churn rise in Q3?
plan   = data-analyst: Plan an analysis of: {task}
stats  = python-expert: Write the pandas code for: {plan}
check  = code-reviewer: Check this code: {stats}
risks  = code-reviewer [model=claude-haiku-4-5, max_tokens=MAX]: What could mislead us in: {plan}
report = technical-writer: Write the findings from {check} and {risks}
"""
TOO_MANY = "100000"  # above claude-haiku-4-5's 64,000: the server answers 400, which is never retried


def prompts(server) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in server.requests if r.body]


def test_a_failed_branch_skips_its_dependents_and_the_other_branch_finishes(orch, server) -> None:
    server.latency_s = 0.2  # long enough that the two branches are seen in flight together
    events: list[NodeEvent] = []
    result = orch.run_workflow_sync(Workflow.parse(DAG.replace("MAX", TOO_MANY)), on_event=events.append)

    assert result.states == {"plan": "done", "stats": "done", "check": "done", "risks": "failed",
                             "report": "skipped"}
    assert server.request_count == 4 and server.max_in_flight == 2
    assert result.events["report"].label == "skipped (needs risks)"
    assert result.nodes["report"] is None and not result.ok and result.text == ""
    assert "max_tokens" in (result.nodes["risks"].error or "")
    # the check node got the stats node's answer in its prompt
    assert f"Check this code: {result.nodes['stats'].text}" in prompts(server)
    assert [(e.node, e.state) for e in events if e.node == "check"] == [
        ("check", "pending"), ("check", "running"), ("check", "done")]
    assert "**The final node did not finish.**" in result._repr_markdown_()


def test_a_rerun_after_a_fix_sends_only_the_failed_branch_again(orch, server) -> None:
    orch.run_workflow_sync(Workflow.parse(DAG.replace("MAX", TOO_MANY)))
    server.reset_metrics()

    fixed = orch.run_workflow_sync(Workflow.parse(DAG.replace("MAX", "2000")))

    assert fixed.states == {"plan": "cached", "stats": "cached", "check": "cached", "risks": "done",
                            "report": "done"}
    assert server.request_count == 2
    assert prompts(server)[0] == f"What could mislead us in: {fixed.nodes['plan'].text}"
    assert fixed.ok and fixed.text == fixed.nodes["report"].text
    assert fixed.cost_usd == pytest.approx(fixed.nodes["risks"].cost_usd + fixed.nodes["report"].cost_usd)
    assert [row["state"] for row in fixed.rows()] == ["cached", "cached", "cached", "done", "done"]


def test_run_workflow_is_awaitable_and_independent_nodes_overlap(orch, server) -> None:
    server.latency_s = 0.2
    wf = Workflow.parse("a = data-analyst: A {task}\nb = code-reviewer: B {task}\nc = assistant: {a} {b}")
    result = asyncio.run(orch.run_workflow(wf, "the task", max_tokens=300))  # a cell's own loop
    assert result.ok and server.request_count == 3 and server.max_in_flight == 2
    assert {r.body["max_tokens"] for r in server.requests} == {300}


def test_an_unknown_agent_is_refused_with_suggestions_before_anything_is_sent(orch, server) -> None:
    wf = Workflow.parse("plan = data-analyst: {task}\nstats = pyton-expert: {plan}")
    with pytest.raises(WorkflowError) as info:
        orch.run_workflow_sync(wf, "t")
    assert str(info.value).startswith("Line 2 (node 'stats'): Unknown agent 'pyton-expert'. "
                                      "Did you mean 'python-expert', 'sql-expert'?")
    assert server.request_count == 0


def test_unknown_tools_and_a_missing_task_are_refused_before_sending(orch, server) -> None:
    def describe(name: str) -> str:
        """Describe a variable."""
        return name

    wf = Workflow.parse("a = assistant [tools=describe lookup]: {task}")
    with pytest.raises(WorkflowError) as info:
        orch.run_workflow_sync(wf, "t", tools=[describe])
    assert str(info.value) == ("Line 1 (node 'a'): unknown tool 'lookup' (tools given: describe): pass it in "
                               "tools=[...] to run_workflow, or remove it from the node.")
    with pytest.raises(WorkflowError) as info:
        orch.run_workflow_sync(wf)
    assert str(info.value) == "The workflow uses {task} but has no task: pass task=... or add a `task: ...` line."
    with pytest.raises(InvalidInputError, match="schema= is set per node"):
        orch.run_workflow_sync(wf, "t", schema="a")
    assert server.request_count == 0


def test_the_whole_workflows_worst_case_is_checked_against_the_budget_first(make_orch, server) -> None:
    text = ("task: Summarise the quarter.\n"
            "a = data-analyst [model=claude-haiku-4-5, max_tokens=1000]: Plan {task}\n"
            "b = technical-writer [model=claude-haiku-4-5, max_tokens=500]: Write up {a}\n")
    wf = Workflow.parse(text)
    probe = make_orch()
    plans = plan_workflow(probe, wf, wf.task, None, RunOptions())
    haiku = price_table().prices("claude-haiku-4-5")
    assert haiku is not None
    a_in = input_token_bound(probe.registry.get("data-analyst").system, "Plan Summarise the quarter.")
    b_in = input_token_bound(probe.registry.get("technical-writer").system, f"Write up {UPSTREAM}") + 1000
    top = max(haiku["input"], haiku["cache_write_5m"], haiku["cache_write_1h"])
    expected = float((top * a_in + haiku["output"] * 1000 + top * b_in + haiku["output"] * 500) / 1_000_000)
    assert plans["a"].own_input_tokens == a_in
    assert worst_case_usd(probe, wf, wf.task, plans) == pytest.approx(expected)

    # each call alone would fit; the workflow as a whole does not
    orch = make_orch(budget_usd=round(expected * 0.9, 6))
    with pytest.raises(BudgetExceededError) as info:
        orch.run_workflow_sync(wf)
    assert str(info.value) == (
        f"Budget {format_usd(round(expected * 0.9, 6))} would be exceeded: this workflow of 2 nodes may cost up to "
        f"{format_usd(expected)} and {format_usd(round(expected * 0.9, 6))} is left. Raise it with "
        f"`%agent budget USD` (or Settings.budget_usd), lower the nodes' max_tokens, or use a cheaper model.")
    assert server.request_count == 0
    assert make_orch(budget_usd=round(expected * 1.01, 6)).run_workflow_sync(wf).ok
    assert server.request_count == 2


def test_nodes_the_cache_will_answer_do_not_count_against_the_budget(make_orch, server) -> None:
    wf = Workflow.parse("task: Summarise.\na = data-analyst [max_tokens=1000]: Plan {task}\n"
                        "b = technical-writer [max_tokens=500]: Write up {a}\n")
    first = make_orch().run_workflow_sync(wf)
    orch = make_orch(budget_usd=0.000001)  # far below any uncached call
    plans = plan_workflow(orch, wf, wf.task, None, RunOptions())
    assert cached_answers(orch, wf, wf.task, plans) == {"a": first.nodes["a"].text, "b": first.nodes["b"].text}
    assert worst_case_usd(orch, wf, wf.task, plans, ["a", "b"]) == 0
    again = orch.run_workflow_sync(wf)
    assert set(again.states.values()) == {"cached"} and server.request_count == 2
    edited = Workflow.parse(wf_text := "task: Summarise.\na = data-analyst [max_tokens=1000]: Plan {task}\n"
                            "b = technical-writer [max_tokens=500]: Now write up {a}\n")
    assert worst_case_usd(orch, edited, edited.task, plan_workflow(orch, edited, "Summarise.", None, RunOptions()),
                          ["a"]) > 0
    with pytest.raises(BudgetExceededError, match=r"this workflow of 2 nodes may cost up to"):
        orch.run_workflow_sync(Workflow.parse(wf_text))
    assert server.request_count == 2


def test_cancelling_the_run_stops_every_running_node(orch, server) -> None:
    server.script(Fault(stall_s=30), Fault(stall_s=30))
    wf = Workflow.parse("a = data-analyst: A {task}\nb = code-reviewer: B {task}\nc = assistant: {a} {b}")
    events: list[NodeEvent] = []
    future = runner.submit(run_workflow(orch, wf, "t", on_event=events.append))
    assert server.wait_for(lambda s: s.in_flight == 2)
    future.cancel()
    assert server.wait_for(lambda s: s.in_flight == 0, timeout=3)
    server.release_stalls()
    assert server.wait_for(lambda s: len(events) == 8)  # 3 pending, 2 running, then 3 stopped
    assert server.request_count == 2
    assert [(e.node, e.label, e.detail) for e in events[5:]] == [
        ("a", "failed", "cancelled"), ("b", "failed", "cancelled"), ("c", "skipped (cancelled)", "cancelled")]


def test_a_schema_node_gives_structured_data(orch, server) -> None:
    wf = Workflow.parse('a = data-analyst [schema="title, score float"]: Rate {task}\nb = assistant: Use {a}')
    result = orch.run_workflow_sync(wf, "this")
    assert set(result.nodes["a"].data) == {"title", "score"}
    assert json.loads(result.nodes["a"].text) == result.nodes["a"].data
    assert server.requests[1].body["messages"][-1]["content"] == f"Use {result.nodes['a'].text}"


def test_the_nodes_frame_has_one_row_per_node_with_its_state(orch, server) -> None:
    from claude_force_nb import Workflow as PublicWorkflow
    from claude_force_nb.views.workflows import NODE_COLUMNS, nodes_frame, workflows_frame

    assert PublicWorkflow is Workflow
    result = orch.run_workflow_sync(Workflow.parse(DAG.replace("MAX", TOO_MANY)))
    frame = nodes_frame(result)
    assert list(frame.columns) == NODE_COLUMNS
    assert frame["state"].tolist() == ["done", "done", "done", "failed", "skipped (needs risks)"]
    assert frame["tokens"].tolist() == [r.usage.total_tokens if r else 0 for r in result.nodes.values()]
    assert frame["cost"].iloc[0] == pytest.approx(result.nodes["plan"].cost_usd)
    listing = workflows_frame({"analysis": ["data-analyst", "technical-writer"]})
    assert listing.to_dict("records") == [
        {"workflow": "analysis", "steps": 2, "agents": "data-analyst → technical-writer"}]
