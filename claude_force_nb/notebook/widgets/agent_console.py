"""AgentConsole: pick an agent and a model, type a task, Run; the answer streams in."""

from __future__ import annotations

import concurrent.futures
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...core.errors import ClaudeForceError, InvalidInputError
from ...core.options import MAX_OUTPUT_TOKENS, RunOptions
from ...core.results import AgentResult, format_cost
from ..display import CURSOR, TextStream, badge_html, provenance, result_bundle, thinking_bundle
from ..pacing import PacingWatch
from ._base import NO_TASK, App, finished, known_models, output, status_line

if TYPE_CHECKING:  # pragma: no cover
    from ...engine.orchestrator import Orchestrator

__all__ = ["AgentConsole"]

class _Stream:
    """Deltas from the runner thread into an Output, redrawn with a cursor now and then."""

    def __init__(self, out: W.Output, stream: TextStream | None = None) -> None:
        self.out = out
        self.stream = stream if stream is not None else TextStream()

    @property
    def text(self) -> str:
        return self.stream.text

    def on_text(self, delta: str) -> None:
        text = self.stream.add(delta)
        if text is not None:
            self.out.outputs = (output({"text/markdown": text + CURSOR}),)


class AgentConsole(App):
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

        first = "assistant" if "assistant" in names else (names[0] if names else None)
        self.agent = W.Dropdown(options=names, value=first,
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
            self.agent_info.value = status_line("No agents found: add .claude/agents/*.md to the project.", "warn")
            return
        try:
            definition = self.orchestrator.registry.get(name)
        except ClaudeForceError as exc:
            self.agent_info.value = status_line(str(exc), "error")
            return
        defaults = RunOptions().resolve(definition, self.orchestrator.settings)
        model = defaults.model or ""
        self.agent.tooltip = definition.description or name
        self.agent_info.value = (
            f'<span style="color: #666;"><i>{html.escape(definition.description or "(no description)")}</i>'
            f" · default model {html.escape(model)} · {definition.source}</span>"
        )
        if set_defaults:
            self.model.value = model
            self.max_tokens.value = defaults.max_tokens

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

    def _request(self) -> tuple[str, str, dict[str, Any]]:
        """The agent, task and run options the inputs describe.

        Every check of the inputs is here; a failed one raises InvalidInputError with the
        fix, and nothing is sent. (The orchestrator checks the values again when it runs.)
        """
        task = self.task.value
        if not task.strip():
            raise InvalidInputError(NO_TASK)
        agent = self.agent.value
        if not agent:
            raise InvalidInputError("Choose an agent first: nothing was sent.")
        options = RunOptions(model=(self.model.value or "").strip() or None, max_tokens=int(self.max_tokens.value),
                             use_cache=bool(self.use_cache.value))
        return agent, task, {"model": options.model, "max_tokens": options.max_tokens, "use_cache": options.use_cache}

    def run(self) -> concurrent.futures.Future[AgentResult | None]:
        """What Run does: check the inputs, submit the call, return at once."""
        if (busy := self._busy("A run")) is not None:
            return busy
        try:
            agent, task, options = self._request()
        except InvalidInputError as exc:
            self._say(str(exc), "warn")
            return finished(None)
        shown_model = options["model"] or "its default model"
        self._set_running(True)
        self._say(f"Running {agent} on {shown_model}…")
        self._stream = stream = _Stream(self.answer)
        self.answer.outputs = (output(thinking_bundle(agent, shown_model)),)
        return self._start(lambda: self._work(agent, task, options, stream), self._cancelled)

    async def _work(self, agent: str, task: str, options: dict[str, Any], stream: _Stream) -> AgentResult | None:
        """Runs on the runner loop; everything the user sees is updated here, before returning."""
        shown_model = options["model"] or "its default model"

        def on_pacing(line: str | None) -> None:
            self._say(f"Running {agent} on {shown_model}…" + (f" ({line})" if line else ""), "warn" if line else "info")

        watch = PacingWatch(self.orchestrator.pacer.stats, on_pacing)
        try:
            result = await self.orchestrator.run(agent, task, on_text=stream.on_text, **options)
        except ClaudeForceError as exc:  # refused before sending: bad input, budget, no key…
            self.answer.outputs = ()
            self._refused(exc)
            return None
        except Exception as exc:
            self._bug(exc)
            raise
        finally:
            watch.stop()
        self.results.append(result)
        self.last_result = result
        self.answer.outputs = (output(result_bundle(result), provenance(result)),)
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
        self.answer.outputs = (output({"text/markdown": f"{partial}\n\n{note}" if partial else note}),)
        self._say("Cancelled.", "warn")
        self._set_running(False)
