"""ipywidgets apps: AgentConsole, CompareView, CacheBrowser and CostDashboard.

Each app is a plain class that owns a ``root`` Box, displays through
``_repr_mimebundle_`` (so ``app`` as the last line of a cell shows it), and has
``close()``, which cancels its work in flight and closes every widget it made. The
widgets are public attributes, so code (and tests) can drive an app the way a user does:
``console.task.value = "..."; console.run_button.click()``.

The kernel is never blocked. Agent calls are submitted to the private runner loop
(:func:`claude_force_nb.runner.submit`) and the callback returns at once; ``run()``
returns a ``concurrent.futures.Future`` that resolves only after the app has finished its
own bookkeeping (results, status, totals), also when the run is cancelled. Work on that
loop reports progress only through widget state (``Output.outputs = ...``,
``HTML.value = ...``), never ``print`` or ``with out:``, which would land in whichever
cell happens to be running. Cache and ledger reads are local SQLite queries and run
directly; the cache's full signature check (``verify``) runs in the background.

Only this module, magics.py and display.py import IPython/ipywidgets; pandas and
matplotlib are imported when first needed.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import html
import keyword
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ..engine import runner
from ..core.agents import MODEL_ALIASES
from .display import badge_html, compare_html, provenance, result_bundle
from ..core.errors import ClaudeForceError
from ..engine.orchestrator import MAX_OUTPUT_TOKENS, Orchestrator
from ..core.results import AgentResult, format_cost
from ..views.compare import ALL, comparison_frame, filter_entries

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["ALL", "AgentConsole", "CacheBrowser", "CompareView", "CostDashboard", "filter_entries", "known_models"]

STREAM_EVERY_S = 0.1
CURSOR = " ▌"
_COLOURS = {"info": "#666", "ok": "#0a7", "warn": "#a60", "error": "#b00"}


# --------------------------------------------------------------------------- helpers

def known_models(orch: Orchestrator) -> list[str]:
    """Model ids to offer: the orchestrator's default, the current aliases, then every priced id."""
    ordered = [orch.settings.default_model, *(m for m in MODEL_ALIASES.values() if m), *sorted(orch.prices.models)]
    return list(dict.fromkeys(ordered))


