"""map: one agent over every row of a DataFrame, through a bounded window of calls.

A map run has two passes over the rows, each one row at a time:

1. the plan: every row's prompt rendered and its request built, to count the rows the
   cache already holds and estimate the tokens and cost of the rest (``MapEstimate``).
   With a budget set, a run whose estimate does not fit is refused here, with the
   figures; ``dry_run`` stops here.
2. the run: ``window`` workers (by default ``Settings.max_concurrent``) take the next
   row, run it as an ordinary call (cached, ledgered, paced, retried) and keep only its
   output columns. 100,000 rows never mean 100,000 coroutines or results held twice: a
   row is rendered when a worker takes it, and what is kept of it is a few plain values.

Finished rows are written to the cache and the ledger behind the run (a bounded backlog,
persistence.py), and the run waits for those writes when it ends or is interrupted, so an
interrupted run (its unfinished rows say so in ``error``) resumes when it is run again:
the finished rows are cache hits and only the rest is sent. With ``batch=True`` the rows
the cache does not hold go to the Message Batches API at half price (batching.py) instead.

The result is the caller's frame with the answer column (or one column per schema field,
typed as the schema says), ``cost_usd``, ``cached`` and ``error`` added by the frame's
own ``assign``: the engine reads and extends a DataFrame but never imports pandas.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..core.errors import BudgetExceededError, ClaudeForceError, InvalidInputError
from ..core.options import RunOptions
from ..core.results import AgentResult
from . import outcomes, runner
from .batching import BatchProgress, run_batched
from .limits import format_usd
from .map_progress import TextProgress
from .row_prompts import RowPrompts
from .tool_loop import checked_answer

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..core.agents import AgentDefinition
    from .orchestrator import Orchestrator
    from .requests import Call

__all__ = ["INTERRUPTED", "EXPECTED_OUTPUT_TOKENS", "MapEstimate", "MapProgress", "MapRun"]

EXPECTED_OUTPUT_TOKENS = 300
"""Output tokens a row is expected to take when none of the map's rows is cached yet; once
some are (a first run on ``df.head()``, an interrupted run), their mean is used instead.
Never above max_tokens; the worst case, max_tokens a row, is shown beside it."""
INTERRUPTED = "not run: the map was interrupted; run it again to resume (finished rows are cached)"


@dataclass(frozen=True)
class MapEstimate:
    """What a map run is expected to cost before it starts (tokens: 3 characters a token)."""

    rows: int
    cached: int  # rows the cache already holds: free
    to_send: int
    input_tokens: int  # of the rows to send
    output_tokens: int  # expected: what the cached rows took on average, else EXPECTED_OUTPUT_TOKENS a row
    max_output_tokens: int  # max_tokens a row
    cost_usd: float | None  # expected; None for a model without a price
    worst_cost_usd: float | None  # every row using max_tokens
    model: str
    batch: bool = False

    def __str__(self) -> str:
        price = "batch price, " if self.batch else ""
        cost = "unknown (no price for this model)" if self.cost_usd is None else (
            f"~{format_usd(self.cost_usd)} (at most {format_usd(self.worst_cost_usd or 0.0)})")
        return (
            f"{self.rows:,} rows: {self.cached:,} cached, {self.to_send:,} to send to {self.model} "
            f"(~{self.input_tokens:,} input + ~{self.output_tokens:,} output tokens); cost {price}{cost}"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython shows an estimate (``%%agent ... --dry-run``'s value) as its one line."""
        printer.text(str(self))


