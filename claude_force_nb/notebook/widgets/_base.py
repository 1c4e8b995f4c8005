"""What every widget app shares: the orchestrator, ``root``, the status line, the
Run/Cancel buttons, one background job at a time, ``close()``.

Outputs are written as widget state (``Output.outputs = ...``, ``HTML.value = ...``),
never with ``print`` or ``with out:``: the code writing them may run on the runner
thread, and printed text would land in whichever cell happens to be executing.
"""

from __future__ import annotations

import concurrent.futures
import html
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import ipywidgets as W

from ...core.agents import MODEL_ALIASES
from ...engine.background import BackgroundJob
from ...engine.orchestrator import Orchestrator

__all__ = ["App", "NO_TASK", "finished", "html_output", "known_models", "output", "status_line"]

NO_TASK = "Type a task first: nothing was sent."
_COLOURS = {"info": "#666", "ok": "#0a7", "warn": "#a60", "error": "#b00"}


def known_models(orch: Orchestrator) -> list[str]:
    """Model ids to offer: the orchestrator's default, the current aliases, then every priced id."""
    ordered = [orch.settings.default_model, *(m for m in MODEL_ALIASES.values() if m), *sorted(orch.prices.models)]
    return list(dict.fromkeys(ordered))


def output(data: dict[str, str], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``display_data`` output, in the shape ``Output.outputs`` holds."""
    return {"output_type": "display_data", "data": data, "metadata": metadata or {}}


def html_output(markup: str, plain: str) -> dict[str, Any]:
    """An HTML output with its plain-text fallback."""
    return output({"text/html": markup, "text/plain": plain})


def status_line(message: str, level: str = "info") -> str:
    """One escaped, coloured status line (level: info, ok, warn or error)."""
    return f'<span style="color: {_COLOURS[level]};">{html.escape(message)}</span>'


def finished(value: Any = None) -> concurrent.futures.Future[Any]:
    """A Future that is already done: what Run returns when nothing was started."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return future


class App:
    """Base of the four apps. Subclasses build ``root`` and the widgets they need; the
    status helpers expect a ``status`` HTML and, for ``_set_running``, Run/Cancel buttons."""

    root: W.Box
    status: W.HTML
    run_button: W.Button
    cancel_button: W.Button

    def __init__(self, orchestrator: Orchestrator | None) -> None:
        self._orchestrator = orchestrator
        self._owns_orchestrator = False
        self._job: BackgroundJob[Any] | None = None
        self.future: concurrent.futures.Future[Any] | None = None
        self.closed = False

    @property
    def orchestrator(self) -> Orchestrator:
        """The orchestrator given, else one built from the environment on first use (closed with the app)."""
        if self._orchestrator is None:
            self._orchestrator = Orchestrator()
            self._owns_orchestrator = True
        return self._orchestrator

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
        """Replace the status line."""
        self.status.value = status_line(message, level)

    def _set_running(self, running: bool) -> None:
        """Run/Cancel button states."""
        self.run_button.disabled = running
        self.cancel_button.disabled = not running

    def _refused(self, exc: Exception) -> None:
        """A run refused before anything was sent (bad input, budget, no key…): say why, free the buttons."""
        self._say(str(exc), "error")
        self._set_running(False)

    def _bug(self, exc: Exception) -> None:
        """A failure that is not the user's: show it on the status line and free the buttons
        (the exception itself propagates into the run's future with its traceback)."""
        self._say(f"{type(exc).__name__}: {exc}", "error")
        self._set_running(False)

    def _busy(self, what: str) -> concurrent.futures.Future[Any] | None:
        """The future to hand back when Run cannot start now (closed, or already running)."""
        if self.closed:
            return finished(None)
        if self.running:
            self._say(f"{what} is in progress: wait for it or press Cancel.", "warn")
            assert self.future is not None
            return self.future
        return None

    def _start(
        self, work: Callable[[], Coroutine[Any, Any, Any]], on_cancel: Callable[[], None]
    ) -> concurrent.futures.Future[Any]:
        """Run ``work`` on the runner loop; ``on_cancel`` restores the widgets if it is cancelled."""
        try:
            self._job = BackgroundJob(work, on_cancel=on_cancel)
        except BaseException:  # e.g. called from the runner thread itself: put the buttons back
            on_cancel()
            raise
        self.future = self._job.future
        return self.future

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
        if self._owns_orchestrator and self._orchestrator is not None:
            self._orchestrator.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'closed' if self.closed else 'open'}>"
