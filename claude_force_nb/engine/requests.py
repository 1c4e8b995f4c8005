"""Request building: the exact request body of one call, from an agent, a task and options.

The agent's definition goes in ``system`` (role separation), marked for Anthropic prompt
caching when it is long enough to be cached; the call's extra instructions follow it.
The task is the user message, verbatim: user text is never rewritten, bad input is
refused with a clear error. The body is also what the response cache key is derived
from (``ResponseCache.key_for``): everything that changes the answer is in it (model,
system text, messages, max_tokens, temperature) and nothing else (no key, timeout or
stream flag), and an option that is not set stays absent.

A call may also offer tools (``tools``), ask for structured output and continue a
thread. Structured output goes as the API's native ``output_config`` json_schema, or, for
the models in ``NO_NATIVE_SCHEMA`` (and after a 400 that refuses ``output_config``), as a
forced tool whose input is the answer. A thread's history comes before the task in
``messages``. The tool loop makes each next step's call with :meth:`Call.next_step`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from ..core.agents import AgentDefinition
from ..core.errors import InvalidInputError
from ..core.options import RunOptions, surrogate_problem
from ..core.settings import Settings

__all__ = [
    "NO_NATIVE_SCHEMA", "PROMPT_CACHE_MIN_CHARS", "Call", "build_call", "check_task", "native_schema", "safe_log_text",
]

# Anthropic caches a system prefix only above ~1024-4096 tokens; below that the
# cache_control marker is silently ignored, so only long definitions carry it.
PROMPT_CACHE_MIN_CHARS = 4096
# Model id prefixes without native structured output (output_config): they get a forced tool.
NO_NATIVE_SCHEMA = ("claude-3-", "claude-opus-4-0", "claude-opus-4-1", "claude-opus-4-2025", "claude-sonnet-4-0",
                    "claude-sonnet-4-2025")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def native_schema(model: str) -> bool:
    """Whether ``model`` takes structured output natively (as far as we know before asking)."""
    return not model.startswith(NO_NATIVE_SCHEMA)


@dataclass(frozen=True)
class Call:
    """Everything resolved about one call before it is sent."""

    agent: AgentDefinition
    task: str
    system: str  # the agent's definition, then the call's extra instructions
    options: RunOptions  # resolved: every default filled in
    body: dict[str, Any]  # exactly what goes on the wire, less the stream flag
    use_cache: bool  # asked for by the call and allowed by the agent and Settings
    cache_key: str | None = None
    run_id: str | None = None  # shared by every step of one run
    schema_tool: bool = False  # structured output asked for with a forced tool, not output_config

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def max_tokens(self) -> int:
        return int(self.body["max_tokens"])

    @property
    def input_texts(self) -> tuple[str, ...]:
        """The texts the input tokens come from: system and task, plus the history, earlier
        steps and tool definitions when the request has them (as JSON)."""
        if len(self.body["messages"]) == 1 and "tools" not in self.body:
            return (self.system, self.task)
        extra = json.dumps([self.body["messages"][:-1], self.body.get("tools")], ensure_ascii=False)
        last = self.body["messages"][-1]["content"]
        return (self.system, last if isinstance(last, str) else json.dumps(last, ensure_ascii=False), extra)

    @property
    def estimated_input_tokens(self) -> int:
        """A deliberately high estimate (3 chars/token) used only for budgets and rate limits."""
        return max(1, math.ceil(sum(map(len, self.input_texts)) / 3))

    def next_step(self, messages: list[dict[str, Any]]) -> Call:
        """The call of the tool loop's next step: the same request with ``messages``."""
        return replace(self, body={**self.body, "messages": messages}, cache_key=None)

    def with_schema_tool(self) -> Call:
        """This call asking for its structured output with a forced tool instead of output_config."""
        schema = self.options.schema
        assert schema is not None
        body = {k: v for k, v in self.body.items() if k != "output_config"}
        body["tools"] = [*body.get("tools", []), schema.tool_definition()]
        if self.options.tools is None:  # with the user's tools, the model still chooses freely
            body["tool_choice"] = schema.tool_choice()
        return replace(self, body=body, cache_key=None, schema_tool=True)


def safe_log_text(text: str, limit: int = 80) -> str:
    """User text for a log line: truncated, control characters escaped."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", short)


def check_task(task: object, max_chars: int) -> str:
    """The task, if it can be sent as it is; InvalidInputError naming the fix otherwise."""
    if not isinstance(task, str):
        raise InvalidInputError(f"The task must be text, not {type(task).__name__}: pass a str.")
    if not task.strip():
        raise InvalidInputError("The task is empty: put the request in the cell body (or pass task=...).")
    if (problem := surrogate_problem(task, "The task")) is not None:  # json.dumps would fail mid-send
        raise InvalidInputError(problem)
    if len(task) > max_chars:
        raise InvalidInputError(
            f"The task is {len(task):,} characters; the limit is {max_chars:,}. "
            f"Shorten it or raise Settings.max_task_chars."
        )
    return task


def build_call(
    agent: AgentDefinition, task: str, options: RunOptions, settings: Settings, *,
    history: list[dict[str, Any]] | None = None, run_id: str | None = None,
) -> Call:
    """The call ``agent`` makes on ``task`` (after a thread's ``history``): options resolved,
    body built. Raises InvalidInputError."""
    task = check_task(task, settings.max_task_chars)
    options = options.resolve(agent, settings)
    extra = (options.system or "").strip()
    system = f"{agent.system}\n\n{extra}" if extra else agent.system
    body: dict[str, Any] = {
        "model": options.model,
        "max_tokens": options.max_tokens,
        "system": _system_param(system),
        "messages": [*(history or []), {"role": "user", "content": task}],
    }
    if options.temperature is not None:
        body["temperature"] = float(options.temperature)  # 0 and 0.0 must give the same cache key
    if options.tools:
        body["tools"] = options.tools.definitions()
    if options.schema is not None:
        body["output_config"] = options.schema.output_config()
    cacheable = settings.cache_enabled and agent.cache and agent.name not in settings.cache_exclude
    call = Call(agent=agent, task=task, system=system, options=options, body=body,
                use_cache=options.use_cache and cacheable, run_id=run_id)
    if options.schema is not None and not native_schema(call.model):
        return call.with_schema_tool()
    return call


def _system_param(system: str) -> str | list[dict[str, Any]]:
    """The ``system`` value: plain text, or one text block marked for prompt caching."""
    if len(system) < PROMPT_CACHE_MIN_CHARS:
        return system
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
