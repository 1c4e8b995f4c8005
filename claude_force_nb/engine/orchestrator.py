"""Orchestrator: runs agents concurrently over AsyncAnthropic, with cache, ledger and limits.

All work happens on the runner's private loop (see runner.py), where the client, the
semaphore and the rate limiter live. ``run``/``run_many`` are awaitable from any loop;
``run_sync``/``run_many_sync`` block (notebook-safe; an interrupt cancels in-flight calls).

Outcomes: a problem found before anything is sent (unknown agent, bad input, missing
key, budget) raises a ClaudeForceError. Anything that happened on the wire (API errors
after retries, an empty answer, a truncated stream, an open circuit) comes back as an
AgentResult with ``error`` set — call ``result.raise_for_error()`` to turn it into an
exception. ``run_many`` never raises for one job: every job gets a result, in order.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import anthropic
import httpx2

from . import runner
from ..core.agents import AgentDefinition, AgentRegistry
from ..store.cache import CachedResponse, ResponseCache
from ..core.options import MAX_OUTPUT_TOKENS, RunOptions
from ..core.errors import (
    APICallError,
    ClaudeForceError,
    EmptyResponseError,
    IncompleteResponseError,
    InvalidInputError,
    MissingAPIKeyError,
)
from ..store.ledger import Ledger
from .limits import BudgetGuard, RateLimiter
from ..core.pricing import price_table
from ..core.results import AgentResult, Usage
from .retry import CircuitBreaker, is_retryable, with_retries
from ..core.settings import Settings

__all__ = ["MAX_OUTPUT_TOKENS", "Job", "Orchestrator", "safe_log_text"]

log = logging.getLogger(__name__)

# Anthropic caches a system prefix only above ~1024-4096 tokens; below that the
# cache_control marker is silently ignored, so only long definitions carry it.
PROMPT_CACHE_MIN_CHARS = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TextCallback = Callable[[str], Any]


def safe_log_text(text: str, limit: int = 80) -> str:
    """User text for a log line: truncated, control characters escaped."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", short)


def estimate_input_tokens(*texts: str) -> int:
    """A deliberately high estimate (3 chars/token) used only for budgets and rate limits."""
    return max(1, math.ceil(sum(len(t) for t in texts) / 3))


@dataclass(frozen=True)
class Job:
    """One unit of work for run_many: an agent, a task and per-job options."""

    agent: str
    task: str
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None

    @classmethod
    def coerce(cls, item: Job | Sequence[Any] | dict[str, Any]) -> Job:
        if isinstance(item, Job):
            return item
        if isinstance(item, dict):
            return cls(**item)
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence):
            raise TypeError(f"a job is (agent, task), (agent, task, {{options}}), a dict or a Job, not {item!r:.40}")
        if len(item) == 3 and isinstance(item[2], dict):
            return cls(item[0], item[1], **item[2])
        return cls(*item)


@dataclass
class _Call:
    """Everything resolved about one call before it is sent."""

    agent: AgentDefinition
    task: str
    system: str
    model: str
    max_tokens: int
    temperature: float | None
    body: dict[str, Any]          # exactly what goes on the wire (less stream / extra_body split)
    use_cache: bool
    refresh: bool
    stream: bool
    cache_key: str | None = None


