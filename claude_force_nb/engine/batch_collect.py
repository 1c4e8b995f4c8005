"""Collecting a Message Batch: its results read back into the cache, the ledger and AgentResults.

A batch's results come as JSONL in no particular order, one line per request, matched on
``custom_id`` (a request's cache key without ``v1:``). They are merged in chunks: each
chunk's requests are first claimed in the batch store (so two kernels collecting the same
batch never both write a ledger row), then the claimed ones are recorded through the
orchestrator's persistence writer (ledger row; cache entry for a complete answer), then
every result is handed to ``deliver``. Claiming and recording are shielded from
cancellation: an interrupt never leaves a claimed request without its ledger row.

Everything needed to build a result comes from the batch store (agent, model, task head,
run id), not from the original calls: a batch submitted before a kernel restart is
collected the same way as one submitted a second ago.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.results import AgentResult
from ..store.batches import BatchRequest, BatchStore
from ..store.cache.keys import KEY_PREFIX
from . import outcomes, runner
from .retry import with_retries

if TYPE_CHECKING:  # pragma: no cover
    from .orchestrator import Orchestrator

__all__ = [
    "Collected",
    "Shield",
    "cache_key_of",
    "collect",
    "custom_id_of",
    "failed_result",
    "retry_policy",
    "split_requests",
]

T = TypeVar("T")

RECORD_CHUNK = 1000  # results merged per claim and per group of ledger rows
INVALID_REQUEST = "invalid_request_error"  # must be fixed before sending again; other errors may be retried
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Content = list[dict[str, Any]]
Deliver = Callable[[str, AgentResult, Content], None]
Check = Callable[[str, AgentResult, Content], AgentResult]

FAILURES = {
    "canceled": ("batch_canceled", "The batch was cancelled before this request was answered: run it again to "
                                   "submit it again."),
    "expired": ("batch_expired", "The batch expired (after 24 h) before this request was answered: run it again "
                                 "to submit it again."),
    "missing": ("batch_missing", "The batch's results hold no answer for this request: run it again to submit "
                                 "it again."),
}


def custom_id_of(cache_key: str) -> str:
    """A request's ``custom_id``: its cache key without ``v1:`` (64 hex digits: the API takes
    at most 64 of ``[A-Za-z0-9_-]``)."""
    custom_id = cache_key.removeprefix(KEY_PREFIX)
    if _CUSTOM_ID.fullmatch(custom_id) is None:
        raise ValueError(f"cache key {cache_key!r} cannot name a batch request")
    return custom_id


def cache_key_of(custom_id: str) -> str:
    return KEY_PREFIX + custom_id


def split_requests(sizes: Sequence[int], *, max_requests: int, max_bytes: int) -> list[list[int]]:
    """Indexes of ``sizes`` (bytes of each request's JSON), in order, cut into batches of at
    most ``max_requests`` requests and ``max_bytes`` bytes. Every size must fit ``max_bytes``."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, size in enumerate(sizes):
        if size > max_bytes:
            raise ValueError(f"request {index} is {size} bytes, over the {max_bytes}-byte limit of a batch")
        if current and (len(current) >= max_requests or used + size > max_bytes):
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        batches.append(current)
    return batches


def retry_policy(orch: Orchestrator) -> dict[str, Any]:
    """The keywords of ``with_retries`` for batch API calls, from the orchestrator's settings."""
    s = orch.settings
    return {"attempts": s.max_attempts, "base_wait_s": s.retry_base_wait_s, "max_wait_s": s.retry_max_wait_s}


def failed_result(request: BatchRequest, message: str, error_type: str, *, offline: bool) -> AgentResult:
    """A batch request that got no answer: costs nothing, names what happened and the fix."""
    return AgentResult(agent=request.agent, model=request.model, cost_usd=0.0, error=message, error_type=error_type,
                       cache_key=cache_key_of(request.custom_id), offline=offline, run_id=request.run_id, batch=True)


class Shield:
    """Runs work an interrupt must not cut short (a batch submitted and recorded, answers
    claimed and ledgered); ``settle`` waits for it before the store is closed.

    Every store call goes through ``thread``: an interrupted ``asyncio.to_thread`` leaves its
    thread running, and closing the store under a query in flight crashes SQLite."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    async def run(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread, finished even if the caller is interrupted."""
        return await self.run(asyncio.to_thread(fn, *args, **kwargs))

    async def settle(self) -> None:
        """Wait for the work still running (a second interrupt does not cut it short either)."""
        if await runner.wait_out(list(self._tasks)):
            raise asyncio.CancelledError


@dataclass
class Collected:
    """What collecting one batch gave: answers cached, failures, their cost, and the requests
    left to submit again (errored with a retryable error)."""

    answers: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    retry: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    custom_id: str
    request: BatchRequest
    result: AgentResult | None  # None: to be submitted again
    content: Content


async def collect(
    orch: Orchestrator, store: BatchStore, batch_id: str, *, latency_s: float = 0.0,
    retryable: Callable[[str], bool] = lambda custom_id: False, check: Check | None = None,
    deliver: Deliver | None = None, shield: Shield | None = None,
) -> Collected:
    """Merge an ended batch's results (see the module docstring) and mark it collected.

    ``retryable(custom_id)``: whether a request errored with a retryable error is to be
    submitted again (then it gets no result here and is listed in ``Collected.retry``);
    ``check`` may turn an answer into an error (a schema that does not fit)."""
    shield = shield or Shield()
    client = orch._sender._client_on_loop()
    requests = await shield.thread(store.requests, batch_id)
    decoder = await with_retries(lambda: client.messages.batches.results(batch_id), **retry_policy(orch))
    totals = Collected()
    seen: set[str] = set()
    chunk: list[_Outcome] = []
    try:
        async for item in decoder:
            request = requests.get(item.custom_id)
            if request is None or item.custom_id in seen:
                continue  # not a request this home submitted in this batch
            seen.add(item.custom_id)
            chunk.append(_outcome(orch, request, item.result, latency_s, retryable, check))
            if len(chunk) >= RECORD_CHUNK:
                await _merge(orch, store, batch_id, chunk, totals, deliver, shield)
                chunk = []
    finally:
        await decoder.close()
    for custom_id, request in requests.items():
        if custom_id not in seen:
            error_type, text = FAILURES["missing"]
            chunk.append(_Outcome(custom_id, request, failed_result(request, text, error_type, offline=orch.offline),
                                  []))
    if chunk:
        await _merge(orch, store, batch_id, chunk, totals, deliver, shield)
    await shield.thread(store.finish, batch_id)
    return totals


def _outcome(orch: Orchestrator, request: BatchRequest, result: Any, latency_s: float,
             retryable: Callable[[str], bool], check: Check | None) -> _Outcome:
    """One results line as an AgentResult (None when it is to be submitted again)."""
    custom_id = request.custom_id
    if result.type == "succeeded":
        message = result.message.to_dict()
        answer = outcomes.answer_result(
            request.agent, message, model=request.model, cache_key=cache_key_of(custom_id), run_id=request.run_id,
            request_id=None, attempts=1, latency=latency_s, prices=orch.prices, offline=orch.offline, batch=True)
        content = outcomes.content_blocks(message)
        return _Outcome(custom_id, request, check(custom_id, answer, content) if check else answer, content)
    if result.type == "errored":
        error = result.error.error
        if error.type != INVALID_REQUEST and retryable(custom_id):
            return _Outcome(custom_id, request, None, [])
        fix = "fix the request before sending it again" if error.type == INVALID_REQUEST else "run it again later"
        text = f"The batch request failed ({error.type}): {error.message} — {fix}."
        return _Outcome(custom_id, request, failed_result(request, text, "batch_errored", offline=orch.offline), [])
    error_type, text = FAILURES.get(result.type, FAILURES["missing"])
    return _Outcome(custom_id, request, failed_result(request, text, error_type, offline=orch.offline), [])


async def _merge(orch: Orchestrator, store: BatchStore, batch_id: str, chunk: list[_Outcome], totals: Collected,
                 deliver: Deliver | None, shield: Shield) -> None:
    """Claim the chunk, record the claimed results (their cost counts as spent), then
    deliver every result."""

    async def persist() -> None:
        costs = {o.custom_id: (o.result.cost_usd if o.result is not None and o.result.ok else 0.0) for o in chunk}
        claimed = await shield.thread(store.claim, batch_id, costs)
        await asyncio.gather(*(
            orch._writer.record(o.result, o.request.task_head, _entry(o))
            for o in chunk if o.result is not None and o.custom_id in claimed))
        orch.budget.settle(0.0, sum(costs[custom_id] or 0.0 for custom_id in claimed))

    await shield.run(persist())
    for o in chunk:
        if o.result is None:
            totals.retry.append(o.custom_id)
            continue
        if o.result.ok:
            totals.answers += 1
            totals.cost_usd += o.result.cost_usd or 0.0
        else:
            totals.failed += 1
        if deliver is not None:
            deliver(o.custom_id, o.result, o.content)


def _entry(o: _Outcome) -> tuple[str, Any] | None:
    """The cache entry of a complete, successful answer (as the orchestrator caches them)."""
    result = o.result
    if result is None or not result.ok or not result.stop_reason or result.refused:
        return None
    return result.cache_key or cache_key_of(o.custom_id), outcomes.answer_entry(result, o.request.task_head,
                                                                                 o.content)
