"""The ipywidgets apps, driven headless (no kernel) against FakeAnthropicServer.

ipywidgets 8 creates widgets without a kernel (they get a DummyComm), so the apps are
driven exactly as a user would: set ``.value``, ``button.click()``, wait on the Future.
"""

from __future__ import annotations

import concurrent.futures
import html
import sqlite3
import sys

import ipywidgets as W
import pandas as pd
import pytest

from claude_force_nb.notebook import widgets
from claude_force_nb.views import plots, reports
from claude_force_nb.notebook.display import badge_html
from claude_force_nb.views.compare import comparison_frame
from claude_force_nb.core.results import format_cost

TIMEOUT = 15


def markdown(output: dict) -> str:
    return output["data"]["text/markdown"]


def sent_task(request) -> str:
    return request.body["messages"][0]["content"]


@pytest.fixture
def apps():
    made: list = []
    yield made
    for app in made:
        app.close()


@pytest.fixture
def console(orch, apps):
    app = widgets.AgentConsole(orch)
    apps.append(app)
    return app


# --------------------------------------------------------------------------- all apps

def test_every_app_builds_headless_and_displays_as_its_root(orch, apps):
    for cls in (widgets.AgentConsole, widgets.CompareView, widgets.CacheBrowser, widgets.CostDashboard):
        app = cls(orch)
        apps.append(app)
        assert isinstance(app.root, W.Box)
        bundle = app._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == app.root.model_id


def test_close_closes_every_widget_and_cancels_the_run_in_flight(orch, server):
    app = widgets.AgentConsole(orch)
    made = list(app._widgets())
    assert len(made) > 20 and all(w.comm is not None for w in made)  # layouts and styles included
    app.task.value = "Slow one [[fake:sleep=30]]"
    future = app.run()
    assert server.wait_for(lambda s: s.in_flight == 1)
    app.close()
    assert server.wait_for(lambda s: s.disconnects == 1)
    concurrent.futures.wait([future], timeout=TIMEOUT)
    assert future.cancelled()
    assert all(w.comm is None for w in made)


# --------------------------------------------------------------------------- AgentConsole

def test_console_offers_registry_agents_and_priced_models(orch, console):
    assert list(console.agent.options) == orch.registry.names()
    assert console.agent.value == "assistant"
    assert console.model.value == orch.settings.default_model
    assert {"claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"} <= set(console.model.options)
    assert console.max_tokens.value == orch.settings.max_tokens
    assert "General-purpose assistant" in console.agent_info.value
    assert console.cancel_button.disabled and not console.run_button.disabled


def test_choosing_an_agent_shows_its_description_and_defaults(tmp_path, make_orch, apps):
    agents = tmp_path / "project" / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "quick.md").write_text(
        "---\ndescription: Answers <fast> & short\nmodel: haiku\nmax_tokens: 300\n---\nBe brief.\n"
    )
    app = widgets.AgentConsole(make_orch())
    apps.append(app)
    app.agent.value = "quick"
    assert "Answers &lt;fast&gt; &amp; short" in app.agent_info.value
    assert app.agent.tooltip == "Answers <fast> & short"
    assert (app.model.value, app.max_tokens.value) == ("claude-haiku-4-5", 300)


def test_run_sends_the_task_verbatim_and_shows_answer_badge_and_cost(console, server):
    task = "Explain {this} p-value\n  keep the indent\n"
    console.task.value = task
    console.model.value = "claude-haiku-4-5"
    console.max_tokens.value = 500
    console.run_button.click()
    result = console.future.result(TIMEOUT)
    assert result is console.last_result and console.results == [result] and result.ok
    (request,) = server.requests
    assert sent_task(request) == task
    assert request.body["model"] == "claude-haiku-4-5" and request.body["max_tokens"] == 500
    (final,) = console.answer.outputs
    assert markdown(final).startswith(result.text)
    assert html.escape(result.footer()) in markdown(final) and "▌" not in markdown(final)
    assert final["metadata"]["claude_force_nb"]["cost_usd"] == result.cost_usd
    assert console.status.value == badge_html(result)
    assert format_cost(result.cost_usd) in console.status.value and result.cost_usd > 0
    assert not console.run_button.disabled and console.cancel_button.disabled


def test_rerun_is_a_cache_hit_and_session_total_sums_the_runs(console, server):
    for task in ("First question", "Second question", "First question"):
        console.task.value = task
        console.run_button.click()
        console.future.result(TIMEOUT)
    first, second, again = console.results
    assert server.request_count == 2 and again.cached and again.cost_usd == 0
    assert "cached (saved $" in console.status.value
    assert console.session_cost == first.cost_usd + second.cost_usd
    assert console.session_saved == again.saved_usd == first.cost_usd
    expected = f"3 runs · spent {format_cost(first.cost_usd + second.cost_usd)} · saved {format_cost(first.cost_usd)}"
    assert expected in console.session_total.value


