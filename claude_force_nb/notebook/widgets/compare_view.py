"""CompareView: one task on every selected agent × model at once; answers side by side."""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...core.errors import InvalidInputError
from ...core.options import MAX_OUTPUT_TOKENS, RunOptions
from ...core.results import AgentResult, format_cost
from ...views.compare import clip_columns, comparison_frame
from ..arguments import variable_name_problem
from ..display import compare_html
from ..pacing import PacingWatch
from ._base import NO_TASK, App, finished, html_output, known_models

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ...engine.orchestrator import Orchestrator

__all__ = ["CompareView"]


def _user_namespace() -> dict[str, Any] | None:
    from IPython import get_ipython

    shell = get_ipython()
    return None if shell is None else shell.user_ns


class CompareView(App):
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

    def _jobs(self) -> list[dict[str, Any]]:
        """One job per selected agent × model (each agent's own model when none is selected).

        Every check of the inputs is here; a failed one raises InvalidInputError with the
        fix, and nothing is sent. (The orchestrator checks the values again when it runs.)
        """
        task = self.task.value
        agents = list(self.agents.value)
        models: list[str | None] = list(self.models.value) or [None]
        if not task.strip():
            raise InvalidInputError(NO_TASK)
        if not agents:
            raise InvalidInputError("Select at least one agent: nothing was sent.")
        checked = [RunOptions(model=m, max_tokens=int(self.max_tokens.value)) for m in models]
        return [{"agent": a, "task": task, "model": o.model, "max_tokens": o.max_tokens}
                for a in agents for o in checked]

    def run(self) -> concurrent.futures.Future[Any]:
        """Check the inputs, submit every agent × model concurrently, return at once."""
        if (busy := self._busy("A comparison")) is not None:
            return busy
        try:
            jobs = self._jobs()
        except InvalidInputError as exc:
            self._say(str(exc), "warn")
            return finished(None)
        use_cache = bool(self.use_cache.value)
        self._set_running(True)
        self._say(f"Running {len(jobs)} calls…")
        self.answers.value = ""
        self.table.outputs = ()
        return self._start(lambda: self._work(jobs, use_cache), self._cancelled)

    async def _work(self, jobs: list[dict[str, Any]], use_cache: bool) -> pd.DataFrame:
        """Runs on the runner loop: answers fill in as each finishes, then the table and totals."""
        done: dict[int, AgentResult] = {}
        pacing: list[str | None] = [None]

        def progress() -> None:
            paced = f" ({pacing[0]})" if pacing[0] else ""
            self._say(f"{len(done)}/{len(jobs)} done…{paced}")

        def on_result(i: int, result: AgentResult) -> None:
            done[i] = result
            self.answers.value = compare_html([done[k] for k in sorted(done)])
            progress()

        def on_pacing(line: str | None) -> None:
            pacing[0] = line
            progress()

        watch = PacingWatch(self.orchestrator.pacer.stats, on_pacing)
        try:
            results = await self.orchestrator.run_many(jobs, use_cache=use_cache, on_result=on_result)
            frame = comparison_frame(results)
        except Exception as exc:
            self._bug(exc)
            raise
        finally:
            watch.stop()
        self.results, self.frame = results, frame
        self.answers.value = compare_html(results)
        shown = clip_columns(frame, ["text"], 120)
        self.table.outputs = (html_output(shown.to_html(escape=True, index=False), repr(shown)),)
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
        if (problem := variable_name_problem(name)) is not None:
            self._say(problem, "error")
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