def _display(data: dict[str, str], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``display_data`` output, in the shape ``Output.outputs`` holds."""
    return {"output_type": "display_data", "data": data, "metadata": metadata or {}}


def _html_output(markup: str, plain: str) -> dict[str, Any]:
    return _display({"text/html": markup, "text/plain": plain})


def _line(message: str, level: str = "info") -> str:
    """One escaped status line."""
    return f'<span style="color: {_COLOURS[level]};">{html.escape(message)}</span>'


def _clip(text: Any, limit: int) -> Any:
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"  # pragma: no cover


def _done(value: Any = None) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return future


def _user_namespace() -> dict[str, Any] | None:
    from IPython import get_ipython

    shell = get_ipython()
    return None if shell is None else shell.user_ns


class _Background:
    """One coroutine on the runner loop, with a public Future that resolves only after the
    coroutine's own bookkeeping, including when it is cancelled.

    (The runner's Future is marked cancelled the moment ``cancel()`` is called, before the
    task has even seen its CancelledError; ``future`` here waits for the clean-up.)
    """

    def __init__(self, work: Callable[[], Coroutine[Any, Any, Any]], on_cancel: Callable[[], None]) -> None:
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._started = False
        self._inner = runner.submit(self._main(work))
        self._inner.add_done_callback(self._inner_done)

    async def _main(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        self._started = True
        try:
            value = await work()
        except asyncio.CancelledError:
            self._on_cancel()
            self._settle(cancel=True)
            raise
        except BaseException as exc:
            self._settle(exc=exc)
            raise
        self._settle(value=value)
        return value

    def _inner_done(self, inner: concurrent.futures.Future[Any]) -> None:
        if inner.cancelled() and not self._started:  # cancelled before it ever ran
            self._on_cancel()
            self._settle(cancel=True)

    def _settle(self, *, value: Any = None, exc: BaseException | None = None, cancel: bool = False) -> None:
        with self._lock:
            if self.future.done():
                return
            if cancel:
                self.future.cancel()
                self.future.set_running_or_notify_cancel()
            elif exc is not None:
                self.future.set_exception(exc)
            else:
                self.future.set_result(value)

    def done(self) -> bool:
        return self.future.done()

    def cancel(self) -> bool:
        """Ask the work to stop (thread-safe); in-flight HTTP requests are closed."""
        if self.future.done():
            return False
        return self._inner.cancel()


class _App:
    """What the four apps share: the orchestrator, ``root``, display, close()."""

    root: W.Box

    def __init__(self, orchestrator: Orchestrator | None) -> None:
        self._owns_orchestrator = orchestrator is None
        self.orchestrator = orchestrator if orchestrator is not None else Orchestrator()
        self._job: _Background | None = None
        self.future: concurrent.futures.Future[Any] | None = None
        self.closed = False

    @property
    def running(self) -> bool:
        return self._job is not None and not self._job.done()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.root._repr_mimebundle_(**kwargs)

    def _widgets(self) -> Iterator[W.Widget]:
        """Every widget this app made: the tree under ``root``, public attributes, layouts, styles."""
        seen: dict[int, W.Widget] = {}
        stack: list[Any] = [self.root, *(v for v in vars(self).values() if isinstance(v, W.Widget))]
        while stack:
            widget = stack.pop()
            if not isinstance(widget, W.Widget) or id(widget) in seen:
                continue
            seen[id(widget)] = widget
            stack.extend(getattr(widget, "children", ()) or ())
            stack.extend(getattr(widget, name, None) for name in ("layout", "style"))
        return iter(seen.values())

    def _say(self, message: str, level: str = "info") -> None:
        """One status line (apps with a ``status`` widget)."""
        self.status.value = _line(message, level)

    def _set_running(self, running: bool) -> None:
        """Run/Cancel button states (apps with those buttons)."""
        self.run_button.disabled = running
        self.cancel_button.disabled = not running

    def _bug(self, exc: Exception) -> None:
        """A failure that is not the user's: show it on the status line and free the buttons
        (the exception itself propagates into the run's future with its traceback)."""
        self._say(f"{type(exc).__name__}: {exc}", "error")
        self._set_running(False)

    def _busy(self, what: str) -> concurrent.futures.Future[Any] | None:
        """The future to hand back when Run cannot start now (closed, or already running)."""
        if self.closed:
            return _done(None)
        if self.running:
            self._say(f"{what} is in progress: wait for it or press Cancel.", "warn")
            assert self.future is not None
            return self.future
        return None

    def cancel(self) -> bool:
        """Stop the run in flight, if any (its HTTP requests are closed). True if one was running."""
        job = self._job
        return job.cancel() if job is not None else False

    def close(self) -> None:
        """Cancel work in flight and close every widget (and an orchestrator this app created)."""
        if self.closed:
            return
        self.closed = True
        self.cancel()
        for widget in list(self._widgets()):
            widget.close()
        if self._owns_orchestrator:
            self.orchestrator.close()

    def _start(self, work: Callable[[], Coroutine[Any, Any, Any]], on_cancel: Callable[[], None]) -> concurrent.futures.Future[Any]:
        try:
            self._job = _Background(work, on_cancel)
        except BaseException:  # e.g. called from the runner thread itself: put the buttons back
            on_cancel()
            raise
        self.future = self._job.future
        return self.future

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'closed' if self.closed else 'open'}>"


# --------------------------------------------------------------------------- AgentConsole

class _Stream:
    """Deltas from the runner thread into an Output, at most every STREAM_EVERY_S seconds."""

    def __init__(self, out: W.Output) -> None:
        self.out = out
        self.chunks: list[str] = []
        self._last = 0.0

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def on_text(self, delta: str) -> None:
        self.chunks.append(delta)
        now = time.monotonic()
        if now - self._last < STREAM_EVERY_S:
            return
        self._last = now
        self.out.outputs = (_display({"text/markdown": self.text + CURSOR}),)


class AgentConsole(_App):
    """Pick an agent and a model, type a task, Run: the answer streams in, then its badge.

    ``run()`` returns a Future resolving to the AgentResult (None when nothing was sent,
    e.g. an empty task); ``results`` and ``last_result`` keep this console's runs and
    ``session_total`` sums their cost and savings.
    """

    def __init__(self, orchestrator: Orchestrator | None = None) -> None:
        super().__init__(orchestrator)
        orch = self.orchestrator
        names = orch.registry.names()
        self.results: list[AgentResult] = []
        self.last_result: AgentResult | None = None
        self._stream: _Stream | None = None

        self.agent = W.Dropdown(options=names, value=("assistant" if "assistant" in names else (names[0] if names else None)),
                                description="Agent", layout=W.Layout(width="16em"))
        self.model = W.Combobox(options=known_models(orch), value=orch.settings.default_model, ensure_option=False,
                                placeholder="model id", description="Model", layout=W.Layout(width="18em"))
        self.max_tokens = W.BoundedIntText(value=orch.settings.max_tokens, min=1, max=MAX_OUTPUT_TOKENS,
                                           description="Max tokens", layout=W.Layout(width="12em"))
        self.use_cache = W.Checkbox(value=True, description="Use cache", indent=False, layout=W.Layout(width="7em"))
        self.agent_info = W.HTML()
        self.task = W.Textarea(placeholder="The task for the agent (sent verbatim)…",
                               layout=W.Layout(width="100%", height="8em"))
        self.run_button = W.Button(description="Run", button_style="primary", icon="play", tooltip="Send the task")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True, tooltip="Stop the request")
        self.status = W.HTML()
        self.answer = W.Output(layout=W.Layout(border="1px solid #ddd", padding="0.25em 0.75em", min_height="2.5em"))
        self.session_total = W.HTML()
        self.root = W.VBox([
            W.HBox([self.agent, self.model, self.max_tokens, self.use_cache]),
            self.agent_info,
            self.task,
            W.HBox([self.run_button, self.cancel_button, self.status], layout=W.Layout(align_items="center")),
            self.answer,
            self.session_total,
        ])
        self.agent.observe(self._agent_changed, names="value")
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self._show_agent(self.agent.value, set_defaults=False)
        self._update_total()

    # -- state shown to the user -----------------------------------------------------

    def _agent_changed(self, change: Any) -> None:
        self._show_agent(change.new, set_defaults=True)

    def _show_agent(self, name: str | None, *, set_defaults: bool) -> None:
        if not name:
            self.agent_info.value = _line("No agents found: add .claude/agents/*.md to the project.", "warn")
            return
        try:
            definition = self.orchestrator.registry.get(name)
        except ClaudeForceError as exc:
            self.agent_info.value = _line(str(exc), "error")
            return
        settings = self.orchestrator.settings
        model = definition.model or settings.default_model
        self.agent.tooltip = definition.description or name
        self.agent_info.value = (
            f'<span style="color: #666;"><i>{html.escape(definition.description or "(no description)")}</i>'
            f" · default model {html.escape(model)} · {definition.source}</span>"
        )
        if set_defaults:
            self.model.value = model
            self.max_tokens.value = definition.max_tokens or settings.max_tokens

    @property
    def session_cost(self) -> float:
        """Sum of ``cost_usd`` over this console's runs (unpriced calls count 0)."""
        return sum((r.cost_usd or 0.0) for r in self.results)

    @property
    def session_saved(self) -> float:
        return sum(r.saved_usd for r in self.results)

    def _update_total(self) -> None:
        n = len(self.results)
        unpriced = sum(1 for r in self.results if r.ok and r.cost_usd is None)
        extra = f" · {unpriced} unpriced" if unpriced else ""
        self.session_total.value = (
            f'<span style="color: #666;">This console: {n} run{"s" if n != 1 else ""} · '
            f"spent {format_cost(self.session_cost)} · saved {format_cost(self.session_saved)}{extra}</span>"
        )

    # -- running ---------------------------------------------------------------------

    def run(self) -> concurrent.futures.Future[AgentResult | None]:
        """What Run does: check the inputs, submit the call, return at once."""
        if (busy := self._busy("A run")) is not None:
            return busy
        task = self.task.value
        if not task.strip():
            self._say("Type a task first: nothing was sent.", "warn")
            return _done(None)
        agent = self.agent.value
        if not agent:
            self._say("Choose an agent first: nothing was sent.", "warn")
            return _done(None)
        model = (self.model.value or "").strip() or None
        options = {"model": model, "max_tokens": int(self.max_tokens.value), "use_cache": bool(self.use_cache.value)}
        shown_model = model or "its default model"
        self._set_running(True)
        self._say(f"Running {agent} on {shown_model}…")
        self._stream = stream = _Stream(self.answer)
        self.answer.outputs = (_display({"text/markdown": f"*{html.escape(agent)} ({html.escape(shown_model)}) is thinking…*"}),)
        return self._start(lambda: self._work(agent, task, options, stream), self._cancelled)

    async def _work(self, agent: str, task: str, options: dict[str, Any], stream: _Stream) -> AgentResult | None:
        """Runs on the runner loop; everything the user sees is updated here, before returning."""
        try:
            result = await self.orchestrator.run(agent, task, on_text=stream.on_text, **options)
        except ClaudeForceError as exc:  # refused before sending: bad input, budget, no key…
            self.answer.outputs = ()
            self._say(str(exc), "error")
            self._set_running(False)
            return None
        except Exception as exc:
            self._bug(exc)
            raise
        self.results.append(result)
        self.last_result = result
        self.answer.outputs = (_display(result_bundle(result), provenance(result)),)
        if result.ok:
            self.status.value = badge_html(result)
        else:
            self._say(f"Error: {result.error}", "error")
        self._update_total()
        self._set_running(False)
        return result

    def _cancelled(self) -> None:
        partial = self._stream.text if self._stream is not None else ""
        note = "*Cancelled: the request was stopped.*"
        self.answer.outputs = (_display({"text/markdown": f"{partial}\n\n{note}" if partial else note}),)
        self._say("Cancelled.", "warn")
        self._set_running(False)