def test_use_cache_off_sends_again(console, server):
    console.task.value = "Same question"
    console.run().result(TIMEOUT)
    console.use_cache.value = False
    second = console.run().result(TIMEOUT)
    assert server.request_count == 2 and not second.cached


def test_answer_streams_in_with_a_cursor_then_the_badge(console, server):
    server.chunk_delay_s = 0.05
    seen: list[tuple] = []
    console.answer.observe(lambda change: seen.append(change.new), names="outputs")
    console.task.value = "Stream this answer to me please"
    result = console.run().result(TIMEOUT)
    texts = [markdown(outputs[0]) for outputs in seen if outputs]
    partial = [t for t in texts if t.endswith(" ▌")]
    assert len(partial) >= 2
    assert all(result.text.startswith(t[: -len(" ▌")]) for t in partial)
    assert texts[-1] == markdown(console.answer.outputs[0]) and result.footer().split(" · ")[0] in texts[-1]


def test_empty_task_sends_nothing_and_says_so(console, server):
    console.task.value = "  \n\t"
    console.run_button.click()
    assert console.future is None
    assert console.run().result(0) is None
    assert server.request_count == 0 and "Type a task first" in console.status.value
    assert console.results == [] and not console.run_button.disabled


def test_a_refused_call_shows_the_reason_in_the_status(console, server):
    console.task.value = "Hello"
    console.model.value = "not a model!"
    assert console.run().result(TIMEOUT) is None
    assert server.request_count == 0 and "Malformed model id" in console.status.value
    assert console.results == [] and not console.run_button.disabled


def test_an_api_error_is_one_line_in_the_status_and_counted(console, server):
    console.task.value = "Fail please [[fake:error=400]]"
    result = console.run().result(TIMEOUT)
    assert not result.ok and console.results == [result]
    assert console.status.value.startswith('<span style="color: #b00;">Error: API error 400')
    assert "failed:" in markdown(console.answer.outputs[0])


def test_buttons_while_running_and_cancel_stops_the_request(console, server):
    console.task.value = "Take your time [[fake:sleep=30]]"
    console.run_button.click()
    future = console.future
    assert console.run_button.disabled and not console.cancel_button.disabled and console.running
    assert server.wait_for(lambda s: s.in_flight == 1)
    assert console.run() is future and "in progress" in console.status.value  # no second request
    console.cancel_button.click()
    assert server.wait_for(lambda s: s.disconnects == 1)
    concurrent.futures.wait([future], timeout=TIMEOUT)
    assert future.cancelled() and server.request_count == 1
    # the bookkeeping was done before the future resolved
    assert "Cancelled" in console.status.value and "Cancelled" in markdown(console.answer.outputs[0])
    assert not console.run_button.disabled and console.cancel_button.disabled and console.results == []
    console.task.value = "And now a quick one"
    assert console.run().result(TIMEOUT).ok


def test_cancel_with_nothing_running_is_harmless(console):
    assert console.cancel() is False


# --------------------------------------------------------------------------- CompareView

AGENTS = ("assistant", "data-analyst", "python-expert")
MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6")


@pytest.fixture
def compare(orch, apps):
    app = widgets.CompareView(orch)
    apps.append(app)
    return app


def test_compare_runs_every_agent_model_pair(compare, server):
    compare.agents.value = AGENTS
    compare.models.value = MODELS
    compare.task.value = "Median or mean for skewed latency?"
    compare.run_button.click()
    frame = compare.future.result(TIMEOUT)
    assert server.request_count == len(AGENTS) * len(MODELS)
    assert all(sent_task(r) == "Median or mean for skewed latency?" for r in server.requests)
    assert list(zip(frame["agent"], frame["model"])) == [(a, m) for a in AGENTS for m in MODELS]
    assert frame is compare.frame
    pd.testing.assert_frame_equal(frame, comparison_frame(compare.results))
    assert frame["cost_usd"].gt(0).all() and not frame["cached"].any()
    assert compare.answers.value.count("<div style='font-weight: bold'>") == 6
    table = compare.table.outputs[0]["data"]["text/html"]
    assert table.count("</tr>") == 7  # header + 6 rows
    assert "6 runs · spent" in compare.status.value and "0 failed" in compare.status.value
    assert not compare.run_button.disabled


def test_compare_without_models_uses_each_agents_default(compare, server):
    compare.agents.value = ("assistant",)
    compare.models.value = ()
    compare.task.value = "Hi"
    frame = compare.run().result(TIMEOUT)
    assert server.request_count == 1 and list(frame["model"]) == [compare.orchestrator.settings.default_model]


