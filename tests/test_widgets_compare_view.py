"""CompareView, driven headless against FakeAnthropicServer."""

from __future__ import annotations

import concurrent.futures

import pandas as pd
import pytest

from claude_force_nb.notebook import widgets
from claude_force_nb.views.compare import comparison_frame

from .widget_support import TIMEOUT, open_app, sent_task  # noqa: F401  (open_app is a fixture)

AGENTS = ("assistant", "data-analyst", "python-expert")
MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6")


@pytest.fixture
def compare(orch, open_app):
    return open_app(widgets.CompareView, orch)


def test_compare_runs_every_agent_model_pair(compare, server):
    compare.agents.value = AGENTS
    compare.models.value = MODELS
    compare.task.value = "Median or mean for skewed latency?"
    compare.run_button.click()
    frame = compare.future.result(TIMEOUT)
    assert server.request_count == len(AGENTS) * len(MODELS)
    assert all(sent_task(r) == "Median or mean for skewed latency?" for r in server.requests)
    served = ("claude-haiku-4-5-20251001", "claude-sonnet-4-6")  # the API answers an alias with its dated id
    assert list(zip(frame["agent"], frame["model"])) == [(a, m) for a in AGENTS for m in served]
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


def test_status_line_says_when_the_comparison_is_paced(compare, server):
    server.fail_next(429, retry_after_ms=15_000)  # long: the test cancels once the status line says so
    compare.agents.value = ("assistant", "python-expert")
    compare.models.value = ("claude-haiku-4-5",)
    compare.task.value = "Paced"
    future = compare.run()
    assert server.wait_for(lambda s: "done… (paced: 429, resuming in" in compare.status.value, timeout=TIMEOUT)
    assert "1/2 done… (paced: 429, resuming in" in compare.status.value  # the other call was answered
    compare.cancel()
    concurrent.futures.wait([future], timeout=TIMEOUT)
    assert future.cancelled() and "Cancelled" in compare.status.value


def test_export_names_what_is_wrong_with_the_name(compare):
    compare.frame = pd.DataFrame({"a": [1]})
    compare.namespace = {}
    compare.export_name.value = "class"
    assert compare.export() is False and "&#x27;class&#x27; is a Python keyword" in compare.status.value
