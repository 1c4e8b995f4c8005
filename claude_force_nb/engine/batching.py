"""Batch mode: calls answered through the Message Batches API, at half the price.

``run_batched`` takes calls that missed the cache, each with its cache key, and:

- submits each distinct request once (two rows asking the same share one request; the
  ``custom_id`` is the cache key without ``v1:``), in batches of at most 100,000 requests
  and 256 MB of JSON; a request bigger than that alone is an error result for its rows;
- does not submit a request that already waits in a batch of this home not yet collected
  (the same cell run again, even after a kernel restart): it waits for that batch instead;
- records every batch and its requests in ``batches.sqlite3`` (store/batches.py) as soon
  as it is created, even if the wait is interrupted at that moment;
- polls each batch every ``poll_s`` seconds and reports a BatchProgress; as each batch
  ends, its results are merged (batch_collect.py): answers priced at batch rates land in the
  cache and the ledger (``batch`` = 1), every row gets its AgentResult through
  ``on_result``, and requests that errored with a retryable error are submitted once more,
  in a new batch. Invalid, expired and cancelled requests come back as error results.

Interrupting (cancelling) the wait never cancels a batch: it stays pending in the store,
so running the same rows again, or ``resume_batch``, collects it. ``resume_batch`` needs
nothing but the batch id: it waits for the batch, writes its cache entries and ledger rows,
marks it collected and returns a BatchSummary; a batch is never collected twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anthropic
from anthropic.types.messages import MessageBatch

from ..core.results import AgentResult, task_head
from ..store.batches import COUNT_NAMES, BatchRequest, BatchStore
from . import outcomes
from .batch_collect import (
    FAILURES,
    Collected,
    Shield,
    collect,
    custom_id_of,
    failed_result,
    retry_policy,
    split_requests,
)
from .retry import is_retryable, with_retries
from .tool_loop import checked_answer

if TYPE_CHECKING:  # pragma: no cover
    from .orchestrator import Orchestrator
    from .requests import Call

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_REQUESTS", "BatchProgress", "BatchSummary", "batch_list", "batch_params",
           "cancel_batch", "resume_batch", "run_batched"]

log = logging.getLogger(__name__)

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256_000_000  # the API's 256 MB, counted in decimal megabytes to stay under it either way
NOT_FOUND_TRIES = 3  # a batch may 404 just after it was created (anthropic-sdk-python #1432)

Sleep = Callable[[float], Awaitable[None]]
ProgressCallback = Callable[["BatchProgress"], None]


@dataclass(frozen=True)
class BatchProgress:
    """What a progress bar shows while waiting: request counts over the batches waited for."""

    batch_ids: tuple[str, ...]
    total: int  # requests in these batches
    succeeded: int
    errored: int
    canceled: int
    expired: int
    processing: int
    cost_usd: float  # of the results merged so far (batch price)

    @property
    def done(self) -> int:
        return self.total - self.processing

    def line(self) -> str:
        """'Batch msgbatch_…: 150/200 requests done (140 succeeded, 10 errored) · $0.0123 so far'."""
        which = f"Batch {self.batch_ids[0]}" if len(self.batch_ids) == 1 else f"{len(self.batch_ids)} batches"
        parts = [f"{getattr(self, name):,} {name}" for name in COUNT_NAMES[1:] if getattr(self, name)]
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"{which}: {self.done:,}/{self.total:,} requests done{detail} · ${self.cost_usd:.4f} so far"


@dataclass(frozen=True)
class BatchSummary:
    """What ``resume_batch`` / ``cancel_batch`` report about one batch."""

    batch_id: str
    state: str
    answers: int  # answers now in the cache
    failed: int  # requests without an answer (see the ledger's error_type)
    cost_usd: float
    already_collected: bool = False

    def line(self) -> str:
        if self.state not in ("ended", "missing"):
            return f"Batch {self.batch_id} is {self.state}: `%agent batch resume {self.batch_id}` collects it."
        if self.state == "missing":
            return f"Batch {self.batch_id} is unknown to the API: its {self.failed} requests got no answer."
        again = " (already collected)" if self.already_collected else ""
        return (f"Batch {self.batch_id} ended{again}: {self.answers:,} answers cached, {self.failed:,} failed "
                f"(see the ledger) · ${self.cost_usd:.4f}")


def batch_params(call: Call) -> dict[str, Any]:
    """A batch request's ``params``: the call's body as it is (temperature included), never streamed."""
    return {name: value for name, value in call.body.items() if name != "stream"}


class _Waiter:
    """Polls batches until each has ended, reporting progress; ``on_ended`` merges one."""

    def __init__(self, orch: Orchestrator, store: BatchStore, shield: Shield, on_progress: ProgressCallback | None,
                 poll_s: float, sleep: Sleep) -> None:
        self.orch, self.store, self.shield = orch, store, shield
        self.on_progress, self.poll_s, self.sleep = on_progress, poll_s, sleep
        self.open: set[str] = set()
        self.counts: dict[str, dict[str, int]] = {}  # every batch waited for, ended ones included
        self.totals: dict[str, int] = {}
        self.misses: dict[str, int] = {}
        self.cost_usd = 0.0

    def add(self, batch_id: str, requests: int) -> None:
        self.open.add(batch_id)
        self.totals[batch_id] = requests
        self.counts[batch_id] = {"processing": requests}
        self.report()  # the bar knows the batch as soon as it exists (an interrupt can name it)

    async def wait(self, on_ended: Callable[[str, Any], Awaitable[None]]) -> None:
        """Until every batch has ended (``on_ended(id, batch)``; batch None: the API does not know it)."""
        while self.open:
            for batch_id in sorted(self.open):
                batch, gone = await self._retrieve(batch_id)
                if batch is not None:
                    counts = batch.request_counts.model_dump()
                    self.counts[batch_id] = counts
                    ended = batch.ended_at.timestamp() if batch.ended_at else None
                    await self.shield.thread(self.store.update, batch_id, batch.processing_status, counts, ended=ended)
                if gone or (batch is not None and batch.processing_status == "ended"):
                    self.open.discard(batch_id)
                    await on_ended(batch_id, batch)
            self.report()
            if self.open:
                await self.sleep(self.poll_s)

    async def _retrieve(self, batch_id: str) -> tuple[Any, bool]:
        """(the batch or None, whether it is gone); a passing failure is logged and tried next round."""
        try:
            return await self.orch._sender._client_on_loop().messages.batches.retrieve(batch_id), False
        except anthropic.NotFoundError:
            self.misses[batch_id] = self.misses.get(batch_id, 0) + 1
            return None, self.misses[batch_id] >= NOT_FOUND_TRIES
        except Exception as exc:
            if not is_retryable(exc):
                raise
            log.warning("could not read batch %s (%s); trying again in %.0f s", batch_id, exc, self.poll_s)
            return None, False

    def report(self) -> None:
        if self.on_progress is None:
            return
        sums = {name: sum(c.get(name, 0) for c in self.counts.values()) for name in COUNT_NAMES}
        self.on_progress(BatchProgress(batch_ids=tuple(self.counts), total=sum(self.totals.values()),
                                       cost_usd=self.cost_usd, **sums))


class _BatchRun:
    """One ``run_batched``: rows by custom_id, what was submitted, what came back."""

    def __init__(self, orch: Orchestrator, store: BatchStore, waiter: _Waiter, shield: Shield,
                 on_result: Callable[[int, AgentResult], None], max_requests: int, max_bytes: int) -> None:
        self.orch, self.store, self.waiter, self.shield, self.on_result = orch, store, waiter, shield, on_result
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.rows: dict[str, list[int]] = {}  # custom_id -> row indexes still waiting for a result
        self.calls: dict[str, Call] = {}
        self.retried: set[str] = set()

    async def start(self, calls: Sequence[tuple[int, Call]]) -> None:
        for row, call in calls:
            custom_id = custom_id_of(call.cache_key or self.orch.cache.key_for(call.body))
            self.rows.setdefault(custom_id, []).append(row)
            self.calls.setdefault(custom_id, call)
        pending = await self.shield.thread(self.store.pending, self.rows)
        for batch_id in dict.fromkeys(pending.values()):
            record = await self.shield.thread(self.store.get, batch_id)
            self.waiter.add(batch_id, record.requests)
        await self.submit([custom_id for custom_id in self.rows if custom_id not in pending])

    async def submit(self, custom_ids: list[str]) -> None:
        """Split the requests by their encoded size, then submit each batch. A batch's body is
        encoded when it is sent, so at most one (up to 256 MB) is held at a time."""
        requests: list[str] = []
        sizes: list[int] = []
        failed = []
        for custom_id in custom_ids:
            size = len(self._encoded(custom_id)) + 1  # with the comma between requests
            if size > self.max_bytes:
                text = (f"The request is {size:,} bytes of JSON, over the {self.max_bytes:,} bytes a batch takes: "
                        "shorten the task or run it without batch mode.")
                failed.append((custom_id, failed_result(self._request(custom_id), text, "request_too_large",
                                                        offline=self.orch.offline)))
            else:
                requests.append(custom_id)
                sizes.append(size)
        await self._fail(failed)
        for chunk in split_requests(sizes, max_requests=self.max_requests, max_bytes=self.max_bytes):
            await self.shield.run(self._create([requests[i] for i in chunk]))

    def _encoded(self, custom_id: str) -> bytes:
        request = {"custom_id": custom_id, "params": batch_params(self.calls[custom_id])}
        return json.dumps(request, ensure_ascii=False).encode("utf-8", "surrogatepass")

    def _request(self, custom_id: str) -> BatchRequest:
        call = self.calls[custom_id]
        return BatchRequest(custom_id, call.agent.name, call.model, task_head(call.task), call.run_id)

    async def _create(self, requests: list[str]) -> None:
        """Submit one batch and record it (shielded: an interrupt never loses a submitted batch).

        The body (up to 256 MB) is encoded here once, into one buffer, and posted as it is:
        the SDK's ``batches.create`` would copy the requests and encode them again."""
        client = self.orch._sender._client_on_loop()
        buffer = io.BytesIO()
        buffer.write(b'{"requests":[')
        for i, custom_id in enumerate(requests):
            buffer.write(b"," if i else b"")
            buffer.write(self._encoded(custom_id))
        buffer.write(b"]}")
        body = buffer.getvalue()  # CPython hands over the buffer's bytes rather than copying them
        del buffer
        try:
            batch = await with_retries(
                lambda: client.post("/v1/messages/batches", cast_to=MessageBatch, content=body,
                                    options={"headers": {"content-type": "application/json"}}),
                **retry_policy(self.orch))
        except anthropic.AnthropicError as exc:
            message, error_type = outcomes.describe_failure(exc, 1)
            await self._fail([(cid, failed_result(self._request(cid), message, error_type, offline=self.orch.offline))
                              for cid in requests])
            return
        infos = [self._request(cid) for cid in requests]
        await self.shield.thread(self.store.add, batch.id, infos, state=batch.processing_status,
                                created=batch.created_at.timestamp())
        self.waiter.add(batch.id, len(requests))

    async def _fail(self, failed: list[tuple[str, AgentResult]]) -> None:
        """Rows that could not be submitted: their ledger rows, then their results."""
        await asyncio.gather(*(self.orch._writer.record(result, self.calls[cid].task) for cid, result in failed))
        for custom_id, result in failed:
            self.deliver(custom_id, result, [])

    def retryable(self, custom_id: str) -> bool:
        """Whether a request that errored is submitted again (once, and only one of ours)."""
        if custom_id not in self.calls or custom_id in self.retried:
            return False
        self.retried.add(custom_id)
        return True

    def check(self, custom_id: str, result: AgentResult, content: list[dict[str, Any]]) -> AgentResult:
        call = self.calls.get(custom_id)
        return result if call is None else checked_answer(call, result, content)

    def deliver(self, custom_id: str, result: AgentResult, content: list[dict[str, Any]]) -> None:
        """Every row asking ``custom_id`` gets its result; a repeated row gets it as a cache hit."""
        rows = self.rows.pop(custom_id, None)
        if not rows:
            return
        self.on_result(rows[0], result)
        again = result if not result.ok else dataclasses.replace(
            result, cached=True, cost_usd=0.0, saved_usd=result.cost_usd or 0.0, batch=False, latency_s=0.0)
        for row in rows[1:]:
            self.on_result(row, again)

    async def ended(self, batch_id: str, batch: Any) -> None:
        if batch is None:
            await self._gone(batch_id)
            return
        latency = (batch.ended_at - batch.created_at).total_seconds() if batch.ended_at else 0.0
        got = await collect(self.orch, self.store, batch_id, latency_s=latency, retryable=self.retryable,
                            check=self.check, deliver=self.deliver, shield=self.shield)
        self.waiter.cost_usd += got.cost_usd
        if got.retry:
            await self.submit(got.retry)

    async def _gone(self, batch_id: str) -> None:
        requests = await self.shield.thread(self.store.requests, batch_id)
        await self.shield.thread(self.store.finish, batch_id, "missing")
        error_type, text = FAILURES["missing"]
        for custom_id, request in requests.items():
            if custom_id in self.rows:
                self.deliver(custom_id, failed_result(request, text, error_type, offline=self.orch.offline), [])

    def leftovers(self) -> list[tuple[int, AgentResult]]:
        """Rows that got no result (their batch answered for other requests only)."""
        error_type, text = FAILURES["missing"]
        return [(row, failed_result(self._request(cid), text, error_type, offline=self.orch.offline))
                for cid, rows in self.rows.items() for row in rows]


