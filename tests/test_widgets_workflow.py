"""WorkflowApp, driven headless against FakeAnthropicServer, and in a real kernel through
comm messages as a frontend drives it."""

from __future__ import annotations

import concurrent.futures

import pytest

from claude_force_nb.notebook import widgets

from .test_widgets_kernel import Frontend, is_update, markdown_of
from .widget_support import TIMEOUT, markdown, open_app  # noqa: F401  (open_app is a fixture)

DAG = """task: Why did churn rise in Q3?
plan   = data-analyst: Plan an analysis of: {task}
stats  = python-expert: Write the pandas code for: {plan}
risks  = code-reviewer: What could mislead us in: {plan}RISKS
report = technical-writer: Write the findings from {stats} and {risks}"""


def dag(directive: str = "") -> str:
    return DAG.replace("RISKS", directive)


@pytest.fixture
def app(orch, open_app):
    return open_app(widgets.WorkflowApp, orch)


def test_run_fills_the_table_and_a_selected_node_shows_its_answer(app, server):
    app.source.value = dag()
    app.run_button.click()
    result = app.future.result(TIMEOUT)
    assert result is app.result and result.ok and server.request_count == 4
    assert app.nodes.options == ("plan", "stats", "risks", "report")
    assert app.table.value.count(">done<") == 4
    assert "workflow · 4 done · $" in app.status.value and not app.run_button.disabled and app.cancel_button.disabled
    app.nodes.value = "risks"
    (shown,) = app.answer.outputs
    assert markdown(shown).startswith(result.nodes["risks"].text)
    assert "background: #eef4ff" in app.table.value  # the selected row is highlighted


def test_failed_branch_is_shown_and_a_skipped_node_says_what_it_needs(app, server):
    app.source.value = dag(" [[fake:error=400]]")
    result = app.run().result(TIMEOUT)
    assert not result.ok and server.request_count == 3
    assert ">failed<" in app.table.value and ">skipped (needs risks)<" in app.table.value
    app.nodes.value = "report"
    assert markdown(app.answer.outputs[0]) == "*report: skipped (needs risks)*"
    app.nodes.value = "risks"
    assert "failed" in markdown(app.answer.outputs[0])


def test_stop_cancels_every_running_node(app, server):
    app.source.value = dag(" [[fake:sleep=30]]")
    future = app.run()
    # plan and stats answered and shown as done (not merely answered: then the stop would catch
    # stats while its answer is being recorded), risks held by the server
    assert server.wait_for(lambda s: s.request_count == 3 and s.in_flight == 1
                           and app.table.value.count(">done<") == 2, timeout=TIMEOUT)
    assert app.running and not app.cancel_button.disabled
    app.cancel_button.click()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(TIMEOUT)
    assert server.wait_for(lambda s: s.disconnects == 1, timeout=5)
    assert app.table.value.count(">cancelled<") == 2 and "Stopped" in app.status.value  # risks and report
    assert not app.run_button.disabled and app.cancel_button.disabled
    app.source.value = dag()  # the re-run uses the finished nodes from the cache
    result = app.run().result(TIMEOUT)
    assert result.states["plan"] == "cached" and result.states["stats"] == "cached"
    assert server.request_count == 5


def test_problems_are_one_status_line_and_nothing_is_sent(app, server):
    assert app.run().result(TIMEOUT) is None
    assert "Write a workflow first" in app.status.value
    app.source.value = "a = assistant: {b}\nb = assistant: {a}"
    assert app.run().result(TIMEOUT) is None
    assert "cycle" in app.status.value
    app.source.value = "a = asistant: {task}"
    app.run()
    assert "asistant" in app.status.value and server.request_count == 0


# -- in a real kernel -----------------------------------------------------------------------

@pytest.mark.kernel
def test_workflow_app_runs_from_comm_messages(kernel, server):
    reply = kernel.run(f"app = %agent workflow-ui\napp.source.value = {dag()!r}\napp")
    assert reply.ok
    ui = Frontend(kernel, reply.of_type("comm_open"))
    (table,) = [cid for cid, state in ui.models.items() if str(state.get("value")).startswith("<table")]
    ui.click(ui.find("ButtonModel", description="Run"))
    ui.wait(is_update(table, "value", lambda html: html.count(">done<") == 4), timeout=30)
    assert len(ui.updates(table, "value")) >= 5  # redrawn as the nodes ran
    select = ui.find("SelectModel")
    ui.send(select, {"method": "update", "state": {"index": 1}, "buffer_paths": []})  # the user clicks "stats"
    answer = ui.find("OutputModel")
    ui.wait(is_update(answer, "outputs", lambda outs: "Offline answer" in markdown_of(outs)), timeout=10)
    check = kernel.run("print(app.nodes.value, app.result.ok, app.answer.outputs[0]['data']['text/markdown']"
                       ".startswith(app.result.nodes['stats'].text))")
    assert check.stdout == "stats True True\n"
    assert server.request_count == 4


def test_budget_refusal_is_the_status_line_and_no_node_is_sent(app, server):
    app.orchestrator.configure(budget_usd=0.001)
    app.source.value = dag()
    assert app.run().result(TIMEOUT) is None
    assert "Budget $0.001 would be exceeded" in app.status.value and server.request_count == 0
    assert app.table.value.count(">not sent<") == 4 and not app.run_button.disabled
