"""notebook/display.py: badges, provenance, bundles, and streams drawn through one display handle."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import anthropic
import httpx2
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.engine import runner
from claude_force_nb.engine.pacing import Pacer
from claude_force_nb.notebook.display import (
    CURSOR,
    StreamView,
    TextStream,
    badge_html,
    compare_html,
    extract_code,
    provenance,
    result_bundle,
    thinking_bundle,
)
from claude_force_nb.notebook.pacing import PacingWatch, pacing_summary

from . import clocks

OK = AgentResult(agent="coder", model="claude-haiku-4-5", text="Use `x < y` & more", usage=Usage(100, 20),
                 cost_usd=0.0012, latency_s=1.25, stop_reason="end_turn", request_id="req_1", cache_key="v1:abc")
CACHED = AgentResult(agent="coder", model="claude-haiku-4-5", text="again", cached=True, cost_usd=0.0, saved_usd=0.0012)
FAILED = AgentResult(agent="<coder>", model="claude-haiku-4-5", error="prompt is too long <here>",
                     error_type="invalid_request_error")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shell():
    return InteractiveShell.instance()


def test_badge_colour_says_fresh_cached_or_failed():
    assert "color: #666;" in badge_html(OK) and "color: #0a7;" in badge_html(CACHED)
    assert "color: #b00;" in badge_html(FAILED) and "&lt;coder&gt;" in badge_html(FAILED)
    assert "coder · claude-haiku-4-5 · 100 in / 20 out · $0.0012 · 1.25s" in badge_html(OK)


def test_provenance_keeps_where_the_answer_came_from():
    meta = provenance(OK)["claude_force_nb"]
    assert meta == {
        "agent": "coder", "model": "claude-haiku-4-5", "cache_key": "v1:abc", "cached": False,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_write_5m_tokens": 0,
                  "cache_write_1h_tokens": 0, "cache_read_tokens": 0},
        "cost_usd": 0.0012, "saved_usd": 0.0, "request_id": "req_1", "stop_reason": "end_turn",
        "offline": False, "error_type": None,
    }


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Here:\n```python\nprint(1)\n```\nand\n```\nx = 2  \n```\n", "print(1)\n\nx = 2"),
        ("no fences at all", "no fences at all"),
    ],
)
def test_extract_code_joins_the_fenced_blocks(text, code):
    assert extract_code(text) == code


def test_result_bundle_in_each_format():
    footer = OK.footer().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    markdown = result_bundle(OK)
    assert markdown["text/markdown"].startswith("Use `x < y` & more\n\n<div") and footer in markdown["text/markdown"]
    assert markdown["text/plain"] == f"Use `x < y` & more\n-- {OK.footer()}"
    assert result_bundle(OK, "text")["text/markdown"].startswith(
        "<pre style='white-space: pre-wrap'>Use `x &lt; y` &amp; more</pre>")
    assert result_bundle(OK, "code")["text/markdown"].startswith("```python\nUse `x < y` & more\n```")
    failed = result_bundle(FAILED)
    assert failed["text/markdown"].startswith("**&lt;coder&gt; failed:** prompt is too long &lt;here&gt;")
    assert failed["text/plain"].startswith("prompt is too long <here>\n-- ")


def test_text_stream_redraws_the_first_delta_then_at_most_every_interval():
    clock = FakeClock()
    stream = TextStream(every_s=0.1, clock=clock)
    assert stream.add("a") == "a"
    clock.now = 0.05
    assert stream.add("b") is None
    clock.now = 0.1
    assert stream.add("c") == "abc"
    clock.now = 0.15
    assert stream.add("d") is None and stream.text == "abcd"


def test_stream_view_fills_one_display_in_and_ends_with_the_badge(shell):
    clock = FakeClock()
    with capture_output() as cap:
        view = StreamView("coder", "claude-haiku-4-5", stream=TextStream(clock=clock))
        view.on_text("Use ")
        view.on_text("`x")  # within 0.1 s: no redraw
        clock.now = 1.0
        view.on_text(" < y`")
        view.finish(OK)
    first, *updates = cap.outputs
    assert first.data["text/markdown"] == "*coder (claude-haiku-4-5) is thinking…*" and not first.update
    display_id = first.transient["display_id"]
    assert all(o.update and o.transient["display_id"] == display_id for o in updates)
    assert [o.data["text/markdown"] for o in updates[:2]] == ["Use " + CURSOR, "Use `x < y`" + CURSOR]
    assert updates[2].data == result_bundle(OK) and updates[2].metadata == provenance(OK)
    assert len(updates) == 3


def test_stream_view_shows_each_tool_call_above_the_answer_as_it_returns(shell):
    from claude_force_nb.core.tools import ToolStep

    looked = ToolStep("describe", {"name": "sales"}, "3 rows", 0.012)
    failed = ToolStep("lookup", {"key": "<k>"}, "", 1.5, error="KeyError: 'k'")
    with capture_output() as cap:
        view = StreamView("coder", "claude-haiku-4-5")
        view.on_step(looked)
        view.on_text("North")
        view.on_step(failed)
        view.fail("stopped")
        view.on_step(looked)  # after the end: nothing is drawn
    first, *updates = cap.outputs
    lines = ["→ describe(name='sales') · 12 ms", "→ lookup(key='<k>') · 1.5 s · error: KeyError: 'k'"]
    assert updates[0].data["text/markdown"].endswith("→ describe(name='sales') · 12 ms</div>\n\n"
                                                     "*coder (claude-haiku-4-5) is thinking…*")
    assert updates[1].data["text/plain"] == f"{lines[0]}\nNorth"
    assert updates[2].data["text/plain"] == "\n".join([*lines, "North"])
    assert "→ lookup(key='&lt;k&gt;') · 1.5 s" in updates[2].data["text/markdown"]
    assert updates[3].data["text/plain"] == "\n".join([*lines, "stopped"]) and len(updates) == 4


def test_stream_view_failure_is_escaped(shell):
    with capture_output() as cap:
        view = StreamView("coder", "claude-haiku-4-5")
        view.fail("bad <input>")
    assert cap.outputs[-1].data == {"text/markdown": "**Error:** bad &lt;input&gt;", "text/plain": "bad <input>"}


def test_compare_html_has_one_escaped_column_per_run():
    markup = compare_html([OK, FAILED])
    assert markup.count("<div style='font-weight: bold'>") == 2
    assert "Use `x &lt; y` &amp; more" in markup and "Error: prompt is too long &lt;here&gt;" in markup
    assert markup.startswith("<div style='display: flex;")


# -- pacing shown while a cell waits ---------------------------------------------------------

def until(predicate, timeout: float = 5.0) -> bool:
    """Wait (on an Event, in short steps) until ``predicate()`` holds; False after ``timeout``."""
    step = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        step.wait(0.01)
    return predicate()


def rate_limited(pacer: Pacer, retry_after_ms: int = 2000) -> None:
    """One attempt through ``pacer`` answered 429 with ``retry-after-ms`` (on the runner loop, where pacers live)."""
    async def attempt() -> None:
        response = httpx2.Response(429, headers={"retry-after-ms": str(retry_after_ms)},
                                   request=httpx2.Request("POST", "http://x"))
        with contextlib.suppress(anthropic.RateLimitError):
            async with pacer.slot(10, 10):
                raise anthropic.RateLimitError("rate limited", response=response, body=None)

    runner.run_sync(attempt())


def test_thinking_line_says_how_the_run_is_paced():
    assert thinking_bundle("a<b>", "m") == {"text/markdown": "*a&lt;b&gt; (m) is thinking…*", "text/plain": "a<b> is thinking…"}
    assert thinking_bundle("a", "m", "paced: 429, resuming in 1.2s")["text/markdown"] == (
        "*a (m) is thinking… (paced: 429, resuming in 1.2s)*")


def test_stream_view_says_when_the_run_is_paced_until_the_answer_starts(shell):
    clock = clocks.FakeClock()
    pacer = Pacer(8, clock=clock, wall_clock=clock.wall, sleep=clock.sleep)
    rate_limited(pacer)

    def last(cap) -> str:
        return cap.outputs[-1].data["text/markdown"]

    with capture_output() as cap:
        view = StreamView("coder", "claude-haiku-4-5", pacing=pacer.stats)
        assert until(lambda: last(cap) == "*coder (claude-haiku-4-5) is thinking… (paced: 429, resuming in 2.0s)*")
        clock.advance(2.5)  # the pause is over
        assert until(lambda: last(cap) == "*coder (claude-haiku-4-5) is thinking…*")
        view.on_text("Use ")
        rate_limited(pacer)  # paced again, but the answer has started: the cell shows the answer
        for _ in range(3):
            runner.run_sync(asyncio.sleep(0))
        assert last(cap) == "Use " + CURSOR
        view.finish(OK)
    assert cap.outputs[-1].data == result_bundle(OK)
    assert [o.data["text/markdown"] for o in cap.outputs].count("*coder (claude-haiku-4-5) is thinking…*") == 2


def test_a_stopped_watch_shows_nothing_more():
    clock = clocks.FakeClock()
    pacer = Pacer(8, clock=clock, wall_clock=clock.wall, sleep=clock.sleep)
    shown: list[str | None] = []
    watch = PacingWatch(pacer.stats, shown.append, every_s=0.0)
    rate_limited(pacer)
    assert until(lambda: shown == ["paced: 429, resuming in 2.0s"])
    watch.stop()
    clock.advance(5)
    for _ in range(5):
        runner.run_sync(asyncio.sleep(0))
    assert shown == ["paced: 429, resuming in 2.0s"]
    watch.stop()  # twice is fine


def test_pacing_summary_names_every_counter():
    clock = clocks.FakeClock()
    pacer = Pacer(4, clock=clock, wall_clock=clock.wall, sleep=clock.sleep)
    rate_limited(pacer, 1500)
    assert pacing_summary(pacer.stats()) == (
        "Pacing: paced: 429, resuming in 1.5s\n"
        "429 (rate limited): 1 · 529 (overloaded): 0 · waited 0.0 s · concurrency 4 of 4 (0 in flight)")
