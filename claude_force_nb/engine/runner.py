"""The notebook-safe bridge: one private event loop in a daemon thread per process.

A Jupyter kernel already runs an asyncio loop in the main thread, so ``asyncio.run``
fails inside a cell. Rather than re-entering that loop (nest_asyncio), all async work
runs on a private loop owned by this module:

- ``run_sync(coro)`` blocks the caller until the coroutine finishes; on any
  BaseException while waiting (a kernel interrupt arrives as KeyboardInterrupt) the
  task is cancelled, so in-flight HTTP requests stop. Called from the runner thread
  itself it raises at once instead of deadlocking.
- ``await run_async(coro)`` lets code on another loop (a cell's top-level ``await``)
  await work on the private loop; cancellation propagates both ways.
- ``submit(coro)`` starts work in the background and returns a concurrent Future.
- ``await to_thread_to_the_end(fn, ...)``: ``asyncio.to_thread`` whose interrupt waits for
  the thread (an interrupted ``to_thread`` leaves it running, and a store closed next would
  be closed under its query).

After ``os.fork()`` the child has none of the parent's threads: the loop is started again
there on first use, and every object registered with ``reset_after_fork`` (an Orchestrator:
its client, writer thread and pacing state) drops what belonged to the parent.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Coroutine
from typing import Any, TypeVar

__all__ = ["get_loop", "in_runner_thread", "reset_after_fork", "run_async", "run_sync", "shutdown", "submit",
           "to_thread_to_the_end", "wait_out"]

T = TypeVar("T")
log = logging.getLogger(__name__)
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None
_POLL_S = 0.2  # how often a waiting caller wakes, so interrupts land promptly (run_sync, run_async)
_FORK_AWARE: weakref.WeakSet[Any] = weakref.WeakSet()


def get_loop() -> asyncio.AbstractEventLoop:
    """The private loop, started on first use (and again in a forked child)."""
    global _loop, _thread, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or not (_thread and _thread.is_alive()):
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="claude-force-nb-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread, _pid = loop, thread, os.getpid()
        return _loop


def in_runner_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the private loop; returns at once."""
    if in_runner_thread():
        coro.close()
        raise RuntimeError(
            "A blocking claude_force_nb call was made from its own event loop thread; "
            "use `await orch.run(...)` inside async code instead."
        )
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the private loop and wait; cancel it if the wait is interrupted.

    The wait wakes every _POLL_S: Ctrl-C is a signal to the process, and when the OS hands
    it to another thread, a main thread blocked in one long wait would see the
    KeyboardInterrupt only once the work was done."""
    future = submit(coro)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not future.done():
            left = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if left <= 0:
                break  # future.result(0) raises TimeoutError
            concurrent.futures.wait([future], timeout=left)
        return future.result(0)
    except BaseException:
        future.cancel()
        raise


async def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` (running on the private loop) from any other event loop."""
    if in_runner_thread():
        return await coro
    future = asyncio.wrap_future(submit(coro))
    try:
        while True:
            # A short wait instead of a bare await: an ipykernel interrupt only lands
            # when its loop wakes up (ipykernel#881); polling keeps that under 0.2 s.
            done, _ = await asyncio.wait({future}, timeout=_POLL_S)
            if done:
                return future.result()
    except BaseException:
        future.cancel()
        raise


async def to_thread_to_the_end(fn: Callable[..., T], *args: Any, stop: Callable[[], Any] | None = None,
                               **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a worker thread. Interrupted, it calls ``stop`` (a way to
    cut ``fn`` short, if it has one), waits for the thread to finish, then raises."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        if stop is not None:
            stop()
        await wait_out([work])
        raise


async def wait_out(work: Collection[asyncio.Future[Any]]) -> bool:
    """Wait until all of ``work`` is done, however many interrupts arrive meanwhile; True if
    one did (the caller raises it once the work is done). Failures are logged: whoever
    awaited the work was interrupted and will not see them."""
    interrupted = False
    pending = {future for future in work if not future.done()}
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True
            pending = {future for future in pending if not future.done()}
    for future in work:
        if not future.cancelled() and future.exception() is not None:
            log.warning("work that outlived an interrupt failed", exc_info=future.exception())
    return interrupted


def shutdown(timeout: float = 2.0) -> None:
    """Stop the private loop (tasks still running are cancelled)."""
    global _loop, _thread, _pid
    with _lock:
        loop, thread = _loop, _thread
        _loop = _thread = _pid = None
    if loop is None or thread is None or not thread.is_alive():
        return

    async def _cancel_all() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout)
    except (concurrent.futures.TimeoutError, RuntimeError):
        pass
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout)
    if not thread.is_alive():
        loop.close()


def reset_after_fork(obj: Any) -> None:
    """Call ``obj._after_fork()`` in a forked child, before anything else runs there; held weakly."""
    _FORK_AWARE.add(obj)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork
    for obj in list(_FORK_AWARE):
        obj._after_fork()


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
