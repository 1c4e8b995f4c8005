"""%%workflow, %%heavy and %agent workflows in an in-process IPython shell against
FakeAnthropicServer (real SDK over HTTP), plus the live view's table on its own."""

from __future__ import annotations

import html
import json

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from claude_force_nb.core.workflow_results import NodeEvent
from claude_force_nb.notebook.workflow_view import NodeTable, status_table_html, status_table_text

from .test_magics import ip  # noqa: F401  (the shell fixture)

DAG = """task: Why did churn rise in Q3?
plan   = data-analyst: Plan an analysis of: {task}
stats  = python-expert: Write the pandas code for: {plan}
risks  = code-reviewer: What could mislead us in: {plan}
report = technical-writer: Write the findings from {stats} and {risks}"""


@pytest.fixture(autouse=True)
def forget_names(ip):
    yield
    for name in ("wf", "h", "again", "summary", "plan"):
        ip.user_ns.pop(name, None)


def run_cell(ip, magic: str, line: str, body: str):
    with capture_output() as cap:
        ip.run_cell_magic(magic, line, body)
    return cap


def tables(cap) -> list[str]:
    """Every version of the status table (the first display, then its updates)."""
    return [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]


def user_texts(server) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in server.requests]


def test_workflow_cell_runs_the_dag_and_shows_table_answer_and_badge(ip, server):
    cap = run_cell(ip, "workflow", "-o wf", DAG)
    wf = ip.user_ns["wf"]
    assert server.request_count == 4 and wf.ok
    assert dict(wf.states) == {"plan": "done", "stats": "done", "risks": "done", "report": "done"}
    assert list(wf.table["node"]) == ["plan", "stats", "risks", "report"]  # -o holds the nodes' DataFrame
    assert list(wf.table["state"]) == ["done"] * 4 and wf.table["cost"].sum() == pytest.approx(wf.cost_usd)
    table = tables(cap)[-1]
    for node in ("plan", "stats", "risks", "report"):
        assert f"<td style='padding: 2px 8px;'>{node}</td>" in table
    final = cap.outputs[-1]
    md = final.data["text/markdown"]
    assert md.startswith(wf.text) and "workflow · 4 done · $" in md
    assert final.metadata["claude_force_nb"]["agent"] == "technical-writer"


def test_rerun_is_served_from_the_cache_and_says_so(ip, server):
    run_cell(ip, "workflow", "", DAG)
    cap = run_cell(ip, "workflow", "-o wf", DAG)
    assert server.request_count == 4
    assert set(ip.user_ns["wf"].states.values()) == {"cached"}
    assert "4 cached" in cap.outputs[-1].data["text/markdown"]


def test_notebook_variables_are_filled_but_task_and_node_names_are_not(ip, server):
    ip.user_ns["summary"] = "churn 4.1% -> 5.3%"
    ip.user_ns["plan"] = "A NOTEBOOK VARIABLE THAT MUST NOT BE USED"
    run_cell(ip, "workflow", "", "task: Why? Data: {summary}\n"
                                 "plan = data-analyst: Plan: {task}\n"
                                 "report = technical-writer: Report on {plan}")
    first, second = user_texts(server)
    assert first == "Plan: Why? Data: churn 4.1% -> 5.3%"
    assert "NOTEBOOK VARIABLE" not in second and second.startswith("Report on **Offline answer**")


def test_a_failed_branch_skips_its_dependents_in_the_table(ip, server):
    text = DAG.replace("What could mislead us in: {plan}", "What could mislead us in: {plan} [[fake:error=400]]")
    cap = run_cell(ip, "workflow", "-o wf", text)
    wf = ip.user_ns["wf"]
    assert wf.states["risks"] == "failed" and wf.states["report"].startswith("skipped")
    assert wf.states["stats"] == "done" and not wf.ok
    table = tables(cap)[-1]
    assert ">failed" in table and ">skipped (needs risks)" in table
    md = cap.outputs[-1].data["text/markdown"]
    assert md.startswith("**The final node did not run.**\n- **risks** failed: ")  # with the API's error
    assert "\n- **report** skipped (needs risks)\n" in md


def test_unknown_agent_is_one_line_and_nothing_is_sent(ip, server):
    with pytest.raises(UsageError, match="code-reviwer"):
        run_cell(ip, "workflow", "", "task: x\nr = code-reviwer: look at {task}")
    assert server.request_count == 0