class _Offline:
    """The in-process FakeAnthropicServer behind CLAUDE_FORCE_OFFLINE=1 (one per process)."""

    _server: Any = None
    _lock = threading.Lock()

    @classmethod
    def url(cls) -> str:
        with cls._lock:
            if cls._server is None:
                from ..testing import FakeAnthropicServer

                cls._server = FakeAnthropicServer(chunk_delay_s=0.01).start()
            return str(cls._server.url)


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
        self.prices = price_table(self.settings.prices_path if self.settings.prices_path.is_file() else None)
        self.budget = BudgetGuard(self.settings.budget_usd)
        self.breaker = CircuitBreaker(self.settings.circuit_failures, self.settings.circuit_reset_s)
        self._limiter = RateLimiter(self.settings.requests_per_minute, self.settings.tokens_per_minute)
        self._client: anthropic.AsyncAnthropic | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claude-force-nb-io")
        self._pending: list[tuple[AgentResult, str, tuple[str, CachedResponse] | None, asyncio.Future[None]]] = []
        self._flusher: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # calls in flight (on the runner loop)
        self._closed = False

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
    def offline(self) -> bool:
        return self.settings.offline

    def _client_on_loop(self) -> anthropic.AsyncAnthropic:
        """The SDK client, created on (and bound to) the runner loop; max_retries=0."""
        if self._client is None:
            s = self.settings
            if s.offline:
                api_key, base_url = "offline", _Offline.url()
            else:
                if not s.api_key:
                    raise MissingAPIKeyError()
                api_key, base_url = s.api_key, s.base_url
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                timeout=httpx2.Timeout(s.timeout_s, connect=s.connect_timeout_s),
            )
        return self._client

    def _semaphore_on_loop(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.max_concurrent)
        return self._semaphore

    # -- public API ---------------------------------------------------------------------

    async def run(
        self,
        agent: str,
        task: str,
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        use_cache: bool = True,
        refresh: bool = False,
        stream: bool | None = None,
        system: str | None = None,
        on_text: TextCallback | None = None,
    ) -> AgentResult:
        """Run ``agent`` on ``task``. Raises for bad input; API failures come back as results.

        ``system`` adds instructions after the agent's definition (it is part of the cache key).
        """
        options = RunOptions(model=model, max_tokens=max_tokens, temperature=temperature, system=system,
                             use_cache=use_cache, refresh=refresh, stream=stream)
        return await runner.run_async(self._run(agent, task, options, on_text))

    async def run_many(
        self,
        jobs: Iterable[Job | Sequence[Any] | dict[str, Any]],
        *,
        on_result: Callable[[int, AgentResult], Any] | None = None,
        **common: Any,
    ) -> list[AgentResult]:
        """Run every job concurrently; one result per job, in input order, whatever fails."""
        return await runner.run_async(self._run_many(list(jobs), on_result, common))

    def run_sync(self, agent: str, task: str, *, on_text: TextCallback | None = None, **options: Any) -> AgentResult:
        """Blocking ``run`` (same keywords): works in scripts, IPython and inside a running event loop."""
        return runner.run_sync(self._run(agent, task, RunOptions.from_kwargs(**options), on_text))

    def run_many_sync(self, jobs: Iterable[Any], **kwargs: Any) -> list[AgentResult]:
        """Blocking ``run_many``."""
        return runner.run_sync(self._run_many(list(jobs), kwargs.pop("on_result", None), kwargs))

    def configure(self, **changes: Any) -> None:
        """Change settings that need no new client (model and token defaults, concurrency,
        streaming, budget). Spend, calls in flight and the cache are kept."""
        movable = {"default_model", "max_tokens", "max_concurrent", "stream", "budget_usd", "max_task_chars"}
        if unknown := set(changes) - movable:
            raise InvalidInputError(
                f"{', '.join(sorted(unknown))} cannot change on a live Orchestrator: create a new one."
            )
        self.settings = self.settings.replace(**changes)
        if "max_concurrent" in changes:
            self._semaphore = None  # new calls use the new limit; running ones finish under the old
        if "budget_usd" in changes:
            self.budget.budget_usd = changes["budget_usd"]

    async def aclose(self) -> None:
        """Cancel calls still in flight, write what they recorded, close the client and files."""
        if self._closed:
            return
        self._closed = True
        await runner.run_async(self._aclose_on_loop())
        self._io.shutdown(wait=True)
        for store in (self._cache, self._ledger):
            if store is not None:
                store.close()

    async def _aclose_on_loop(self) -> None:
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.close()

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

    async def _run_many(
        self, items: list[Any], on_result: Callable[[int, AgentResult], Any] | None, common: dict[str, Any]
    ) -> list[AgentResult]:
        resolved: dict[str, AgentDefinition] = {}  # one registry scan per agent, not per job
        on_text = common.pop("on_text", None)

        async def one(i: int, item: Any) -> AgentResult:
            try:
                try:
                    job = Job.coerce(item)
                except (TypeError, ValueError) as exc:  # a malformed job tuple/dict; bugs elsewhere propagate
                    raise InvalidInputError(
                        f"Job {i} is malformed ({exc}): use (agent, task) or (agent, task, {{options}})."
                    ) from None
                own = {k: v for k, v in vars(job).items() if k not in ("agent", "task") and v is not None}
                options = RunOptions.from_kwargs(**{**common, **own})
                if job.agent not in resolved:
                    resolved[job.agent] = self.registry.get(job.agent)
                result = await self._run(resolved[job.agent], job.task, options, on_text)
            except ClaudeForceError as exc:
                result = self._failed_before_send(item, exc)
            if on_result is not None:
                on_result(i, result)
            return result

        tasks = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(items)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # a bug or a cancel: stop the siblings rather than orphan them
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _failed_before_send(self, item: Any, exc: ClaudeForceError) -> AgentResult:
        agent = getattr(item, "agent", None) or (item.get("agent") if isinstance(item, dict) else None)
        if agent is None and isinstance(item, (list, tuple)) and item:
            agent = item[0]
        return AgentResult(
            agent=str(agent or "?"),
            model=self.settings.default_model,
            error=str(exc),
            error_type=type(exc).__name__,
            offline=self.offline,
            attempts=0,
        )

    def _prepare(self, agent_name: str | AgentDefinition, task: str, options: RunOptions) -> _Call:
        """Validate everything and build the exact request body; raises InvalidInputError."""
        agent = agent_name if isinstance(agent_name, AgentDefinition) else self.registry.get(agent_name)
        s = self.settings
        if not isinstance(task, str):
            raise InvalidInputError(f"The task must be text, not {type(task).__name__}: pass a str.")
        if not task.strip():
            raise InvalidInputError("The task is empty: put the request in the cell body (or pass task=...).")
        if len(task) > s.max_task_chars:
            raise InvalidInputError(
                f"The task is {len(task):,} characters; the limit is {s.max_task_chars:,}. "
                f"Shorten it or raise Settings.max_task_chars."
            )
        options = options.resolve(agent, s)
        model, max_tokens, system = options.model, options.max_tokens, options.system
        assert model is not None and max_tokens is not None
        temperature = None if options.temperature is None else float(options.temperature)
        system_text = f"{agent.system}\n\n{system.strip()}" if system and system.strip() else agent.system
        system_param: str | list[dict[str, Any]] = system_text
        if len(system_text) >= PROMPT_CACHE_MIN_CHARS:
            system_param = [{"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}]
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "system": system_param,
            "messages": [{"role": "user", "content": task}],
        }
        if temperature is not None:
            body["temperature"] = temperature
        cacheable = s.cache_enabled and agent.cache and agent.name not in s.cache_exclude
        return _Call(
            agent=agent,
            task=task,
            system=system_text,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            body=body,
            use_cache=options.use_cache and cacheable,
            refresh=options.refresh,
            stream=bool(options.stream),
        )

    async def _io_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """SQLite work off the event loop, on one dedicated thread."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def _run(
        self, agent_name: str | AgentDefinition, task: str, options: RunOptions, on_text: TextCallback | None
    ) -> AgentResult:
        if self._closed:
            raise InvalidInputError("This Orchestrator is closed: create a new one.")
        call = self._prepare(agent_name, task, options)
        current = asyncio.current_task()
        if current is not None:
            self._tasks.add(current)
        try:
            return await self._run_call(call, task, on_text)
        finally:
            self._tasks.discard(current)  # type: ignore[arg-type]

    async def _run_call(self, call: _Call, task: str, on_text: TextCallback | None) -> AgentResult:
        started = time.perf_counter()
        log.info(
            "agent call",
            extra={"agent": call.agent.name, "model": call.model, "task": safe_log_text(task)},
        )
        if call.use_cache:
            call.cache_key = self.cache.key_for(call.body)
            if not call.refresh:
                # A signed read takes ~10 µs: cheaper on the loop than a hop to the I/O thread.
                # defer_writes: any bookkeeping write waits for the next batch on the I/O thread,
                # so the loop never waits on another process's write lock.
                hit = self.cache.get(call.cache_key, defer_writes=True)
                if hit is not None:
                    result = self._result_from_cache(call, hit, time.perf_counter() - started)
                    if on_text is not None:
                        on_text(result.text)
                    await self._persist(result, task)
                    return result
        if not self.offline and not self.settings.api_key:
            raise MissingAPIKeyError()
        est_input = estimate_input_tokens(call.system, task)
        reserved = self.budget.reserve(self.prices.worst_case(call.model, est_input, call.max_tokens), call.model)
        result: AgentResult | None = None
        try:
            result = await self._call_api(call, on_text, started, est_input)
        except asyncio.CancelledError:
            # Interrupted (stop button, %agent cancel, close): the request was closed. Keep a
            # ledger row so the attempt is visible; its partial cost is unknown to us.
            cancelled = replace(
                self._failed_result(call, asyncio.CancelledError(), 0, time.perf_counter() - started), cost_usd=None
            )
            await asyncio.shield(self._persist(cancelled, task))
            raise
        finally:
            self.budget.settle(reserved, result.cost_usd if result is not None else None)
        entry = None
        if result.ok and call.use_cache and result.stop_reason and not result.refused:
            entry = (call.cache_key or "", self._cached_response(call, result))
        await self._persist(result, task, entry)
        return result

    async def _call_api(self, call: _Call, on_text: TextCallback | None, started: float, est_input: int) -> AgentResult:
        attempts = 0

        async def attempt() -> tuple[Any, str | None]:
            nonlocal attempts
            attempts += 1
            await self._limiter.acquire(est_input + call.max_tokens)
            async with self._semaphore_on_loop():
                self.breaker.before_call()  # claims the half-open probe only now
                try:
                    async with asyncio.timeout(self.settings.timeout_s) as deadline:
                        sent = await self._send(call, on_text, deadline)
                except anthropic.APIStatusError as exc:
                    # Only server-side trouble counts against the service.
                    self.breaker.record(ok=not is_retryable(exc))
                    raise
                except Exception as exc:
                    if is_retryable(exc):
                        self.breaker.record(ok=False)
                    else:  # e.g. an on_text callback raising: says nothing about the API
                        self.breaker.abandon()
                    raise
                except BaseException:
                    self.breaker.abandon()
                    raise
            self.breaker.record(ok=True)
            return sent

        s = self.settings
        try:
            message, request_id = await with_retries(
                attempt, attempts=s.max_attempts, base_wait_s=s.retry_base_wait_s, max_wait_s=s.retry_max_wait_s,
                before_sleep=self._log_retry,
            )
        except asyncio.CancelledError:
            raise
        except (anthropic.AnthropicError, httpx2.TransportError, asyncio.TimeoutError, APICallError) as exc:
            return self._failed_result(call, exc, attempts, time.perf_counter() - started)
        return self._result_from_message(call, message, request_id, attempts, time.perf_counter() - started)

    async def _send(
        self, call: _Call, on_text: TextCallback | None, deadline: asyncio.Timeout
    ) -> tuple[Any, str | None]:
        """One attempt: the request as a stream (deltas to on_text) or a single JSON reply.

        ``timeout_s`` bounds a JSON reply, and a stream until its first event; after that a
        healthy stream may run as long as it needs (the SDK's read timeout still catches a
        stalled one), so long answers are never cut off and paid for twice.
        """
        client = self._client_on_loop()
        params = {k: v for k, v in call.body.items() if k != "temperature"}
        if call.temperature is not None:  # the 2.x SDK removed the keyword; the API still takes it
            params["extra_body"] = {"temperature": call.temperature}
        if not call.stream:
            message = await client.messages.create(**params)
            return message, getattr(message, "_request_id", None)
        async with client.messages.stream(**params) as stream:
            deadline.reschedule(None)
            async for text in stream.text_stream:
                if on_text is not None:
                    on_text(text)
            message = await stream.get_final_message()
        if message.stop_reason is None:
            raise IncompleteResponseError(
                "The response stream ended before the answer was complete; it was not cached.",
                error_type="incomplete_stream",
                request_id=stream.request_id,
            )
        return message, stream.request_id

    def _log_retry(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "retrying after %s (attempt %d, waiting %.2fs)",
            type(exc).__name__,
            state.attempt_number,
            wait,
            extra={"error_type": type(exc).__name__, "attempt": state.attempt_number},
        )

    # -- results ------------------------------------------------------------------------

    def _result_from_message(
        self, call: _Call, message: Any, request_id: str | None, attempts: int, latency: float
    ) -> AgentResult:
        text = "".join(getattr(b, "text", "") for b in (message.content or []) if getattr(b, "type", "") == "text")
        usage = Usage.from_api(message.usage)
        served = message.model or call.model
        cost = self.prices.cost(served, usage)
        refused = message.stop_reason == "refusal"
        error = error_type = None
        if not text.strip() and not refused:
            exc = EmptyResponseError(
                f"The model returned no text (stop_reason={message.stop_reason!r}); "
                f"try again, rephrase the task or raise max_tokens.",
                error_type="empty_response",
            )
            error, error_type = str(exc), exc.error_type
        return AgentResult(
            agent=call.agent.name,
            model=served,
            text=text,
            usage=usage,
            cost_usd=cost,
            latency_s=latency,
            stop_reason=message.stop_reason,
            request_id=request_id,
            error=error,
            error_type=error_type,
            cache_key=call.cache_key,
            offline=self.offline,
            refused=refused,
            attempts=attempts,
        )

    def _result_from_cache(self, call: _Call, hit: CachedResponse, latency: float) -> AgentResult:
        return AgentResult(
            agent=call.agent.name,
            model=hit.model,
            text=hit.text,
            usage=hit.usage,
            cost_usd=0.0,
            saved_usd=hit.cost_usd or 0.0,
            cached=True,
            latency_s=latency,
            stop_reason=hit.stop_reason,
            request_id=hit.request_id,
            cache_key=call.cache_key,
            offline=self.offline,
            attempts=0,
        )

    def _failed_result(self, call: _Call, exc: BaseException, attempts: int, latency: float) -> AgentResult:
        message, error_type = describe_failure(exc, attempts)
        return AgentResult(
            agent=call.agent.name,
            model=call.model,
            cost_usd=0.0,
            latency_s=latency,
            request_id=getattr(exc, "request_id", None),
            error=message,
            error_type=error_type,
            cache_key=call.cache_key,
            offline=self.offline,
            attempts=attempts,
        )

    @staticmethod
    def _cached_response(call: _Call, result: AgentResult) -> CachedResponse:
        return CachedResponse(
            text=result.text,
            stop_reason=result.stop_reason or "",
            usage=result.usage,
            model=result.model,
            cost_usd=result.cost_usd,
            agent=call.agent.name,
            task_head=call.task.strip().splitlines()[0][:200],
            request_id=result.request_id,
        )

    async def _persist(self, result: AgentResult, task: str, entry: tuple[str, CachedResponse] | None = None) -> None:
        """Ledger row (and cache entry) for one call, written together with concurrent calls'.

        Calls finishing while a batch is being written join the next batch, so N concurrent
        calls cost a few SQLite transactions instead of 2N. Returns once this call's rows
        are committed.
        """
        done = asyncio.get_running_loop().create_future()
        self._pending.append((result, task, entry, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_pending())
        await asyncio.shield(done)

    async def _flush_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._io_call(self._write_batch, batch)
            except Exception:
                # The answers are paid for and in hand: bookkeeping trouble (a locked or
                # full disk) must not turn them into errors. It is logged with its traceback.
                log.exception("could not record %d call(s) in the ledger/cache", len(batch))
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)

    def _write_batch(self, batch: list[tuple[AgentResult, str, tuple[str, CachedResponse] | None, Any]]) -> None:
        # The ledger first: what was spent must be recorded even if caching fails.
        self.ledger.record_many([(result, task) for result, task, _, _ in batch])
        entries = [entry for _, _, entry, _ in batch if entry is not None]
        if entries:
            self.cache.put_many(entries)


def describe_failure(exc: BaseException, attempts: int) -> tuple[str, str]:
    """One user-facing line and an error type for an API failure."""
    tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts > 1 else ""
    if isinstance(exc, asyncio.CancelledError):
        return "Cancelled before the answer was complete (its partial cost is not known).", "cancelled"
    if isinstance(exc, APICallError):
        return str(exc), exc.error_type or type(exc).__name__
    if isinstance(exc, anthropic.APIStatusError):
        error_type = exc.type or f"http_{exc.status_code}"
        detail = exc.api_message or exc.message
        fix = {
            401: "check ANTHROPIC_API_KEY.",
            403: "your key lacks permission for this model or feature.",
            404: "check the model id.",
            413: "the request is too large: shorten the task.",
            429: "rate limited: wait a minute or lower max_concurrent / requests_per_minute.",
            529: "the API is overloaded: try again shortly.",
        }.get(exc.status_code, "see the message above; retry later if it is a server error.")
        return f"API error {exc.status_code} ({error_type}){tries}: {detail} — {fix}", error_type
    if isinstance(exc, (asyncio.TimeoutError, anthropic.APITimeoutError)):
        return f"The request timed out{tries}: raise Settings.timeout_s or lower max_tokens.", "timeout"
    if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
        return f"Could not reach the API{tries} ({type(exc).__name__}): check the network or ANTHROPIC_BASE_URL.", "connection_error"
    return f"{type(exc).__name__}: {exc}", type(exc).__name__