# --------------------------------------------------------------------------- CompareView

class CompareView(_App):
    """Run one task on every selected agent × model at once; answers side by side and a table.

    ``run()`` returns a Future resolving to the comparison DataFrame (also kept in
    ``frame``); ``export_button`` stores it in the notebook namespace (or ``namespace``,
    when set) under ``export_name``.
    """

    def __init__(self, orchestrator: Orchestrator | None = None) -> None:
        super().__init__(orchestrator)
        orch = self.orchestrator
        self.frame: pd.DataFrame | None = None
        self.results: list[AgentResult] = []
        self.namespace: dict[str, Any] | None = None  # None: the IPython user namespace
        self.agents = W.SelectMultiple(options=orch.registry.names(), description="Agents", rows=6)
        self.models = W.SelectMultiple(options=known_models(orch), value=(orch.settings.default_model,),
                                       description="Models", rows=6)
        self.max_tokens = W.BoundedIntText(value=orch.settings.max_tokens, min=1, max=MAX_OUTPUT_TOKENS,
                                           description="Max tokens", layout=W.Layout(width="12em"))
        self.use_cache = W.Checkbox(value=True, description="Use cache", indent=False)
        self.task = W.Textarea(placeholder="One task, sent verbatim to every agent × model…",
                               layout=W.Layout(width="100%", height="6em"))
        self.run_button = W.Button(description="Compare", button_style="primary", icon="play")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True)
        self.status = W.HTML()
        self.answers = W.HTML()
        self.table = W.Output()
        self.export_name = W.Text(value="comparison", description="Save as", layout=W.Layout(width="18em"))
        self.export_button = W.Button(description="Export DataFrame", icon="download",
                                      tooltip="Store the table as a variable in the notebook")
        self.root = W.VBox([
            W.HBox([self.agents, self.models, W.VBox([self.max_tokens, self.use_cache])]),
            self.task,
            W.HBox([self.run_button, self.cancel_button, self.status], layout=W.Layout(align_items="center")),
            self.answers,
            self.table,
            W.HBox([self.export_name, self.export_button]),
        ])
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.export_button.on_click(lambda _b: self.export())

    def run(self) -> concurrent.futures.Future[Any]:
        """Check the inputs, submit every agent × model concurrently, return at once."""
        if (busy := self._busy("A comparison")) is not None:
            return busy
        task = self.task.value
        agents = list(self.agents.value)
        models: list[str | None] = list(self.models.value) or [None]
        if not task.strip():
            self._say("Type a task first: nothing was sent.", "warn")
            return _done(None)
        if not agents:
            self._say("Select at least one agent: nothing was sent.", "warn")
            return _done(None)
        max_tokens = int(self.max_tokens.value)
        jobs = [{"agent": a, "task": task, "model": m, "max_tokens": max_tokens} for a in agents for m in models]
        use_cache = bool(self.use_cache.value)
        self._set_running(True)
        self._say(f"Running {len(jobs)} calls…")
        self.answers.value = ""
        self.table.outputs = ()
        return self._start(lambda: self._work(jobs, use_cache, comparison_frame), self._cancelled)

    async def _work(self, jobs: list[dict[str, Any]], use_cache: bool, to_frame: Callable[[list[AgentResult]], Any]) -> Any:
        done: dict[int, AgentResult] = {}

        def on_result(i: int, result: AgentResult) -> None:  # on the runner loop, as each finishes
            done[i] = result
            self.answers.value = compare_html([done[k] for k in sorted(done)])
            self._say(f"{len(done)}/{len(jobs)} done…")

        try:
            results = await self.orchestrator.run_many(jobs, use_cache=use_cache, on_result=on_result)
            frame = to_frame(results)
        except Exception as exc:
            self._bug(exc)
            raise
        self.results, self.frame = results, frame
        self.answers.value = compare_html(results)
        shown = frame.assign(text=frame["text"].map(lambda t: _clip(t, 120)))
        self.table.outputs = (_html_output(shown.to_html(escape=True, index=False), repr(shown)),)
        spent = sum((r.cost_usd or 0.0) for r in results)
        cached = sum(r.cached for r in results)
        failed = sum(not r.ok for r in results)
        self._say(f"{len(results)} runs · spent {format_cost(spent)} · {cached} cached · {failed} failed",
                  "error" if failed else "ok")
        self._set_running(False)
        return frame

    def _cancelled(self) -> None:
        self._say("Cancelled: the requests in flight were stopped.", "warn")
        self._set_running(False)

    def export(self) -> bool:
        """Store ``frame`` in the notebook namespace under ``export_name``; True on success."""
        name = self.export_name.value.strip()
        if not name.isidentifier() or keyword.iskeyword(name):
            self._say(f"{name!r} is not a valid variable name.", "error")
            return False
        if self.frame is None:
            self._say("Run a comparison first: there is nothing to export.", "warn")
            return False
        namespace = self.namespace if self.namespace is not None else _user_namespace()
        if namespace is None:
            self._say("No IPython session: use view.frame instead.", "error")
            return False
        namespace[name] = self.frame
        self._say(f"Saved the table as `{name}` ({len(self.frame)} rows).", "ok")
        return True


