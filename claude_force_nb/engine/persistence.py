"""The persistence writer: each call's ledger row and cache entry, written off the event loop.

SQLite work runs on one dedicated thread, never on the runner loop, so a slow disk or
another process's write lock never stalls calls in flight. Calls finishing while a batch
is being written join the next batch, so N concurrent calls cost a few transactions
instead of 2N.

A call waits for its records to be committed, so what ``run`` returns is in the ledger and
the cache. A map row writes behind (``wait=False``): it goes on to the next row at once
unless MAX_BACKLOG records already wait, and the map waits for the writer (``drain``) when
it ends or is interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..core.results import AgentResult
from ..store.cache import CachedResponse, ResponseCache
from ..store.ledger import Ledger

__all__ = ["MAX_BACKLOG", "CacheEntry", "PersistenceWriter"]

log = logging.getLogger(__name__)

CacheEntry = tuple[str, CachedResponse]  # (cache key, what to store under it)
_Record = tuple[AgentResult, str, CacheEntry | None, "asyncio.Future[None]"]

MAX_BACKLOG = 256  # records that may wait for the writer before a write-behind call waits too


class PersistenceWriter:
    """Writes ledger rows and cache entries in batches on one thread.

    ``ledger`` and ``cache`` are called when a batch is written, so the stores are
    opened on first use. Bookkeeping trouble (a locked or full disk) is logged with its
    traceback and never raised: the answers are paid for and in hand.
    """

    def __init__(self, ledger: Callable[[], Ledger], cache: Callable[[], ResponseCache]) -> None:
        self._ledger = ledger
        self._cache = cache
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claude-force-nb-io")
        self._pending: list[_Record] = []
        self._flusher: asyncio.Future[None] | None = None

    async def record(self, result: AgentResult, task: str, entry: CacheEntry | None = None, *,
                     wait: bool = True) -> None:
        """Ledger row (and cache entry) for one call; returns once they are committed, or with
        ``wait=False`` at once while at most MAX_BACKLOG records wait (``drain`` to be sure)."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((result, task, entry, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_pending())
        if wait or len(self._pending) > MAX_BACKLOG:
            await asyncio.shield(done)

    async def drain(self) -> None:
        """Wait until everything recorded so far is written. An interrupted wait stops
        waiting, never the writing: the records still go to the files."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})  # (unlike gather, a cancelled wait leaves it running)

    def close(self) -> None:
        """Stop the writer thread (after ``drain``)."""
        self._io.shutdown(wait=True)

    async def _flush_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.get_running_loop().run_in_executor(self._io, self._write_batch, batch)
            except Exception:
                log.exception("could not record %d call(s) in the ledger/cache", len(batch))
            finally:  # (cancelled only as the loop shuts down: nobody waits on for ever)
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _write_batch(self, batch: list[_Record]) -> None:
        # The ledger first: what was spent must be recorded even if caching fails.
        self._ledger().record_many([(result, task) for result, task, _, _ in batch])
        entries = [entry for _, _, entry, _ in batch if entry is not None]
        if entries:
            self._cache().put_many(entries)
