"""Rendering results and streams into notebook outputs (display handles, Markdown, badges).

Everything here may be called from the runner thread: it only ever talks to the
frontend through a display handle (``update_display_data``), never through print.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from IPython.display import DisplayHandle, display

from ..core.results import AgentResult
from .pacing import PacingWatch

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.pacing import PacingStats

__all__ = ["CURSOR", "StreamView", "TextStream", "badge_html", "compare_html", "extract_code", "provenance",
           "result_bundle", "steps_markdown", "thinking_bundle"]

UPDATE_EVERY_S = 0.1
CURSOR = " ▌"
BADGE_STYLE = "font-size: 0.85em; color: #666; font-family: var(--jp-code-font-family, monospace);"
_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.S)


def badge_html(result: AgentResult) -> str:
    colour = "#b00" if not result.ok else ("#0a7" if result.cached else "#666")
    return f'<div style="{BADGE_STYLE} color: {colour};">{html.escape(result.footer())}</div>'


def provenance(result: AgentResult) -> dict[str, Any]:
    """Output metadata: where an answer came from, kept in the saved notebook."""
    return {
        "claude_force_nb": {
            "agent": result.agent,
            "model": result.model,
            "cache_key": result.cache_key,
            "cached": result.cached,
            "usage": result.usage.to_dict(),
            "cost_usd": result.cost_usd,
            "saved_usd": result.saved_usd,
            "request_id": result.request_id,
            "stop_reason": result.stop_reason,
            "offline": result.offline,
            "error_type": result.error_type,
        }
    }


def extract_code(text: str) -> str:
    """The fenced code blocks of an answer, joined (the whole text if there are none)."""
    blocks = _FENCE.findall(text)
    return "\n\n".join(b.rstrip() for b in blocks) if blocks else text


def steps_markdown(labels: Sequence[str]) -> str:
    """The tool calls made so far, one line each (``→ describe(name='sales') · 12 ms``)."""
    return "".join(f'<div style="{BADGE_STYLE}">{html.escape(label, quote=False)}</div>' for label in labels)


def _with_steps(bundle: dict[str, str], labels: Sequence[str]) -> dict[str, str]:
    """``bundle`` with the tool-call lines above its text (unchanged when there were none)."""
    if not labels:
        return bundle
    return {"text/markdown": f"{steps_markdown(labels)}\n\n{bundle['text/markdown']}",
            "text/plain": "\n".join([*labels, bundle["text/plain"]])}


def result_bundle(result: AgentResult, fmt: str = "markdown") -> dict[str, str]:
    """A mime bundle for a finished result: its tool calls, the answer, then the footer badge."""
    if not result.ok:
        body = f"**{html.escape(result.agent)} failed:** {html.escape(result.error or '')}"
    elif fmt == "code":
        body = f"```python\n{extract_code(result.text)}\n```"
    elif fmt == "text":
        body = f"<pre style='white-space: pre-wrap'>{html.escape(result.text)}</pre>"
    else:
        body = result.text
    return _with_steps({
        "text/markdown": f"{body}\n\n{badge_html(result)}",
        "text/plain": f"{result.text if result.ok else result.error}\n-- {result.footer()}",
    }, [step.label() for step in getattr(result, "steps", ())])


class TextStream:
    """Deltas of a streamed answer, joined; says when a redraw is due.

    A redraw per delta would flood the frontend, so ``add`` hands back the text so far
    at most every ``every_s`` seconds of ``clock`` (the first delta always redraws).
    Thread-safe: deltas arrive on the runner thread.
    """

    def __init__(self, every_s: float = UPDATE_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._chunks: list[str] = []
        self._last: float | None = None
        self._lock = threading.Lock()

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def add(self, delta: str) -> str | None:
        """Record ``delta``; the whole text when it is time to redraw, else None."""
        with self._lock:
            self._chunks.append(delta)
            now = self._clock()
            if self._last is not None and now - self._last < self.every_s:
                return None
            self._last = now
            return "".join(self._chunks)


def thinking_bundle(agent: str, model: str, pacing: str | None = None) -> dict[str, str]:
    """The line a cell shows until the answer starts, with the pacing that holds it back, if any."""
    note = f" ({pacing})" if pacing else ""
    return {"text/markdown": f"*{html.escape(agent)} ({html.escape(model)}) is thinking…{html.escape(note)}*",
            "text/plain": f"{agent} is thinking…{note}"}


class StreamView:
    """A display handle that fills in as deltas arrive and ends with the badge.

    With ``pacing`` (the orchestrator's ``pacer.stats``), the "thinking…" line also says
    when the run is paced ("paced: 429, resuming in 1.2s") until the answer starts.
    Each tool call (``on_step``) adds a line above the answer as soon as it returns.
    Every method may be called from the runner thread; nothing drawn after ``finish`` or
    ``fail`` can replace what they drew.
    """

    def __init__(self, agent: str, model: str, fmt: str = "markdown", *, stream: TextStream | None = None,
                 pacing: Callable[[], PacingStats] | None = None) -> None:
        self.fmt = fmt
        self.agent, self.model = agent, model
        self.stream = stream if stream is not None else TextStream()
        self._lock = threading.Lock()
        self._thinking, self._done = True, False
        self.steps: list[str] = []  # the labels of the tool calls made so far
        self.handle: DisplayHandle = display(thinking_bundle(agent, model), raw=True, display_id=True)
        self._watch = PacingWatch(pacing, self._show_pacing) if pacing is not None else None

    def _show_pacing(self, line: str | None) -> None:
        with self._lock:
            if self._thinking:
                self.handle.update(_with_steps(thinking_bundle(self.agent, self.model, line), self.steps), raw=True)

    def on_step(self, step: Any) -> None:
        """Called when a tool call returns (from the runner thread): its line appears at once."""
        with self._lock:
            if self._done:
                return
            self.steps.append(step.label())
            current = self.stream.text
            bundle = ({"text/markdown": current + CURSOR, "text/plain": current} if current
                      else thinking_bundle(self.agent, self.model))
            self.handle.update(_with_steps(bundle, self.steps), raw=True)

    def stop_pacing(self) -> None:
        """Stop saying how the run is paced (the answer started, or the cell is done)."""
        if self._watch is not None:
            self._watch.stop()

    def on_text(self, delta: str) -> None:
        """Called for every delta (from the runner thread); redraws at most every 0.1 s."""
        text = self.stream.add(delta)
        if text is not None:
            self.stop_pacing()
            with self._lock:
                if self._done:
                    return
                self._thinking = False
                self.handle.update(_with_steps({"text/markdown": text + CURSOR, "text/plain": text}, self.steps),
                                   raw=True)

    def _final(self, data: dict[str, str], metadata: dict[str, Any] | None = None) -> None:
        self.stop_pacing()  # outside the lock: a pacing update in progress ends first
        with self._lock:
            self._thinking, self._done = False, True
            self.handle.update(data, raw=True, metadata=metadata)

    def finish(self, result: AgentResult) -> None:
        self._final(result_bundle(result, self.fmt), provenance(result))

    def fail(self, message: str) -> None:
        self._final(_with_steps({"text/markdown": f"**Error:** {html.escape(message)}", "text/plain": message},
                                self.steps))


def compare_html(results: Sequence[AgentResult]) -> str:
    """Answers side by side: one column per run, each with its badge."""
    columns = []
    for r in results:
        body = html.escape(r.text if r.ok else f"Error: {r.error}")
        columns.append(
            "<div style='flex: 1 1 0; min-width: 16em; border: 1px solid #ddd; border-radius: 4px; padding: 0.5em;'>"
            f"<div style='font-weight: bold'>{html.escape(r.agent)} · {html.escape(r.model)}</div>"
            f"<div style='white-space: pre-wrap; margin: 0.5em 0;'>{body}</div>{badge_html(r)}</div>"
        )
    return f"<div style='display: flex; gap: 0.5em; align-items: stretch;'>{''.join(columns)}</div>"