def test_a_cycle_is_refused_before_anything_is_shown(ip, server):
    with capture_output() as cap, pytest.raises(UsageError, match="cycle"):
        ip.run_cell_magic("workflow", "", "a = assistant: {b}\nb = assistant: {a}")
    assert cap.outputs == [] and server.request_count == 0


def write_claude_json(tmp_path, workflows):
    claude = tmp_path / "project" / ".claude"
    claude.mkdir(parents=True, exist_ok=True)
    (claude / "claude.json").write_text(json.dumps({"agents": {}, "workflows": workflows}))


def test_named_claude_json_workflow_runs_as_a_chain_with_the_cell_as_task(ip, server, tmp_path):
    write_claude_json(tmp_path, {"review": ["code-reviewer", "technical-writer"]})
    ip.user_ns["summary"] = "def f(): pass"
    run_cell(ip, "workflow", "review -o wf", "Review {summary}")
    assert server.request_count == 2 and ip.user_ns["wf"].ok
    assert "def f(): pass" in user_texts(server)[0]
    frame = ip.run_line_magic("agent", "workflows")
    assert list(frame["workflow"]) == ["review"]
    with pytest.raises(UsageError, match="No workflow named 'reveiw'"):
        run_cell(ip, "workflow", "reveiw", "x")


def test_heavy_cell_plans_answers_and_synthesises(ip, server):
    cap = run_cell(ip, "heavy", "-n 4 -o h", "Should we move our ETL to DuckDB?")
    h = ip.user_ns["h"]
    assert server.request_count == 6 and h.ok
    shown = tables(cap)
    assert len(shown) >= 2 and shown[-1].count("<tr") == 1 + 6  # header + plan, four answers, synthesis
    assert "workflow heavy · 6 done · $" in cap.outputs[-1].data["text/markdown"]


def test_heavy_refuses_a_bad_n_in_one_line(ip, server):
    with pytest.raises(UsageError, match="2"):
        run_cell(ip, "heavy", "-n 1", "Q?")
    assert server.request_count == 0


# -- the table on its own ---------------------------------------------------------------------

def test_table_rows_follow_events_and_escape_names():
    table = NodeTable([("a<b", "assistant", "claude-haiku-4-5"), ("c", "assistant", "claude-haiku-4-5")])
    table.apply(NodeEvent("a<b", "assistant", "claude-haiku-4-5", "running"))
    table.apply(NodeEvent("a<b", "assistant", "claude-haiku-4-5", "done", 1200, 0.0021, 1.5))
    table.apply(NodeEvent("c", "assistant", "claude-haiku-4-5", "skipped", detail="needs a<b"))
    html = status_table_html(table.rows())
    assert "a&lt;b" in html and "a<b" not in html.replace("a&lt;b", "")
    assert "1,200" in html and "$0.0021" in html and "1.50 s" in html and "skipped (needs a&lt;b)" in html
    assert status_table_text(table.rows()).splitlines()[1].startswith("a<b | assistant | claude-haiku-4-5 | done")
    table.apply(NodeEvent("c", "assistant", "claude-haiku-4-5", "running"))
    table.stop_unfinished()
    assert [r.state for r in table.rows()] == ["done", "cancelled"]
    assert status_table_text(table.rows()).splitlines()[2] == "c | assistant | claude-haiku-4-5 | cancelled |  |  | "


def test_budget_refuses_the_whole_workflow_before_the_first_call(ip, server):
    ip.run_line_magic("agent", "budget 0.001")
    with capture_output() as cap, pytest.raises(UsageError, match=r"\$") as refused:
        ip.run_cell_magic("workflow", "", DAG)
    assert server.request_count == 0 and "\n" not in str(refused.value)
    table = tables(cap)[-1]  # the table says why nothing ran
    assert html.escape(str(refused.value)) in table and table.count(">not sent<") == 4


def test_an_unused_node_is_a_warning_and_the_workflow_still_runs(ip, server):
    with pytest.warns(UserWarning, match="Node 'extra' is not used") as caught:
        run_cell(ip, "workflow", "-o wf", DAG + "\nextra = assistant: Also: {task}\nfinal: report")
    assert len(caught) == 1 and server.request_count == 5 and ip.user_ns["wf"].ok


def test_no_cache_sends_every_node_again(ip, server):
    run_cell(ip, "workflow", "", DAG)
    run_cell(ip, "workflow", "--no-cache -o wf", DAG)
    assert server.request_count == 8 and set(ip.user_ns["wf"].states.values()) == {"done"}
