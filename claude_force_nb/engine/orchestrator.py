"""Orchestrator: runs agents concurrently over AsyncAnthropic, with cache, ledger and limits.

All work happens on the runner's private loop (see runner.py). ``run``/``run_many`` are
awaitable from any loop; ``run_sync``/``run_many_sync`` block (notebook-safe; an interrupt
cancels in-flight calls). A call goes: options checked (core/options.py), request built
(requests.py), cache read, budget reserved, sent with retries (sending.py), its result
built (outcomes.py), its ledger row and cache entry written (persistence.py). A run with
tools is a loop of such calls (tool_loop.py), each one a ledger row under the run's
``run_id``; a run in a thread starts from the thread's history and adds its exchange to it.
``map`` runs one such call per row of a DataFrame (mapping.py; batch mode: batching.py).

Outcomes: a problem found before anything is sent (unknown agent, bad input, missing
or malformed key, budget) raises a ClaudeForceError. Anything that happened on the wire
(API errors after retries, an empty answer, a truncated, stalled or unreadable reply, an
open circuit) comes back as an AgentResult with ``error`` set — call
``result.raise_for_error()`` to turn it into an exception. ``run_many`` never raises for
one job: every job gets a result, in order. A bug (ours, or in a callback) still raises
with its traceback; in ``run_many`` only after the other jobs have finished, never
cancelling them.

After ``os.fork()`` an Orchestrator works in the child: runner.py calls ``_after_fork``,
which drops the parent's client, writer thread, calls in flight and pacing state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..core.agents import AgentDefinition, AgentRegistry
from ..core.errors import ClaudeForceError, InvalidInputError
from ..core.options import MAX_OUTPUT_TOKENS, RunOptions
from ..core.pricing import price_table
from ..core.results import AgentResult
from ..core.settings import Settings
from ..core.workflow import Workflow
from ..core.workflow_results import WorkflowResult
from ..store.cache import ResponseCache
from ..store.ledger import Ledger
from ..store.threads import ThreadStore
from . import batching, heavy, outcomes, runner, workflows
from .batching import BatchSummary
from .heavy import HeavyResult
from .jobs import Job, run_jobs
from .limits import BudgetGuard, input_token_bound
from .mapping import MapEstimate, MapRun, ProgressCallback
from .pacing import Pacer
from .persistence import PersistenceWriter
from .requests import Call, build_call, safe_log_text
from .retry import CircuitBreaker
from .sending import Sender, TextCallback, usable_api_key
from .tool_loop import StepCallback, agent_tools, checked_answer, run_loop
from .workflows import EventCallback

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["MAX_OUTPUT_TOKENS", "Job", "Orchestrator", "safe_log_text"]

log = logging.getLogger(__name__)

class Orchestrator:
    """Runs named agents on Claude: cached, ledgered, rate-limited and concurrent."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry: AgentRegistry | None = None,
        cache: ResponseCache | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.registry = registry or AgentRegistry()
        self._cache = cache
        self._ledger = ledger
        self._threads: ThreadStore | None = None
        self._warned_tools: set[str] = set()  # agents whose unavailable tools were named once
        self.prices = price_table(self.settings.prices_path if self.settings.prices_path.is_file() else None)
        self.budget = BudgetGuard(self.settings.budget_usd)
        self.breaker = CircuitBreaker(self.settings.circuit_failures, self.settings.circuit_reset_s)
        self.pacer = Pacer(
            self.settings.max_concurrent,
            requests_per_minute=self.settings.requests_per_minute,
            tokens_per_minute=self.settings.tokens_per_minute,
            max_pause_s=self.settings.retry_max_wait_s,
        )
        self._sender = Sender(lambda: self.settings, breaker=self.breaker, pacer=self.pacer, prices=self.prices)
        self._writer = PersistenceWriter(lambda: self.ledger, lambda: self.cache)
        self._tasks: set[asyncio.Task[Any]] = set()  # calls in flight (on the runner loop)
        self._closed = False
        runner.reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's threads, client and calls in flight do not exist here."""
        self._tasks = set()
        self._writer = PersistenceWriter(lambda: self.ledger, lambda: self.cache)
        self._sender._after_fork()
        self.pacer._after_fork()
        self.breaker._after_fork()
        self.budget.reserved_usd = 0.0  # held by the parent's calls in flight, settled there

    # -- lazily built parts -------------------------------------------------------------

    @property
    def cache(self) -> ResponseCache:
        if self._cache is None:
            self._cache = ResponseCache(self.settings)
        return self._cache

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.settings)
        return self._ledger

    @property
    def threads(self) -> ThreadStore:
        """The conversation threads (``threads.sqlite3`` next to the ledger), opened on first use."""
        if self._threads is None:
            self._threads = ThreadStore(self.settings)
        return self._threads

    @property
    def offline(self) -> bool:
        return self.settings.offline

    # -- public API ---------------------------------------------------------------------

    async def run(
        self, agent: str, task: str, *, model: str | None = None, max_tokens: int | None = None,
        temperature: float | None = None, use_cache: bool = True, refresh: bool = False, stream: bool | None = None,
        system: str | None = None, on_text: TextCallback | None = None, tools: Iterable[Any] | None = None,
        schema: Any = None, thread: str | None = None, max_steps: int | None = None, cell_id: str | None = None,
        notebook: str | None = None, on_step: StepCallback | None = None,
    ) -> AgentResult:
        """Run ``agent`` on ``task``. Raises for bad input; API failures come back as results.

        ``system`` adds instructions after the agent's definition (it is part of the cache key).
        ``tools``: functions (or ``@tool`` Tools) the model may call, in a loop of at most
        ``max_steps`` requests; ``on_step(ToolStep)`` is called as each call finishes.
        ``schema``: a pydantic model, JSON-schema dict or field list (``'title, score float'``):
        ``result.data`` is the validated answer. ``thread``: a conversation to continue and
        extend (``cell_id``: a re-run cell replaces its turn; ``notebook``: for ``--continue``).
        """
        options = RunOptions(model=model, max_tokens=max_tokens, temperature=temperature, system=system,
                             use_cache=use_cache, refresh=refresh, stream=stream,
                             tools=tools,  # type: ignore[arg-type]  # a list is made a ToolSet by RunOptions
                             schema=schema,
                             thread=thread, max_steps=max_steps, cell_id=cell_id, notebook=notebook)
        return await runner.run_async(self._run(agent, task, options, on_text, on_step))

    async def run_many(
        self,
        jobs: Iterable[Job | Sequence[Any] | dict[str, Any]],
        *,
        on_result: Callable[[int, AgentResult], Any] | None = None,
        **common: Any,
    ) -> list[AgentResult]:
        """Run every job concurrently; one result per job, in input order, whatever fails."""
        return await runner.run_async(run_jobs(self, list(jobs), on_result, common))

    def run_sync(
        self, agent: str, task: str, *, on_text: TextCallback | None = None, on_step: StepCallback | None = None,
        **options: Any,
    ) -> AgentResult:
        """Blocking ``run`` (same keywords): works in scripts, IPython and inside a running event loop."""
        return runner.run_sync(self._run(agent, task, RunOptions.from_kwargs(**options), on_text, on_step))

    def run_many_sync(self, jobs: Iterable[Any], **kwargs: Any) -> list[AgentResult]:
        """Blocking ``run_many``."""
        return runner.run_sync(run_jobs(self, list(jobs), kwargs.pop("on_result", None), kwargs))

    async def map(self, frame: pd.DataFrame, agent: str, prompt: str, *, into: str = "answer", batch: bool = False,
                  window: int | None = None, progress: bool | ProgressCallback = True, poll_s: float = 5.0,
                  **options: Any) -> pd.DataFrame:
        """``agent`` on every row of ``frame``; ``prompt`` names columns (``"Classify: {review}"``).
        Returns the frame with ``into`` (or a typed column per ``schema=`` field), ``cost_usd``,
        ``cached`` and ``error``; ``options`` are ``run``'s. ``progress``: a text bar, False, or
        a callback given each MapProgress. See engine/mapping.py (window, estimate, budget, resume)."""
        run = MapRun.of(self, frame, agent, prompt, into=into, window=window, progress=progress, **options)
        await run.plan_off_loop(batch=batch)
        await runner.run_async(run.run(batch=batch, poll_s=poll_s))
        return run.frame_out()

    def map_sync(self, frame: pd.DataFrame, agent: str, prompt: str, **kwargs: Any) -> pd.DataFrame:
        """Blocking ``map``. Interrupted (Ctrl-C, the stop button), it returns the partial frame
        at once: finished rows filled in, the others' ``error`` saying how to resume."""
        batch, poll_s = kwargs.pop("batch", False), kwargs.pop("poll_s", 5.0)
        run = MapRun.of(self, frame, agent, prompt, **kwargs)
        run.plan(batch=batch)
        try:
            runner.run_sync(run.run(batch=batch, poll_s=poll_s))
        except KeyboardInterrupt:
            run.stopped.wait(timeout=5.0)  # the workers stop and the finished rows are written
            log.warning("map interrupted after %d of %d rows; run it again to resume", run.progress.done, run.total)
        return run.frame_out()

    def estimate_map(self, frame: pd.DataFrame, agent: str, prompt: str, *, batch: bool = False,
                     **options: Any) -> MapEstimate:
        """What ``map`` would send and cost, sending nothing (the cache is only looked at)."""
        return MapRun.of(self, frame, agent, prompt, progress=False, **options).plan(batch=batch)

    def batches(self) -> list[dict[str, Any]]:
        """This home's Message Batches: id, created, state, request counts, cost_usd, agent, model, rows."""
        return batching.batch_list(self)

    def resume_batch_sync(self, batch_id: str, **kwargs: Any) -> BatchSummary:
        """Wait for a batch to end and merge its answers into the cache and ledger (after a restart too)."""
        return runner.run_sync(batching.resume_batch(self, batch_id, **kwargs))

    def cancel_batch_sync(self, batch_id: str) -> BatchSummary:
        """Cancel a batch on the API; answers it already has are still merged on resume."""
        return runner.run_sync(batching.cancel_batch(self, batch_id))

    async def run_workflow(self, workflow: Workflow, task: str | None = None, *,
                           on_event: EventCallback | None = None, tools: Any = None, **options: Any) -> WorkflowResult:
        """Run a Workflow: independent nodes concurrently, each an ordinary (cached) call;
        ``options`` are every node's defaults. See engine/workflows.py."""
        return await runner.run_async(workflows.run_workflow(self, workflow, task, on_event=on_event, tools=tools,
                                                             **options))

    def run_workflow_sync(self, workflow: Workflow, task: str | None = None, **kwargs: Any) -> WorkflowResult:
        """Blocking ``run_workflow``; an interrupt cancels every running node."""
        return runner.run_sync(workflows.run_workflow(self, workflow, task, **kwargs))

    async def run_heavy(self, question: str, **kwargs: Any) -> HeavyResult:
        """Plan ``n`` sub-questions, answer them concurrently, merge them: keywords n=4, agent="assistant",
        synth_agent, model, on_event, tools (to every part), and every node's defaults (engine/heavy.py)."""
        return await runner.run_async(heavy.run_heavy(self, question, **kwargs))

    def run_heavy_sync(self, question: str, **kwargs: Any) -> HeavyResult:
        """Blocking ``run_heavy``."""
        return runner.run_sync(heavy.run_heavy(self, question, **kwargs))

    def configure(self, **changes: Any) -> None:
        """Change settings that need no new client (model and token defaults, concurrency,
        streaming, budget). Spend, calls in flight and the cache are kept."""
        movable = {"default_model", "max_tokens", "max_concurrent", "stream", "budget_usd", "max_task_chars",
                   "max_steps", "tool_timeout_s", "thread_history_tokens"}
        if unknown := set(changes) - movable:
            raise InvalidInputError(
                f"{', '.join(sorted(unknown))} cannot change on a live Orchestrator: create a new one."
            )
        self.settings = self.settings.replace(**changes)
        if "max_concurrent" in changes:
            self.pacer.set_max_concurrent(changes["max_concurrent"])
        if "budget_usd" in changes:
            self.budget.budget_usd = changes["budget_usd"]

    async def aclose(self) -> None:
        """Cancel calls still in flight, write what they recorded, close the client and files."""
        if self._closed:
            return
        self._closed = True
        await runner.run_async(self._aclose_on_loop())
        self._writer.close()
        for store in (self._cache, self._ledger, self._threads):
            if store is not None:
                store.close()

    async def _aclose_on_loop(self) -> None:
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._writer.drain()
        await self._sender.aclose()

    def close(self) -> None:
        """Blocking ``aclose``."""
        if not self._closed:
            runner.run_sync(self.aclose())

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        mode = "offline" if s.offline else (s.base_url or "api.anthropic.com")
        return f"<Orchestrator model={s.default_model} max_concurrent={s.max_concurrent} {mode}>"

    # -- internals (run on the runner loop) -----------------------------------------------

    def _prepare(self, agent_name: str | AgentDefinition, task: str, options: RunOptions) -> Call:
        """The agent looked up, everything validated, the request built; raises InvalidInputError."""
        agent = agent_name if isinstance(agent_name, AgentDefinition) else self.registry.get(agent_name)
        tools = agent_tools(agent, options.tools, self._warned_tools)
        if tools is not options.tools:  # the agent file lists tools of its own
            options = replace(options, tools=tools)
        history = None
        if options.thread is not None:
            history = self.threads.history(options.thread, self.settings.thread_history_tokens,
                                           cell_id=options.cell_id)
        return build_call(agent, task, options, self.settings, history=history, run_id=secrets.token_hex(8))

    async def _run(
        self, agent_name: str | AgentDefinition, task: str, options: RunOptions, on_text: TextCallback | None,
        on_step: StepCallback | None = None, *, write_behind: bool = False,
    ) -> AgentResult:
        """One run (its tool loop included). With ``write_behind`` it may return before its
        ledger rows and cache entries are committed: the caller drains the writer."""
        if self._closed:
            raise InvalidInputError("This Orchestrator is closed: create a new one.")
        call = self._prepare(agent_name, task, options)
        step = functools.partial(self._run_call, write_behind=True) if write_behind else self._run_call
        with self._in_flight():
            result = await run_loop(call, step, on_text=on_text, on_step=on_step,
                                    tool_timeout_s=self.settings.tool_timeout_s, started=time.perf_counter())
            if call.options.thread is not None and result.ok:
                await self._add_to_thread(call, result)
            return result

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """The current task (on the runner loop) is work in flight: close() cancels it and waits for it."""
        current = asyncio.current_task()
        if current is not None:
            self._tasks.add(current)
        try:
            yield
        finally:
            self._tasks.discard(current)

    async def _add_to_thread(self, call: Call, result: AgentResult) -> None:
        """The run's exchange joins its thread (off the loop); a storage failure is logged, not raised."""
        options = call.options
        try:
            await runner.to_thread_to_the_end(self.threads.record, options.thread or "", call.task, result,
                                              cell_id=options.cell_id, notebook=options.notebook)
        except ClaudeForceError:
            log.warning("could not add the answer to thread %r", options.thread, exc_info=True)

    async def _run_call(self, call: Call, on_text: TextCallback | None, *,
                        write_behind: bool = False) -> tuple[AgentResult, list[dict[str, Any]]]:
        """One request: from the cache, or sent (budget reserved, paced, retried); recorded."""
        started = time.perf_counter()
        if log.isEnabledFor(logging.INFO):  # (the task's escaping is only worth it for a log line)
            log.info("agent call",
                     extra={"agent": call.agent.name, "model": call.model, "task": safe_log_text(call.task)})
        if call.use_cache:
            key = self.cache.key_for(call.body)
            call = replace(call, cache_key=key)
            if not call.options.refresh:
                # A signed read takes ~10 µs: cheaper on the loop than a hop to the I/O thread.
                # defer_writes: any bookkeeping write waits for the next batch on the I/O thread,
                # so the loop never waits on another process's write lock.
                hit = self.cache.get(key, defer_writes=True)
                if hit is not None:
                    content = outcomes.cached_content(hit)
                    answer = outcomes.from_cache(call, hit, time.perf_counter() - started, offline=self.offline)
                    answer = checked_answer(call, answer, content)
                    if on_text is not None and answer.text:
                        on_text(answer.text)
                    await self._writer.record(answer, call.task, wait=not write_behind)
                    return answer, content
        if not self.offline:
            usable_api_key(self.settings.api_key)  # missing or malformed: refused before anything is sent
        worst_case = self.prices.worst_case(call.model, input_token_bound(*call.input_texts), call.max_tokens)
        reserved = self.budget.reserve(worst_case, call.model)
        result: AgentResult | None = None
        try:
            result, content = await self._sender.send_reply(call, on_text, started)
        except asyncio.CancelledError:
            # Interrupted (stop button, %agent cancel, close): the request was closed. Keep a
            # ledger row so the attempt is visible; its partial cost is unknown to us.
            cancelled = outcomes.from_failure(
                call, asyncio.CancelledError(), 0, time.perf_counter() - started, offline=self.offline
            )
            await asyncio.shield(self._writer.record(cancelled, call.task))
            raise
        finally:
            self.budget.settle(reserved, result.cost_usd if result is not None else None)
        result = checked_answer(call, result, content)
        entry = None
        if result.ok and call.use_cache and result.stop_reason and not result.refused:
            entry = (call.cache_key or "", outcomes.cache_entry(call, result, content))
        await self._writer.record(result, call.task, entry, wait=not write_behind)
        return result, content
