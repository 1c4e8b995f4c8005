"""Request building: the exact request body of one call, from an agent, a task and options.

The agent's definition goes in ``system`` (role separation), marked for Anthropic prompt
caching when it is long enough to be cached; the call's extra instructions follow it.
The task is the user message, verbatim: user text is never rewritten, bad input is
refused with a clear error. The body is also what the response cache key is derived
from (``ResponseCache.key_for``): everything that changes the answer is in it (model,
system text, messages, max_tokens, temperature) and nothing else (no key, timeout or
stream flag), and an option that is not set stays absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.agents import AgentDefinition
from ..core.errors import InvalidInputError
from ..core.options import RunOptions, surrogate_problem
from ..core.settings import Settings

__all__ = ["PROMPT_CACHE_MIN_CHARS", "Call", "build_call", "check_task"]

# Anthropic caches a system prefix only above ~1024-4096 tokens; below that the
# cache_control marker is silently ignored, so only long definitions carry it.
PROMPT_CACHE_MIN_CHARS = 4096


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

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def max_tokens(self) -> int:
        return int(self.body["max_tokens"])

    @property
    def estimated_input_tokens(self) -> int:
        """A deliberately high estimate (3 chars/token) used only for budgets and rate limits."""
        return max(1, math.ceil((len(self.system) + len(self.task)) / 3))

    def sdk_params(self) -> dict[str, Any]:
        """The body as keywords for ``client.messages.create``/``stream``."""
        params = {k: v for k, v in self.body.items() if k != "temperature"}
        if "temperature" in self.body:  # the 2.x SDK removed the keyword; the API still takes it
            params["extra_body"] = {"temperature": self.body["temperature"]}
        return params


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


def build_call(agent: AgentDefinition, task: str, options: RunOptions, settings: Settings) -> Call:
    """The call ``agent`` makes on ``task``: options resolved, body built. Raises InvalidInputError."""
    task = check_task(task, settings.max_task_chars)
    options = options.resolve(agent, settings)
    extra = (options.system or "").strip()
    system = f"{agent.system}\n\n{extra}" if extra else agent.system
    body: dict[str, Any] = {
        "model": options.model,
        "max_tokens": options.max_tokens,
        "system": _system_param(system),
        "messages": [{"role": "user", "content": task}],
    }
    if options.temperature is not None:
        body["temperature"] = float(options.temperature)  # 0 and 0.0 must give the same cache key
    cacheable = settings.cache_enabled and agent.cache and agent.name not in settings.cache_exclude
    return Call(agent=agent, task=task, system=system, options=options, body=body,
                use_cache=options.use_cache and cacheable)


def _system_param(system: str) -> str | list[dict[str, Any]]:
    """The ``system`` value: plain text, or one text block marked for prompt caching."""
    if len(system) < PROMPT_CACHE_MIN_CHARS:
        return system
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
