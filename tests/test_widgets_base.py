"""What every widget app shares (notebook/widgets/_base.py): display, close, the runner guard."""

from __future__ import annotations

import concurrent.futures

import ipywidgets as W
import pytest

from claude_force_nb.engine import runner
from claude_force_nb.notebook import widgets
from claude_force_nb.notebook.widgets._base import finished, html_output, known_models, status_line

from .widget_support import TIMEOUT, open_app  # noqa: F401  (open_app is a fixture)


def test_every_app_builds_headless_and_displays_as_its_root(orch, open_app):
    for cls in (widgets.AgentConsole, widgets.CompareView, widgets.CacheBrowser, widgets.CostDashboard):
        app = open_app(cls, orch)
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


def test_known_models_start_with_the_default_and_hold_no_duplicates(orch):
    models = known_models(orch)
    assert models[0] == orch.settings.default_model and len(models) == len(set(models))
    assert set(orch.prices.models) <= set(models)


def test_status_line_escapes_and_colours():
    assert status_line("a <b> & c", "error") == '<span style="color: #b00;">a &lt;b&gt; &amp; c</span>'
    assert html_output("<i>x</i>", "x") == {"output_type": "display_data", "metadata": {},
                                             "data": {"text/html": "<i>x</i>", "text/plain": "x"}}
    assert finished(7).result(0) == 7


def test_an_app_without_an_orchestrator_builds_one_and_closes_it(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    app = widgets.AgentConsole()
    orch = app.orchestrator
    assert app._owns_orchestrator and orch.settings.base_url == server.url
    app.close()
    assert app.closed and app.run().result(0) is None  # a closed app starts nothing
    assert server.request_count == 0


def test_run_from_the_runner_thread_refuses_and_puts_the_buttons_back(orch, open_app):
    app = open_app(widgets.AgentConsole, orch)
    app.task.value = "never sent"

    async def click_on_the_loop() -> None:
        app.run()

    with pytest.raises(RuntimeError, match="its own event loop thread"):
        runner.run_sync(click_on_the_loop())
    assert not app.run_button.disabled and app.cancel_button.disabled and not app.running