@contextlib.asynccontextmanager
async def _batch_store(orch: Orchestrator) -> AsyncIterator[tuple[BatchStore, Shield]]:
    """This home's batch store and a Shield for its calls. On the way out (an interrupt
    too) the shielded work finishes first, then the store closes."""
    store = await asyncio.to_thread(BatchStore, orch.settings)
    shield = Shield()
    with orch._in_flight():  # closing the orchestrator waits for this work too
        try:
            yield store, shield
        finally:
            try:
                await shield.settle()
            finally:
                store.close()


async def run_batched(
    orch: Orchestrator,
    calls: Sequence[tuple[int, Call]],
    *,
    on_result: Callable[[int, AgentResult], None],
    on_progress: ProgressCallback | None = None,
    poll_s: float = 5.0,
    sleep: Sleep = asyncio.sleep,
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> None:
    """Answer ``calls`` ((row index, call with its cache key), all cache misses) through the
    Message Batches API; ``on_result(row, result)`` once per row, as batches end (see the
    module docstring). Runs on the runner loop; cancelling it stops the wait, never a batch."""
    async with _batch_store(orch) as (store, shield):
        waiter = _Waiter(orch, store, shield, on_progress, poll_s, sleep)
        run = _BatchRun(orch, store, waiter, shield, on_result, max_requests, max_bytes)
        await run.start(calls)
        await waiter.wait(run.ended)
        for row, result in run.leftovers():
            on_result(row, result)


async def resume_batch(orch: Orchestrator, batch_id: str, *, on_progress: ProgressCallback | None = None,
                       poll_s: float = 5.0, sleep: Sleep = asyncio.sleep) -> BatchSummary:
    """Wait for a batch of this home (submitted by any kernel, before a restart too), then
    write its answers to the cache and ledger. UnknownBatchError for an id it never submitted."""
    async with _batch_store(orch) as (store, shield):
        record = await shield.thread(store.get, batch_id)
        if record.collected:
            return BatchSummary(batch_id, record.state, record.succeeded,
                                record.errored + record.canceled + record.expired, record.cost_usd,
                                already_collected=True)
        waiter = _Waiter(orch, store, shield, on_progress, poll_s, sleep)
        waiter.add(batch_id, record.requests)
        got = Collected()

        async def ended(_: str, batch: Any) -> None:
            nonlocal got
            if batch is None:
                await shield.thread(store.finish, batch_id, "missing")
                got = Collected(failed=record.requests)
                return
            latency = (batch.ended_at - batch.created_at).total_seconds() if batch.ended_at else 0.0
            got = await collect(orch, store, batch_id, latency_s=latency, shield=shield)
            waiter.cost_usd += got.cost_usd

        await waiter.wait(ended)
        state = (await shield.thread(store.get, batch_id)).state
        return BatchSummary(batch_id, state, got.answers, got.failed, got.cost_usd)


async def cancel_batch(orch: Orchestrator, batch_id: str) -> BatchSummary:
    """Ask the API to cancel a batch of this home. It stays pending: ``resume_batch`` then
    collects what it answered before it stopped (answered requests are billed)."""
    async with _batch_store(orch) as (store, shield):
        record = await shield.thread(store.get, batch_id)
        client = orch._sender._client_on_loop()
        batch = await with_retries(lambda: client.messages.batches.cancel(batch_id), **retry_policy(orch))
        await shield.thread(store.cancel_requested, batch_id, batch.processing_status)
        counts = batch.request_counts
        return BatchSummary(batch_id, batch.processing_status, counts.succeeded,
                            counts.errored + counts.canceled + counts.expired, record.cost_usd)


def batch_list(orch: Orchestrator) -> list[dict[str, Any]]:
    """Every batch of this home, newest first, as dicts (what ``%agent batches`` shows)."""
    with BatchStore(orch.settings) as store:
        return [record.to_dict() for record in store.batches()]