@dataclass(frozen=True)
class MapProgress:
    """Where a map run is: what a progress bar shows."""

    total: int
    done: int = 0  # rows finished, whatever their outcome
    cached: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    estimate: MapEstimate | None = None
    batch: BatchProgress | None = None  # batch mode: the request counts of the batches waited for

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (cache hits included), or None before the first row."""
        if not self.done or not self.elapsed_s:
            return None
        return (self.total - self.done) * self.elapsed_s / self.done


ProgressCallback = Callable[[MapProgress], Any]


class MapRun:
    """One map of ``agent`` over ``frame``; ``plan`` then ``execute``, then ``frame_out``.

    Built (and checked) on the caller's thread, run on the runner loop. The output columns
    fill in as rows finish, so a run stopped halfway still has every finished row.
    """

    def __init__(self, orch: Orchestrator, frame: Any, agent: str, prompt: str, *, into: str = "answer",
                 window: int | None = None, on_progress: ProgressCallback | None = None,
                 options: RunOptions) -> None:
        if not hasattr(frame, "itertuples") or not hasattr(frame, "columns"):
            raise InvalidInputError(f"map needs a pandas DataFrame, not {type(frame).__name__}: pass df.")
        if options.thread is not None or options.tools is not None:
            raise InvalidInputError("map runs each row on its own: thread= and tools= are not available here.")
        self.orch = orch
        self.frame = frame
        self.prompts = RowPrompts(prompt, list(frame.columns))
        self.agent: AgentDefinition = orch.registry.get(agent)
        self.options = replace(options, stream=False)  # nobody reads a row's text as it arrives
        # By default as many rows as may be sent at once: a row beyond that would only wait,
        # its request built, for a place (measured: ~2x the garbage collection per row).
        self.window = orch.settings.max_concurrent if window is None else window
        if self.window < 1:
            raise InvalidInputError(f"window={window} must be at least 1.")
        self.on_progress = on_progress
        self.total = len(frame)
        self.columns = self._output_columns(into)
        self.values: dict[str, list[Any]] = {name: [None] * self.total for name in self.columns.values()}
        self.finished = [False] * self.total
        self.progress = MapProgress(self.total)
        self.started: float | None = None  # perf_counter() when the first row was taken
        self.wall_started = time.time()  # when execute() started, on the cache's clock
        self._taken: dict[int, str] = {}  # rows a worker holds: index -> prompt
        self.stopped = threading.Event()  # set when execute() has returned or raised
        self._stop_planning = threading.Event()  # plan() stops at its next row

    @classmethod
    def of(cls, orch: Orchestrator, frame: Any, agent: str, prompt: str, *, into: str = "answer",
           window: int | None = None, progress: bool | ProgressCallback = True, **options: Any) -> MapRun:
        """A run from ``map``'s keywords: ``progress`` True is the text bar, False none, else a callback."""
        on_progress = TextProgress() if progress is True else (progress or None)
        return cls(orch, frame, agent, prompt, into=into, window=window, on_progress=on_progress,
                   options=RunOptions.from_kwargs(**options))

    async def run(self, *, batch: bool = False, poll_s: float = 5.0) -> None:
        """``execute`` (or in batch mode ``execute_batched``), on the runner loop."""
        await (self.execute_batched(poll_s=poll_s) if batch else self.execute())

    def _output_columns(self, into: str) -> dict[str, str]:
        """Output column of each value kept: the answer (or each schema field), cost, cached, error."""
        if not isinstance(into, str) or not into:
            raise InvalidInputError(f"into={into!r} must name the answer column, e.g. into='label'.")
        taken = {str(column) for column in self.frame.columns}
        if self.options.schema is None:
            if into in taken:
                raise InvalidInputError(f"The DataFrame already has a column {into!r}: pass into= another name.")
            answer = {"text": into}
        else:
            answer = {f"field:{name}": f"{into}.{name}" if name in taken else name
                      for name in self.options.schema.columns}
        extras = {kind: f"{into}_{kind}" if kind in taken else kind for kind in ("cost_usd", "cached", "error")}
        return answer | extras

    # -- the plan ------------------------------------------------------------------------

    async def plan_off_loop(self, *, batch: bool = False) -> MapEstimate:
        """``plan`` on a worker thread (it reads every row). Interrupted, the plan stops at its
        next row and is waited for: it reads the cache, which must not be closed under it."""
        return await runner.to_thread_to_the_end(self.plan, batch=batch, stop=self._stop_planning.set)

    def plan(self, *, batch: bool = False) -> MapEstimate:
        """Count the cached rows and estimate the rest; refuse a run the budget cannot pay for."""
        orch, cached, cached_output, input_tokens, model = self.orch, 0, 0, 0, ""
        for task in self.prompts.rows(self.frame):
            if self._stop_planning.is_set():
                break
            try:
                call = orch._prepare(self.agent, task, self.options)
            except ClaudeForceError:
                continue  # the run reports this row's problem in its error column
            model = call.model
            hit = orch.cache.peek(orch.cache.key_for(call.body)) if call.use_cache and not call.options.refresh \
                else None
            if hit is not None:
                cached += 1
                cached_output += hit.usage.output_tokens
            else:
                input_tokens += call.estimated_input_tokens
        resolved = self.options.resolve(self.agent, orch.settings)
        model, max_tokens = model or resolved.model or orch.settings.default_model, resolved.max_tokens or 0
        to_send = self.total - cached
        # what this map's answered rows took, else the heuristic; never above max_tokens
        per_row = round(cached_output / cached) if cached else EXPECTED_OUTPUT_TOKENS
        per_row = min(max_tokens, per_row) if max_tokens else per_row
        estimate = MapEstimate(
            rows=self.total, cached=cached, to_send=to_send, input_tokens=input_tokens,
            output_tokens=per_row * to_send, max_output_tokens=max_tokens,
            cost_usd=self._cost(model, input_tokens, per_row * to_send, batch),
            worst_cost_usd=self._cost(model, input_tokens, max_tokens * to_send, batch),
            model=model, batch=batch,
        )
        self.progress = replace(self.progress, estimate=estimate)
        if not self._stop_planning.is_set():  # a stopped pass counted only some rows
            self._check_budget(estimate)
        return estimate

    def _cost(self, model: str, input_tokens: int, output_tokens: int, batch: bool) -> float | None:
        from ..core.results import Usage

        return self.orch.prices.cost(model, Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                                     batch=batch)

    def _check_budget(self, estimate: MapEstimate) -> None:
        budget = self.orch.budget
        if budget.budget_usd is None or estimate.cost_usd is None:
            return
        left = budget.budget_usd - budget.spent_usd - budget.reserved_usd
        if estimate.cost_usd > left:
            raise BudgetExceededError(
                f"This map is estimated at {format_usd(estimate.cost_usd)} ({estimate.to_send:,} rows to send, "
                f"~{estimate.input_tokens + estimate.output_tokens:,} tokens) but the budget has "
                f"{format_usd(max(left, 0.0))} left: raise the budget (%agent budget USD), lower max_tokens, "
                f"or map fewer rows (df.head(n))."
            )

    # -- the run -------------------------------------------------------------------------

    async def execute(self) -> None:
        """Run every row through ``window`` workers; on cancellation, stop them and keep what finished."""
        self.started = self.started or time.perf_counter()
        self.wall_started = time.time()
        if self.on_progress is not None:
            self.on_progress(self.progress)  # the bar (and the estimate) before the first row
        rows = enumerate(self.prompts.rows(self.frame))
        workers = [asyncio.ensure_future(self._worker(rows)) for _ in range(min(self.window, self.total))]
        try:
            done = await asyncio.gather(*workers, return_exceptions=True)
            await self.orch._writer.drain()  # rows write behind (persistence.py): all of them are in now
        except BaseException:  # interrupted: stop the workers, keep the finished rows' records
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await asyncio.shield(self.orch._writer.drain())
            self._recover_taken()
            raise
        finally:
            self._mark_unfinished()
            self.stopped.set()
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome  # a bug: its traceback, after the other rows finished

    async def execute_batched(self, *, poll_s: float = 5.0) -> None:
        """Batch mode: rows the cache holds are read from it, the rest go to the Message Batches
        API (batching.py) and fill in as their batch ends. Cancelled, it stops waiting, never a
        batch: running the map again waits for the same batch instead of submitting again."""
        self.started = self.started or time.perf_counter()
        if self.on_progress is not None:
            self.on_progress(self.progress)
        try:
            pending = await self._batch_rows()
            await run_batched(self.orch, pending, on_result=self.keep, on_progress=self._batch_progress,
                              poll_s=poll_s)
        finally:
            self._mark_unfinished()
            self.stopped.set()

    async def _batch_rows(self) -> list[tuple[int, Call]]:
        """Each row's call with its cache key; cached and refused rows are kept at once."""
        orch, pending = self.orch, []
        for index, task in enumerate(self.prompts.rows(self.frame)):
            try:
                call = orch._prepare(self.agent, task, self.options)
            except ClaudeForceError as exc:
                self.keep(index, None, refused=exc)
                continue
            call = replace(call, cache_key=orch.cache.key_for(call.body))
            if call.use_cache and not call.options.refresh and orch.cache.peek(call.cache_key or "") is not None:
                self.keep(index, await orch._run(self.agent, task, self.options, None))  # a hit, ledgered
            else:
                pending.append((index, call))
        return pending

    def _batch_progress(self, batch: BatchProgress) -> None:
        self.progress = replace(self.progress, batch=batch, elapsed_s=time.perf_counter() - (self.started or 0.0))
        if self.on_progress is not None:
            self.on_progress(self.progress)

    async def _worker(self, rows: Any) -> None:
        for index, task in rows:
            self._taken[index] = task
            try:
                result = await self.orch._run(self.agent, task, self.options, None, write_behind=True)
            except ClaudeForceError as exc:  # this row's prompt or options are refused: the others go on
                self.keep(index, None, refused=exc)
            else:
                self.keep(index, result)

    def keep(self, index: int, result: AgentResult | None, *, refused: ClaudeForceError | None = None) -> None:
        """Row ``index`` finished (with ``result``, or refused before sending): keep its values, count it."""
        self.started = self.started or time.perf_counter()
        self._taken.pop(index, None)
        self._keep(index, result, refused)
        failed = refused is not None or (result is not None and not result.ok)
        cost = (result.cost_usd or 0.0) if result is not None else 0.0
        p = self.progress
        self.progress = replace(p, done=p.done + 1, cached=p.cached + bool(result and result.cached),
                                failed=p.failed + failed, cost_usd=p.cost_usd + cost,
                                elapsed_s=time.perf_counter() - self.started)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _keep(self, index: int, result: AgentResult | None, refused: ClaudeForceError | None) -> None:
        columns, values = self.columns, self.values
        self.finished[index] = True
        if result is None:
            values[columns["error"]][index] = str(refused)
            values[columns["cached"]][index] = False
            return
        values[columns["cost_usd"]][index] = result.cost_usd
        values[columns["cached"]][index] = result.cached
        values[columns["error"]][index] = result.error
        if not result.ok:
            return
        if "text" in columns:
            values[columns["text"]][index] = result.text
        else:
            assert self.options.schema is not None
            fields = self.options.schema.fields_of(result.data)
            for name in self.options.schema.columns:
                values[columns[f"field:{name}"]][index] = fields.get(name)

    def _recover_taken(self) -> None:
        """After an interrupt: a row whose answer arrived in that very instant is in the cache
        (and the ledger) though its worker was stopped before keeping it. Read those rows (at
        most ``window``) back from the cache, so the partial frame shows every answer it has."""
        orch = self.orch
        for index, task in list(self._taken.items()):
            try:
                call = orch._prepare(self.agent, task, self.options)
            except ClaudeForceError:
                continue
            key = orch.cache.key_for(call.body)
            hit = orch.cache.get(key, defer_writes=True) if call.use_cache else None
            if hit is None:
                continue
            call = replace(call, cache_key=key)
            answer = checked_answer(call, outcomes.from_cache(call, hit, 0.0, offline=orch.offline),
                                    outcomes.cached_content(hit))
            if hit.created >= self.wall_started:  # made by this run: paid for, not a hit
                answer = replace(answer, cached=False, cost_usd=hit.cost_usd, saved_usd=0.0)
            self.keep(index, answer)

    def _mark_unfinished(self) -> None:
        errors = self.values[self.columns["error"]]
        for index, finished in enumerate(self.finished):
            if not finished:
                errors[index] = INTERRUPTED

    # -- the result ----------------------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        return not all(self.finished)

    def frame_out(self) -> pd.DataFrame:
        """The input frame with the output columns added (schema fields typed as the schema says)."""
        out = self.frame.assign(**{name: self.values[name] for name in self.columns.values()})
        dtypes: dict[str, Any] = {self.columns["cost_usd"]: "float64", self.columns["cached"]: "boolean"}
        if self.options.schema is not None:
            for name, dtype in self.options.schema.column_dtypes().items():
                dtypes[self.columns[f"field:{name}"]] = dtype
        out = out.astype(dtypes)
        out.attrs["claude_force"] = {
            "rows": self.total, "done": self.progress.done, "cached": self.progress.cached,
            "failed": self.progress.failed, "cost_usd": self.progress.cost_usd, "interrupted": self.interrupted,
            "batch_ids": list(self.progress.batch.batch_ids) if self.progress.batch is not None else [],
        }
        return out
