"""AgentConsole, driven headless against FakeAnthropicServer."""

from __future__ import annotations

import concurrent.futures
import html

import pytest

from claude_force_nb.core.results import format_cost
from claude_force_nb.notebook import widgets
from claude_force_nb.notebook.display import badge_html

from .widget_support import TIMEOUT, markdown, open_app, sent_task  # noqa: F401  (open_app is a fixture)


@pytest.fixture
def console(orch, open_app):
    return open_app(widgets.AgentConsole, orch)


def test_console_offers_registry_agents_and_priced_models(orch, console):
    assert list(console.agent.options) == orch.registry.names()
    assert console.agent.value == "assistant"
    assert console.model.value == orch.settings.default_model
    assert {"claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"} <= set(console.model.options)
    assert console.max_tokens.value == orch.settings.max_tokens
    assert "General-purpose assistant" in console.agent_info.value
    assert console.cancel_button.disabled and not console.run_button.disabled


def test_choosing_an_agent_shows_its_description_and_defaults(tmp_path, make_orch, open_app):
    agents = tmp_path / "project" / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "quick.md").write_text(
        "---\ndescription: Answers <fast> & short\nmodel: haiku\nmax_tokens: 300\n---\nBe brief.\n"
    )
    app = open_app(widgets.AgentConsole, make_orch())
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


def test_status_line_says_when_the_run_is_paced(console, server):
    server.fail_next(429, retry_after_ms=15_000)  # long: the test cancels once the status line says so
    console.task.value = "Paced"
    future = console.run()
    assert server.wait_for(lambda s: "paced: 429, resuming in" in console.status.value, timeout=TIMEOUT)
    assert console.status.value.startswith('<span style="color: #a60;">Running assistant on ')
    console.cancel()
    concurrent.futures.wait([future], timeout=TIMEOUT)
    assert future.cancelled() and "Cancelled." in console.status.value
    assert console.answer.outputs[0]["data"]["text/markdown"].startswith("*Cancelled")
