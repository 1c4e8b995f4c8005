"""RunOptions: every per-call option, and the one rule each value must follow.

A call's options come from three places, strongest first: the call itself
(``Orchestrator.run`` keywords, ``%%agent`` flags, a widget), the agent's definition
file, then :class:`~claude_force_nb.core.settings.Settings`. The same checks apply
wherever a value comes from: a ``max_tokens`` refused in a cell is refused in an agent
file too, with the same message (agent_files.py puts the file's name in front).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from .agents import AgentDefinition
    from .schemas import OutputSchema
    from .settings import Settings
    from .tools import ToolSet

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "RunOptions",
    "flag_problem",
    "max_steps_problem",
    "MAX_STEPS_LIMIT",
    "max_tokens_problem",
    "model_problem",
    "surrogate_problem",
    "temperature_problem",
]

# The most output tokens any current model accepts in one answer (Opus 4.6 / Sonnet 4.6
# with the 128k output limit). The API refuses more; refusing it here names the fix.
MAX_OUTPUT_TOKENS = 128_000
MAX_STEPS_LIMIT = 1_000  # model turns of one tool loop; more is a runaway, not a plan
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_SURROGATE = re.compile("[\ud800-\udfff]")


def model_problem(value: object) -> str | None:
    """Why ``value`` cannot be a model id, with the fix; None if it can (or is not set)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return f"model={value!r} is not text: use a model id such as 'claude-sonnet-4-6'."
    if not _MODEL_ID.match(value):
        return f"Malformed model id {value!r}: use an id such as 'claude-sonnet-4-6'."
    return None


def max_tokens_problem(value: object) -> str | None:
    """Why ``value`` cannot be max_tokens, with the fix; None if it can (or is not set)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"max_tokens={value!r} is not a whole number: use one from 1 to {MAX_OUTPUT_TOKENS:,}."
    if not 1 <= value <= MAX_OUTPUT_TOKENS:
        return f"max_tokens={value!r} is out of range: use a whole number from 1 to {MAX_OUTPUT_TOKENS:,}."
    return None


def temperature_problem(value: object) -> str | None:
    """Why ``value`` cannot be a temperature, with the fix; None if it can (or is not set)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"temperature={value!r} is not a number: use one from 0 to 1."
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        return f"temperature={value!r} is out of range: use a number from 0 to 1."
    return None


def surrogate_problem(text: str, what: str) -> str | None:
    """Where ``text`` holds a lone surrogate (which no UTF-8 request can carry), with the fix; None if nowhere.

    Lone surrogates come from bytes decoded with ``errors="surrogateescape"`` (file names,
    ``os.environ``, some readers) or from JSON ``"\\udXXX"`` escapes. ``what`` names the text,
    e.g. "The task".
    """
    found = _SURROGATE.search(text)
    if found is None:
        return None
    before = text[: found.start()]
    line = before.count("\n") + 1
    column = found.start() - (before.rfind("\n") + 1) + 1
    return (
        f"{what} holds a lone surrogate {found.group()!r} at line {line}, column {column}: it cannot be "
        f"sent as UTF-8 text. Remove it, or decode the data it came from with its real encoding."
    )