def test_compare_validates_before_sending(compare, server):
    compare.task.value = "Something"
    assert compare.run().result(0) is None and "Select at least one agent" in compare.status.value
    compare.agents.value = ("assistant",)
    compare.task.value = ""
    assert compare.run().result(0) is None and "Type a task first" in compare.status.value
    assert server.request_count == 0


def test_compare_cancel_stops_every_request(compare, server):
    compare.agents.value = ("assistant", "python-expert")
    compare.models.value = ("claude-haiku-4-5",)
    compare.task.value = "Slow [[fake:sleep=30]]"
    future = compare.run()
    assert server.wait_for(lambda s: s.in_flight == 2)
    compare.cancel_button.click()
    assert server.wait_for(lambda s: s.disconnects == 2)
    concurrent.futures.wait([future], timeout=TIMEOUT)
    assert future.cancelled() and "Cancelled" in compare.status.value and not compare.run_button.disabled


def test_export_puts_the_frame_in_the_namespace(compare):
    namespace: dict = {}
    compare.namespace = namespace
    compare.export_button.click()
    assert namespace == {} and "Run a comparison first" in compare.status.value
    compare.agents.value = ("assistant",)
    compare.task.value = "Export me"
    frame = compare.run().result(TIMEOUT)
    compare.export_name.value = "not valid"
    assert compare.export() is False and namespace == {}
    compare.export_name.value = "cmp"
    compare.export_button.click()
    assert namespace["cmp"] is frame and "Saved the table as `cmp` (1 rows)" in compare.status.value


def test_export_goes_to_the_ipython_user_namespace(compare, monkeypatch):
    import IPython

    shell = type("Shell", (), {"user_ns": {}})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    compare.frame = frame = pd.DataFrame({"a": [1]})
    compare.export_button.click()
    assert shell.user_ns == {"comparison": frame}
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert compare.export() is False and "No IPython session" in compare.status.value


# --------------------------------------------------------------------------- CacheBrowser

@pytest.fixture
def filled(orch):
    orch.run_many_sync([
        ("assistant", "What is a p-value?", {"model": "claude-haiku-4-5"}),
        ("sql-expert", "Index for a join on customer_id", {"model": "claude-haiku-4-5"}),
        ("assistant", "Explain bootstrapping", {"model": "claude-sonnet-4-6"}),
    ])
    return orch


def test_browser_lists_filters_and_previews(filled, apps):
    browser = widgets.CacheBrowser(filled)
    apps.append(browser)
    assert "<b>3</b> entries" in browser.header.value and "<b>0</b> integrity failures" in browser.header.value
    assert list(browser.agent_filter.options) == [widgets.ALL, "assistant", "sql-expert"]
    assert list(browser.model_filter.options) == [widgets.ALL, "claude-haiku-4-5", "claude-sonnet-4-6"]
    assert len(browser.selector.options) == 3 and browser.selected_key is None and browser.delete_button.disabled
    browser.agent_filter.value = "assistant"
    assert len(browser.selector.options) == 2
    browser.search.value = "BOOTSTRAP"
    ((label, key),) = browser.selector.options
    entries = filled.cache.entries()
    assert "Explain bootstrapping" in label and key == entries.index[entries["task"] == "Explain bootstrapping"][0]
    assert "1 of 3 entries" in browser.table.outputs[0]["data"]["text/html"]
    browser.selector.value = key
    preview = browser.preview.outputs[0]["data"]["text/plain"]
    assert "Task: Explain bootstrapping" in preview and "Model: claude-sonnet-4-6" in preview
    assert "Answer: **Offline answer** from `claude-sonnet-4-6`" in preview and "Expires: 20" in preview
    assert not browser.delete_button.disabled


def test_browser_delete_removes_the_selected_entry(filled, apps):
    browser = widgets.CacheBrowser(filled)
    apps.append(browser)
    victim = browser.selector.options[1][1]
    browser.selector.value = victim
    browser.delete_button.click()
    assert filled.cache.stats()["entries"] == 2 and victim not in filled.cache.entries().index
    assert "<b>2</b> entries" in browser.header.value and len(browser.selector.options) == 2
    assert "Deleted entry" in browser.status.value and browser.selected_key is None
    assert browser.delete() is False and "Select an entry first" in browser.status.value


def test_browser_verify_counts_bad_signatures(filled, apps):
    browser = widgets.CacheBrowser(filled)
    apps.append(browser)
    browser.verify_button.click()
    assert browser.future.result(TIMEOUT) == []
    assert "Verified: 0 bad entries." in browser.status.value and not browser.verify_button.disabled
    key = filled.cache.entries().index[0]
    with sqlite3.connect(filled.cache.path) as conn:
        conn.execute("UPDATE entries SET payload = CAST(? AS BLOB) WHERE key = ?", ('{"tampered": true}', key))
    conn.close()
    assert browser.verify().result(TIMEOUT) == [key]
    assert f"1 bad entries: {key[:15]}" in browser.status.value


