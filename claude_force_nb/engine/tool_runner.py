"""Running one assistant turn's tool calls: concurrently, bounded in time, never raising.

Given the ``tool_use`` blocks of one reply and the tools on offer, :func:`run_tool_calls`
runs every call at once and returns the ``tool_result`` blocks for the next user message
(in the order of the calls) plus one :class:`~claude_force_nb.core.tools.ToolStep` per
call. Whatever goes wrong in a call goes back to the model as that call's result with
``is_error: true``, so it can correct itself: an unknown tool name, arguments that do not
fit the schema, an exception (``TypeName: message``; a :class:`ToolError` gives just its
message), a timeout.

Sync tools run in a daemon thread each, so a slow pandas call never blocks the event loop
and a hung one never blocks the kernel's exit; async tools run on the loop. Cancelling
the caller (an interrupt) cancels the async tools and stops waiting for the threads,
whose results are then dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from ..core.errors import ToolError
from ..core.tools import Tool, ToolSet, ToolStep

__all__ = [
    "DEFAULT_MAX_RESULT_CHARS",
    "DEFAULT_TOOL_TIMEOUT_S",
    "ToolTurn",
    "result_text",
    "run_tool_calls",
    "tool_use_blocks",
]

DEFAULT_TOOL_TIMEOUT_S = 60.0
DEFAULT_MAX_RESULT_CHARS = 20_000  # one result; the model is told when it was cut
PREVIEW_CHARS = 200


@dataclass(frozen=True)
class ToolTurn:
    """The outcome of one turn's calls: ``results`` are the ``tool_result`` blocks, in the
    order of the calls; ``message`` is the user message that carries them back."""

    results: list[dict[str, Any]]
    steps: list[ToolStep]

    @property
    def message(self) -> dict[str, Any]:
        return {"role": "user", "content": self.results}

    @property
    def errors(self) -> int:
        return sum(not step.ok for step in self.steps)


def tool_use_blocks(content: Iterable[Any]) -> list[dict[str, Any]]:
    """The ``tool_use`` blocks of a reply's content (SDK blocks or dicts) as plain dicts."""
    blocks = []
    for block in content:
        get = block.get if isinstance(block, Mapping) else lambda key, b=block: getattr(b, key, None)
        if get("type") == "tool_use":
            blocks.append({"id": get("id"), "name": get("name"), "input": get("input")})
    return blocks


def result_text(value: Any, max_chars: int = DEFAULT_MAX_RESULT_CHARS) -> str:
    """A tool's return value as the result's text: a str as it is, anything else as JSON
    (pydantic's encoder: models, dataclasses, dates...; ``str()`` for the rest), cut to
    ``max_chars`` with a note the model can act on."""
    text = value if isinstance(value, str) else to_json(value, fallback=str).decode()
    if not text:
        text = "(empty result)"
    if len(text) > max_chars:
        text = (
            f"{text[:max_chars]}\n[cut: the result has {len(text):,} characters, "
            f"only the first {max_chars:,} are shown; ask for less]"
        )
    return text


async def run_tool_calls(
    content: Iterable[Any],
    tools: Mapping[str, Tool] | Iterable[Tool],
    *,
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    on_step: Callable[[ToolStep], None] | None = None,
) -> ToolTurn:
    """Run the ``tool_use`` blocks in ``content`` (a reply's content, or just its blocks).

    ``timeout_s`` bounds each call unless its Tool sets its own ``timeout_s``. ``on_step``
    is called on this loop as each call finishes (in finishing order), for a live display.
    Never raises for a failing call; cancellation propagates.
    """
    offered = tools if isinstance(tools, Mapping) else ToolSet(tools)

    async def one(block: dict[str, Any]) -> tuple[dict[str, Any], ToolStep]:
        started = time.perf_counter()
        arguments = block["input"] if isinstance(block["input"], Mapping) else {}
        try:
            text, error = await _call(block, offered, timeout_s, max_result_chars), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            text = error = _error_text(exc)
        step = ToolStep(
            tool=block["name"],
            arguments=dict(arguments),
            result_preview=textwrap.shorten(text, PREVIEW_CHARS, placeholder=" …"),
            duration_s=time.perf_counter() - started,
            error=error,
            tool_use_id=block["id"],
        )
        if on_step is not None:
            on_step(step)
        result = {"type": "tool_result", "tool_use_id": block["id"], "content": text}
        return (result | {"is_error": True}) if error else result, step

    outcomes = await asyncio.gather(*(one(block) for block in tool_use_blocks(content)))
    return ToolTurn(results=[result for result, _ in outcomes], steps=[step for _, step in outcomes])


async def _call(block: dict[str, Any], offered: Mapping[str, Tool], timeout_s: float, max_chars: int) -> str:
    """One call's result text; raises what went wrong (turned into an error result)."""
    chosen = offered.get(block["name"])
    if chosen is None:
        raise ToolError(f"Unknown tool {block['name']!r}: use one of {', '.join(offered) or 'none'}.")
    kwargs = chosen.validate(block["input"])
    limit = chosen.timeout_s if chosen.timeout_s is not None else timeout_s
    try:
        async with asyncio.timeout(limit):
            if chosen.is_async:
                value = await chosen.function(**kwargs)
            else:
                value = await _in_thread(chosen, kwargs)
    except TimeoutError:
        raise ToolError(
            f"{chosen.name} did not finish within {limit:g} s (its result is dropped): "
            "try a smaller request."
        ) from None
    return result_text(value, max_chars)


def _in_thread(chosen: Tool, kwargs: dict[str, Any]) -> asyncio.Future[Any]:
    """Run a sync tool in its own daemon thread; the Future settles on this loop.

    Not a thread pool: an abandoned call (timeout, interrupt) keeps running until it
    returns, and must neither hold a pool's worker nor keep the process from exiting.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():  # timed out or cancelled meanwhile: the result is dropped
            return
        if exc is None:
            future.set_result(value)
        else:
            future.set_exception(exc)

    def work() -> None:
        value, exc = None, None
        try:
            value = context.run(chosen.function, **kwargs)
        except Exception as raised:
            exc = raised
        except BaseException as raised:  # SystemExit from a tool must not reach the loop
            exc = ToolError(f"{type(raised).__name__}: {raised}")
        try:
            loop.call_soon_threadsafe(settle, value, exc)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    threading.Thread(target=work, name=f"claude-force-tool-{chosen.name}", daemon=True).start()
    return future


def _error_text(exc: Exception) -> str:
    """What the model reads for a failed call: a ToolError's message, else ``Type: message``."""
    if isinstance(exc, ToolError):
        return str(exc)
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