# --------------------------------------------------------------------------- CacheBrowser

class CacheBrowser(_App):
    """Browse the signed response cache: filter, preview, delete an entry, verify signatures."""

    COLUMNS = ("key", "agent", "model", "created", "expires", "hits", "cost_usd", "task", "answer")

    def __init__(self, orchestrator: Orchestrator | None = None) -> None:
        super().__init__(orchestrator)
        self.frame: pd.DataFrame | None = None
        self.filtered: pd.DataFrame | None = None
        self.header = W.HTML()
        self.agent_filter = W.Dropdown(options=[ALL], value=ALL, description="Agent", layout=W.Layout(width="16em"))
        self.model_filter = W.Dropdown(options=[ALL], value=ALL, description="Model", layout=W.Layout(width="18em"))
        self.search = W.Text(placeholder="text in task or answer", description="Search",
                             continuous_update=False, layout=W.Layout(width="20em"))
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.selector = W.Select(options=[], rows=8, layout=W.Layout(width="100%"))
        self.preview = W.Output(layout=W.Layout(border="1px solid #ddd", padding="0.25em 0.75em"))
        self.delete_button = W.Button(description="Delete entry", icon="trash", button_style="danger", disabled=True)
        self.verify_button = W.Button(description="Verify signatures", icon="check")
        self.status = W.HTML()
        self.table = W.Output()
        self.root = W.VBox([
            self.header,
            W.HBox([self.agent_filter, self.model_filter, self.search, self.refresh_button]),
            self.selector,
            self.preview,
            W.HBox([self.delete_button, self.verify_button, self.status], layout=W.Layout(align_items="center")),
            self.table,
        ])
        self._quiet = False
        for widget in (self.agent_filter, self.model_filter, self.search):
            widget.observe(self._filters_changed, names="value")
        self.selector.observe(self._selected, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.delete_button.on_click(lambda _b: self.delete())
        self.verify_button.on_click(lambda _b: self.verify())
        self.refresh()

    @property
    def selected_key(self) -> str | None:
        """The full cache key of the selected entry."""
        return self.selector.value

    def refresh(self) -> None:
        """Re-read the entries and the counters; keep the filters and the selection when possible."""
        cache = self.orchestrator.cache
        self.frame = cache.entries()
        stats = cache.stats()
        lookups = stats["hits"] + stats["misses"]
        self.header.value = (
            f"<b>{stats['entries']:,}</b> entries · <b>{_size(stats['bytes'])}</b> · hit rate "
            f"<b>{stats['hit_rate']:.0%}</b> in this kernel ({stats['hits']} of {lookups} lookups) · "
            f"<b>{stats['integrity_failures']}</b> integrity failures"
        )
        self._quiet = True
        try:
            for dropdown, column in ((self.agent_filter, "agent"), (self.model_filter, "model")):
                present = sorted({str(v) for v in self.frame[column].dropna() if str(v)})
                current = dropdown.value
                dropdown.options = [ALL, *present]
                dropdown.value = current if current in present else ALL
        finally:
            self._quiet = False
        self._apply_filters()

    def _filters_changed(self, change: Any) -> None:
        if not self._quiet:
            self._apply_filters()

    def _apply_filters(self) -> None:
        assert self.frame is not None
        selected = self.selector.value
        self.filtered = filtered = filter_entries(self.frame, self.agent_filter.value, self.model_filter.value, self.search.value)
        options = []
        for key, row in filtered.iterrows():
            created = row["created"].strftime("%Y-%m-%d %H:%M") if row["created"] == row["created"] else "?"
            options.append((f"{created} · {row['agent']} · {row['model']} · {_clip(row['task'], 70)}", key))
        self.selector.options = options
        self.selector.value = selected if selected in filtered.index else None
        self._selected(None)
        shown = filtered[list(self.COLUMNS)].assign(
            task=filtered["task"].map(lambda t: _clip(t, 80)), answer=filtered["answer"].map(lambda t: _clip(t, 80))
        )
        total = len(self.frame)
        caption = f"<p style='color: #666;'>{len(filtered)} of {total} entries</p>"
        self.table.outputs = (_html_output(caption + shown.to_html(escape=True, index=False, na_rep="—"),
                                           f"{len(filtered)} of {total} entries"),)

    def _selected(self, change: Any) -> None:
        key = self.selector.value
        self.delete_button.disabled = key is None
        if key is None or self.frame is None or key not in self.frame.index:
            self.preview.outputs = (_html_output("<i style='color: #666;'>Select an entry to preview it.</i>", "(no entry selected)"),)
            return
        row = self.frame.loc[key]

        def when(value: Any) -> str:
            return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value == value else "never"

        cost = row["cost_usd"]
        fields = [
            ("Key", f"{key[:15]}…"),
            ("Agent", row["agent"]),
            ("Model", row["model"]),
            ("Cost when made", format_cost(None if cost != cost else float(cost))),
            ("Created", when(row["created"])),
            ("Expires", when(row["expires"])),
            ("Hits", f"{int(row['hits'])}"),
            ("Size", _size(int(row["size"]))),
            ("Task", row["task"]),
            ("Answer", row["answer"]),
        ]
        rows = "".join(
            f"<tr><th style='text-align: left; padding-right: 1em; vertical-align: top;'>{html.escape(name)}</th>"
            f"<td style='text-align: left; white-space: pre-wrap;'>{html.escape(str(value))}</td></tr>"
            for name, value in fields
        )
        plain = "\n".join(f"{name}: {value}" for name, value in fields)
        self.preview.outputs = (_html_output(f"<table>{rows}</table>", plain),)

    def delete(self) -> bool:
        """Delete the selected entry (by its full key); True if it was removed."""
        key = self.selector.value
        if key is None:
            self._say("Select an entry first.", "warn")
            return False
        removed = self.orchestrator.cache.delete(key)
        self.refresh()
        if removed:
            self._say(f"Deleted entry {key[:15]}…", "ok")
        else:
            self._say("That entry was already gone.", "warn")
        return removed

    def verify(self) -> concurrent.futures.Future[list[str]]:
        """Re-check every signature in the background; the count of bad entries goes to ``status``."""
        if self.running:
            assert self.future is not None
            return self.future
        cache = self.orchestrator.cache
        self.verify_button.disabled = True
        self._say("Verifying signatures…")

        async def work() -> list[str]:
            try:
                bad: list[str] = await asyncio.to_thread(cache.verify)
            except Exception as exc:
                self._say(f"Verification failed: {type(exc).__name__}: {exc}", "error")
                self.verify_button.disabled = False
                raise
            if bad:
                self._say(f"{len(bad)} bad entries: {', '.join(k[:15] for k in bad)}", "error")
            else:
                self._say("Verified: 0 bad entries.", "ok")
            self.verify_button.disabled = False
            return bad

        def cancelled() -> None:
            self._say("Verification cancelled.", "warn")
            self.verify_button.disabled = False

        return self._start(work, cancelled)


# --------------------------------------------------------------------------- CostDashboard

class CostDashboard(_App):
    """Spend, savings and calls from the ledger: totals, a table by agent/model/day, charts."""

    def __init__(self, orchestrator: Orchestrator | None = None) -> None:
        super().__init__(orchestrator)
        self.runs: pd.DataFrame | None = None
        self.costs: pd.DataFrame | None = None
        self.totals: dict[str, Any] = {}
        self.totals_html = W.HTML()
        self.by = W.ToggleButtons(options=["agent", "model", "day"], value="agent", description="By")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.table = W.Output()
        self.plot = W.Output()
        self.root = W.VBox([
            self.totals_html,
            W.HBox([self.by, self.refresh_button], layout=W.Layout(align_items="center")),
            self.table,
            self.plot,
        ])
        self.by.observe(lambda _change: self._render_table(), names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Re-read the ledger and redraw everything."""
        from ..views import reports

        ledger = self.orchestrator.ledger
        self.runs = reports.runs(ledger=ledger)
        total = reports.costs(by="agent", ledger=ledger).loc[reports.TOTAL]
        self.totals = {
            "cost_usd": float(total["cost_usd"]),
            "saved_usd": float(total["saved_usd"]),
            "calls": int(total["calls"]),
            "cached_calls": int(total["cached_calls"]),
            "hit_rate": float(total["hit_rate"]),
            "unpriced": int(total["unpriced"]),
        }
        t = self.totals
        unpriced = f" · {t['unpriced']} unpriced" if t["unpriced"] else ""
        self.totals_html.value = (
            f"Spent <b>${t['cost_usd']:,.4f}</b> · saved <b>${t['saved_usd']:,.4f}</b> by the cache · "
            f"<b>{t['calls']:,}</b> calls · hit rate <b>{t['hit_rate']:.1%}</b>{unpriced}"
            f" <span style='color: #666;'>(updated {time.strftime('%H:%M:%S')})</span>"
        )
        self._render_table()
        self._render_plots()

    def _render_table(self) -> None:
        from ..views import reports

        self.costs = frame = reports.costs(by=self.by.value, ledger=self.orchestrator.ledger)
        styler = reports.styled(frame).format_index(escape="html", axis=0)
        self.table.outputs = (_html_output(styler.to_html(), repr(frame)),)

    def _render_plots(self) -> None:
        from ..views import plots

        assert self.runs is not None
        try:
            fig = plots.new_figure(figsize=(11.0, 3.6))
        except plots.MissingPlotDependency:
            self.plot.outputs = (_display({"text/plain": plots.PLOT_HINT}),)
            return
        cost_ax, latency_ax = fig.subplots(1, 2)
        plots.plot_cost_by_day(self.runs, ax=cost_ax)
        plots.plot_latency(self.runs, ax=latency_ax)
        png = base64.b64encode(plots.figure_png(fig)).decode("ascii")
        self.plot.outputs = (_display({"image/png": png, "text/plain": "<cost by day and latency charts>"}),)