# --------------------------------------------------------------------------- CostDashboard

def test_dashboard_totals_match_the_costs_total_row(filled, apps):
    filled.run_sync("assistant", "What is a p-value?", model="claude-haiku-4-5")  # a cache hit
    dashboard = widgets.CostDashboard(filled)
    apps.append(dashboard)
    total = reports.costs(ledger=filled.ledger).loc[reports.TOTAL]
    assert dashboard.totals == {
        "cost_usd": total["cost_usd"], "saved_usd": total["saved_usd"], "calls": 4, "cached_calls": 1,
        "hit_rate": 0.25, "unpriced": 0,
    }
    value = dashboard.totals_html.value
    assert f"Spent <b>${total['cost_usd']:,.4f}</b>" in value and f"saved <b>${total['saved_usd']:,.4f}</b>" in value
    assert "<b>4</b> calls" in value and "hit rate <b>25.0%</b>" in value
    assert list(dashboard.costs.index) == ["assistant", "sql-expert", reports.TOTAL]
    dashboard.by.value = "model"
    assert list(dashboard.costs.index) == ["claude-haiku-4-5", "claude-sonnet-4-6", reports.TOTAL]
    table = dashboard.table.outputs[0]["data"]["text/html"]
    assert "claude-sonnet-4-6" in table and "font-weight: bold" in table
    dashboard.by.value = "day"
    assert dashboard.costs.index.name == "day" and len(dashboard.costs) == 2
    assert dashboard.plot.outputs[0]["data"]["image/png"].startswith("iVBORw0KGgo")  # base64 of a PNG


def test_dashboard_refresh_picks_up_new_calls(orch, apps):
    dashboard = widgets.CostDashboard(orch)
    apps.append(dashboard)
    assert dashboard.totals["calls"] == 0 and "Spent <b>$0.0000</b>" in dashboard.totals_html.value
    orch.run_sync("assistant", "Count me")
    dashboard.refresh_button.click()
    assert dashboard.totals["calls"] == 1 and dashboard.totals["cost_usd"] > 0


def test_dashboard_without_matplotlib_says_how_to_get_charts(orch, apps, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    dashboard = widgets.CostDashboard(orch)
    apps.append(dashboard)
    assert dashboard.plot.outputs == (
        {"output_type": "display_data", "data": {"text/plain": "pip install 'claude-force-nb[plot]' for charts"},
         "metadata": {}},
    )


# --------------------------------------------------------------------------- plots

def runs_frame() -> pd.DataFrame:
    """Four days, two models, one cache hit and one failure; the columns reports.runs() has."""
    ts = pd.to_datetime(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-02 09:00", "2026-01-03 09:00",
                         "2026-01-03 10:00", "2026-01-04 10:00"], utc=True)
    return pd.DataFrame({
        "ts": ts,
        "model": pd.Categorical(["haiku", "sonnet", "haiku", "sonnet", "sonnet", "haiku"]),
        "cached": [False, False, False, False, True, False],
        "ok": [True, True, True, True, True, False],
        "cost_usd": [0.25, 1.0, 0.5, 2.0, 0.0, 0.0],
        "latency_s": [1.0, 2.0, 1.5, 3.0, 0.01, 0.5],
    })


def test_cost_by_day_stacks_one_series_per_model():
    fig = plots.plot_cost_by_day(runs_frame())
    (ax,) = fig.axes
    haiku, sonnet = ax.containers
    assert [p.get_height() for p in haiku] == [0.25, 0.5, 0.0, 0.0]
    assert [p.get_height() for p in sonnet] == [1.0, 0.0, 2.0, 0.0]
    assert [p.get_y() for p in sonnet] == [0.25, 0.5, 0.0, 0.0]  # stacked on haiku
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["haiku", "sonnet"]
    assert plots.figure_png(fig).startswith(b"\x89PNG")


def test_latency_histogram_has_one_series_per_model_of_successful_api_calls():
    fig = plots.plot_latency(runs_frame())
    (ax,) = fig.axes
    assert len(ax.containers) == 2
    counts = [sum(p.get_height() for p in c) for c in ax.containers]
    assert counts == [2, 2]  # the cache hit and the failure are left out


def test_plots_draw_on_a_given_axes_and_handle_no_data():
    fig = plots.new_figure()
    left, right = fig.subplots(1, 2)
    assert plots.plot_cost_by_day(runs_frame().iloc[:0], ax=left) is fig
    assert plots.plot_latency(runs_frame().iloc[:0], ax=right) is fig
    assert left.containers == [] and left.texts[0].get_text() == "No API calls yet"


def test_plots_without_matplotlib_raise_an_import_error_with_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'claude-force-nb\[plot\]'") as info:
        plots.plot_cost_by_day(runs_frame())
    assert isinstance(info.value, plots.MissingPlotDependency)
