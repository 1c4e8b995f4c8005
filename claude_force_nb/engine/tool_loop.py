"""The tool loop: one run made of several requests, until the model has its answer.

A run sends its call; while the reply asks for tools (``stop_reason "tool_use"``), the
calls run (``tool_runner.run_tool_calls``: concurrently, results in order, failures go
back to the model as ``is_error`` results), the reply and the results are appended to the
messages, and the next step is sent. It ends at the model's answer, at a failure, or after
``max_steps`` requests with a ``max_steps`` error result.

Each step goes through the orchestrator's one-request path (``step``): cache, budget,
pacing, retries and its own ledger row under the run's ``run_id``. So a re-run whose tools
return the same results replays every step from the cache for free, while the tools still
run. The run's result is the last step's answer with the usage, cost and tool calls
(``steps``) of all of them.

Structured output is checked here too (:func:`checked_answer`): the answer's JSON (or the
forced tool's input) validated against the schema becomes ``result.data``; a reply that
does not fit is an error result (``schema_mismatch``), which is never cached. A model that
refuses ``output_config`` with a 400 is asked again with the forced tool.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Awaitable, Callable
from functools import reduce
from typing import Any

from ..core.agents import AgentDefinition
from ..core.errors import BudgetExceededError, SchemaMismatchError, UnknownToolError
from ..core.results import AgentResult, Usage
from ..core.schemas import SCHEMA_TOOL_NAME
from ..core.tools import ToolSet, ToolStep
from .file_tools import agent_file_tools
from .outcomes import TOOL_USE
from .requests import Call
from .sending import TextCallback
from .tool_runner import run_tool_calls, tool_use_blocks

__all__ = ["StepCallback", "StepFn", "agent_tools", "checked_answer", "combine", "run_loop"]

Content = list[dict[str, Any]]
StepFn = Callable[[Call, TextCallback | None], Awaitable[tuple[AgentResult, Content]]]
StepCallback = Callable[[ToolStep], Any]


def agent_tools(agent: AgentDefinition, given: ToolSet | None, warned: set[str]) -> ToolSet | None:
    """The run's tools: ``given`` plus what the agent file lists. Read/Grep/Glob are offered
    (confined to the working directory); Claude Code tools that cannot run here are named in
    one warning per agent (``warned`` remembers which); any other name must be in ``given``
    (a notebook tool), else UnknownToolError."""
    if not agent.tools:
        return given
    sorted_out = agent_file_tools(agent.tools)
    if (message := sorted_out.warning(agent.name)) and agent.name not in warned:
        warned.add(agent.name)
        warnings.warn(message, UserWarning, stacklevel=4)
    known = dict(given or {})
    for name in sorted_out.other:
        if name not in known:
            raise UnknownToolError(name, [*known, *(t.name for t in sorted_out.offered)])
    offered = [t for t in sorted_out.offered if t.name not in known]
    return ToolSet([*known.values(), *offered]) if known or offered else None


def _schema_answer(call: Call, content: Content) -> Any:
    """The forced schema tool's input in ``content``, or None."""
    if not call.schema_tool:
        return None
    return next((b["input"] for b in tool_use_blocks(content) if b["name"] == SCHEMA_TOOL_NAME), None)


def checked_answer(call: Call, result: AgentResult, content: Content) -> AgentResult:
    """``result`` with its structured output validated into ``data`` (a call with a schema),
    or made a ``schema_mismatch`` error; a step that only asks for tools is left as it is."""
    schema = call.options.schema
    if schema is None or not result.ok:
        return result
    answer = _schema_answer(call, content)
    if answer is None and result.stop_reason == TOOL_USE:
        return result
    try:
        data = schema.validate(result.text) if answer is None else schema.validate_data(answer)
    except SchemaMismatchError as exc:
        return dataclasses.replace(result, error=str(exc), error_type=exc.error_type)
    text = result.text if answer is None else json.dumps(answer, ensure_ascii=False)
    return dataclasses.replace(result, data=data, text=text)


def _refuses_output_config(call: Call, result: AgentResult) -> bool:
    return (call.options.schema is not None and not call.schema_tool and result.error_type == "invalid_request_error"
            and "output_config" in (result.error or ""))


async def run_loop(
    call: Call,
    step: StepFn,
    *,
    on_text: TextCallback | None = None,
    on_step: StepCallback | None = None,
    tool_timeout_s: float,
    started: float,
) -> AgentResult:
    """Run ``call`` step by step until the answer; the run's result (see the module docstring).

    A budget refusal before the first step raises (nothing was sent); before a later step it
    ends the run with an error result that keeps what the earlier steps did.
    """
    max_steps = call.options.max_steps or 1
    tools = call.options.tools or {}
    results: list[AgentResult] = []
    steps: list[ToolStep] = []
    current = call
    while True:
        try:
            result, content = await step(current, on_text)
        except BudgetExceededError as exc:
            if not results:
                raise
            results[-1] = _stopped(results[-1], str(exc), "budget_exceeded")
            break
        results.append(result)
        if _refuses_output_config(current, result):
            current = current.with_schema_tool()
            continue
        calls = tool_use_blocks(content)
        if not result.ok or result.stop_reason != TOOL_USE or not calls or _schema_answer(current, content) is not None:
            break
        if len(results) >= max_steps:
            message = (f"stopped: max_steps ({max_steps}) reached before the agent finished: "
                       f"raise max_steps or narrow the task.")
            results[-1] = _stopped(result, message, "max_steps")
            break
        turn = await run_tool_calls(content, tools, timeout_s=tool_timeout_s, on_step=on_step)
        steps.extend(turn.steps)
        messages = [*current.body["messages"], {"role": "assistant", "content": content}, turn.message]
        current = current.next_step(messages)
    return combine(results, steps, time.perf_counter() - started)


def _stopped(result: AgentResult, message: str, error_type: str) -> AgentResult:
    return dataclasses.replace(result, error=message, error_type=error_type)


def combine(results: list[AgentResult], steps: list[ToolStep], latency_s: float) -> AgentResult:
    """The run's result: the last step's answer, with every step's usage, cost and pacing
    summed, the tool calls in order, and the run's wall time."""
    last = results[-1]
    if len(results) == 1 and not steps:
        return last
    costs = [r.cost_usd for r in results]
    return dataclasses.replace(
        last,
        usage=reduce(Usage.__add__, (r.usage for r in results), Usage()),
        cost_usd=None if any(c is None for c in costs) else sum(c for c in costs if c is not None),
        saved_usd=sum(r.saved_usd for r in results),
        cached=all(r.cached for r in results),
        latency_s=latency_s,
        attempts=sum(r.attempts for r in results),
        rate_limited=sum(r.rate_limited for r in results),
        overloaded=sum(r.overloaded for r in results),
        waited_s=sum(r.waited_s for r in results),
        steps=tuple(steps),
    )
