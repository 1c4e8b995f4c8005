"""Background jobs on the runner loop whose Future means "finished, bookkeeping included".

A notebook starts work it does not wait for (``%%agent --bg``, a widget's Run button)
and shows the outcome later: an answer, an error, "Cancelled.". The runner's own
Future (``runner.submit``) is a poor signal for that: ``cancel()`` marks it cancelled
at once, in the caller's thread, while the task has not yet seen its CancelledError
and may still be writing output. A :class:`BackgroundJob` runs the clean-up inside the
task, on the loop, and resolves its public ``future`` only after it. So whoever waits
on ``job.future`` (a test, a user's script, a done-callback) sees the final state, and
nothing the work does can land after "Cancelled.".

No IPython here: the work and its clean-up are plain callables.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from . import runner

__all__ = ["BackgroundJob"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class BackgroundJob(Generic[T]):
    """``work()`` started on the runner loop now; ``future`` resolves once it has finished.

    ``future`` holds the work's value or exception, or is cancelled after
    ``on_cancel()`` has run (on the loop when the work was running, in the cancelling
    thread when it had not started yet). ``work`` is a callable rather than a
    coroutine so that nothing is created, and left unawaited, when the job is cancelled
    before it starts. Starting from the runner thread itself raises RuntimeError.
    """

    def __init__(
        self, work: Callable[[], Coroutine[Any, Any, T]], *, on_cancel: Callable[[], None] | None = None
    ) -> None:
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._state = "pending"  # -> "running" on the loop, or "dropped" if cancelled first
        self._task = runner.submit(self._main(work))
        self._task.add_done_callback(self._cancelled_before_start)

    def done(self) -> bool:
        """True once the work and its bookkeeping are over."""
        return self.future.done()

    def cancel(self) -> bool:
        """Ask the work to stop (from any thread); its HTTP requests are closed. False if already done."""
        if self.future.done():
            return False
        return self._task.cancel()

    async def _main(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T | None:
        with self._lock:
            if self._state == "dropped":
                return None
            self._state = "running"
        try:
            value = await work()
        except asyncio.CancelledError:
            self._settle_cancelled()
            raise
        except BaseException as exc:
            self.future.set_exception(exc)
            raise
        self.future.set_result(value)
        return value

    def _cancelled_before_start(self, task: concurrent.futures.Future[Any]) -> None:
        if not task.cancelled():
            return
        with self._lock:
            if self._state != "pending":
                return  # _main runs (or ran) the clean-up itself
            self._state = "dropped"
        self._settle_cancelled()

    def _settle_cancelled(self) -> None:
        try:
            if self._on_cancel is not None:
                self._on_cancel()
        except Exception:  # a bug in the clean-up must not leave the future pending forever
            log.exception("the clean-up of a cancelled background job failed")
        self.future.cancel()
        self.future.set_running_or_notify_cancel()

    def __repr__(self) -> str:
        state = "cancelled" if self.future.cancelled() else "done" if self.future.done() else "running"
        return f"<BackgroundJob {state}>"