def _system_problem(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"system must be text, not {type(value).__name__}: pass a str of extra instructions, or None."
    return surrogate_problem(value, "The system text")


def max_steps_problem(value: object) -> str | None:
    """Why ``value`` cannot be max_steps (model turns of one tool loop); None if it can (or is not set)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STEPS_LIMIT:
        return f"max_steps={value!r} is not a whole number from 1 to {MAX_STEPS_LIMIT:,}: pass e.g. max_steps=10."
    return None


def _label_problem(name: str) -> Callable[[object], str | None]:
    """The check of an optional non-empty text option (thread, cell_id, notebook)."""

    def problem(value: object) -> str | None:
        if value is None or (isinstance(value, str) and value.strip()):
            return None
        return f"{name}={value!r} is not a non-empty str: pass a name, or None."

    return problem


def _tool_set(value: object) -> ToolSet | None:
    """``tools=`` as a ToolSet: a list of functions/Tools (one function alone will do)."""
    from .tools import Tool, ToolSet  # pydantic and docstring_parser: only when tools are used

    if value is None or isinstance(value, ToolSet):
        return value
    if isinstance(value, Tool) or callable(value):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidInputError(
            f"tools={value!r:.60} is not a list of functions: pass e.g. tools=[describe, lookup]."
        )
    return ToolSet(value)


def _output_schema(value: object) -> OutputSchema | None:
    from .schemas import OutputSchema

    return None if value is None else OutputSchema.from_spec(value)  # type: ignore[arg-type]


def flag_problem(name: str, *, optional: bool = False) -> Callable[[object], str | None]:
    """The check of a True/False option (``optional``: None is allowed too)."""
    allowed = "True, False or None (None: Settings decides)" if optional else "True or False"

    def problem(value: object) -> str | None:
        if isinstance(value, bool) or (optional and value is None):
            return None
        return f"{name}={value!r} is not {allowed}: pass a bool."

    return problem


@dataclass(frozen=True)
class RunOptions:
    """The options of one call. ``None`` means "not set here": the agent's file, then
    Settings, decide (see :meth:`resolve`). Construction refuses a bad value with an
    :class:`InvalidInputError` that names the value and the fix."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    system: str | None = None  # extra instructions after the agent's definition
    use_cache: bool = True  # read and write the response cache
    refresh: bool = False  # skip the cache read; store the new answer
    stream: bool | None = None
    tools: ToolSet | None = None  # functions the model may call (a list is made a ToolSet)
    schema: OutputSchema | None = None  # structured output (a spec is made an OutputSchema)
    thread: str | None = None  # a conversation thread to continue and extend
    max_steps: int | None = None  # model turns of a tool loop at most
    cell_id: str | None = None  # the notebook cell asking (a re-run replaces its thread turn)
    notebook: str | None = None  # the notebook asking (for ``--continue``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tools", _tool_set(self.tools))
        object.__setattr__(self, "schema", _output_schema(self.schema))
        for name, problem in _CHECKS.items():
            if (message := problem(getattr(self, name))) is not None:
                raise InvalidInputError(message)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> RunOptions:
        """Options from keyword arguments; an unknown name is refused with the known ones."""
        if unknown := set(kwargs) - set(_CHECKS):
            raise InvalidInputError(
                f"Unknown option(s) {', '.join(sorted(unknown))}: use {', '.join(_CHECKS)} "
                f"(see help(Orchestrator.run))."
            )
        return cls(**kwargs)

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments for ``Orchestrator.run`` (tools and schema as they are)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def resolve(self, agent: AgentDefinition, settings: Settings) -> RunOptions:
        """These options with the defaults filled in: this call, then the agent, then Settings.

        The result is checked again, so a bad default (e.g. ``Settings.max_tokens``)
        is refused with the same message as a bad argument.
        """
        return dataclasses.replace(
            self,
            model=self.model or agent.model or settings.default_model,
            max_tokens=self.max_tokens if self.max_tokens is not None else (agent.max_tokens or settings.max_tokens),
            temperature=self.temperature if self.temperature is not None else agent.temperature,
            stream=settings.stream if self.stream is None else self.stream,
            max_steps=self.max_steps if self.max_steps is not None else settings.max_steps,
        )


_CHECKS: dict[str, Callable[[object], str | None]] = {
    "model": model_problem,
    "max_tokens": max_tokens_problem,
    "temperature": temperature_problem,
    "system": _system_problem,
    "use_cache": flag_problem("use_cache"),
    "refresh": flag_problem("refresh"),
    "stream": flag_problem("stream", optional=True),
    "tools": lambda value: None,  # checked while made a ToolSet
    "schema": lambda value: None,  # checked while made an OutputSchema
    "thread": _label_problem("thread"),
    "max_steps": max_steps_problem,
    "cell_id": _label_problem("cell_id"),
    "notebook": _label_problem("notebook"),
}
