"""Tools: Python functions an agent may call, described to the API and checked on the way in.

``@tool`` turns a function (``def`` or ``async def``) into a :class:`Tool`:

- the name is the function's (or ``@tool(name=...)``) and must match the API's rule
  ``^[a-zA-Z0-9_-]{1,64}$``;
- the description is the docstring's text without its sections; each parameter's
  description comes from a Google-style ``Args:`` or NumPy-style ``Parameters`` section
  (read by ``docstring_parser``, the SDK's own dependency);
- the ``input_schema`` is pydantic's JSON schema of a model built from the signature and
  type hints, and the same model validates (and converts) the model's arguments.

The decorated name stays callable as the plain function, so it can be tried in a cell.
:class:`ToolSet` gathers tools for one request and refuses two tools of one name;
:class:`ToolStep` records one call, for a result's ``steps``. Running calls is the
engine's job (``engine/tool_runner.py``).
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, overload

import docstring_parser
import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from .errors import ToolArgumentsError, ToolDefinitionError
from .schemas import GENERATED, UntitledJsonSchema, short_repr, validation_problems

__all__ = ["TOOL_NAME_PATTERN", "Tool", "ToolSet", "ToolStep", "tool", "tool_set"]

TOOL_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # the API's rule for tools[].name, in full
_TYPE_HELP = "use str, int, float, bool, list, dict, Literal[...] or a pydantic model"


@dataclass(frozen=True, eq=False)
class Tool:
    """A function offered to the model: its API definition and its argument checker.

    ``timeout_s`` (None: the runner's default) bounds one call. Calling the Tool calls the
    function unchanged.
    """

    name: str
    description: str
    function: Callable[..., Any]
    input_schema: dict[str, Any]
    arguments_model: type[BaseModel] = field(repr=False)
    is_async: bool = False
    timeout_s: float | None = None

    def definition(self) -> dict[str, Any]:
        """The API's tool definition: ``{"name", "description", "input_schema"}``
        (no ``description`` key when the function has no docstring)."""
        definition: dict[str, Any] = {"name": self.name}
        if self.description:
            definition["description"] = self.description
        definition["input_schema"] = copy.deepcopy(self.input_schema)
        return definition

    def validate(self, arguments: object) -> dict[str, Any]:
        """The model's arguments checked and converted to keyword arguments for the function.

        Raises :class:`ToolArgumentsError`, whose one-line message is meant to go back to
        the model as the call's error result.
        """
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                f"Arguments for {self.name} must be a JSON object, not {short_repr(arguments)}."
            )
        try:
            values = self.arguments_model.model_validate(dict(arguments))
        except ValidationError as exc:
            raise ToolArgumentsError(
                f"Invalid arguments for {self.name}: {validation_problems(exc)}. "
                "Call it again with arguments that fit its input_schema."
            ) from None
        return {spec.alias or key: getattr(values, key) for key, spec in type(values).model_fields.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        summary = self.description.split("\n", 1)[0]
        return f"<Tool {self.name}: {summary}>" if summary else f"<Tool {self.name}>"


@overload
def tool(
    function: Callable[..., Any], /, *, name: str | None = ..., description: str | None = ...,
    timeout_s: float | None = ...,
) -> Tool: ...


@overload
def tool(
    *, name: str | None = ..., description: str | None = ..., timeout_s: float | None = ...
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a :class:`Tool`: ``@tool``, ``@tool(name="lookup")`` or ``tool(f)``.

    Refused with one clear line (:class:`ToolDefinitionError`): anything but a function, a
    generator, ``*args``/``**kwargs`` or positional-only parameters, a parameter without a
    type hint or with a type that JSON cannot carry, and a name the API would refuse.
    A Tool passed again is returned as it is (renamed if ``name`` is given).
    """
    if function is None:
        return lambda f: tool(f, name=name, description=description, timeout_s=timeout_s)
    if isinstance(function, Tool):
        if name is not None:
            _check_name(name)
        given = {"name": name, "description": description, "timeout_s": timeout_s}
        changes: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        return replace(function, **changes) if changes else function
    if not (inspect.isfunction(function) or inspect.ismethod(function) or isinstance(function, functools.partial)):
        raise ToolDefinitionError(
            f"Cannot make a tool of {short_repr(function)} ({type(function).__name__}): "
            "pass a function defined with def or async def."
        )
    name = name if name is not None else getattr(function, "__name__", "")
    _check_name(name)
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        raise ToolDefinitionError(f"Tool {name!r} is a generator: return its result instead of yielding it.")
    documented = function.func if isinstance(function, functools.partial) else function
    docs = docstring_parser.parse(inspect.getdoc(documented) or "")
    model = _arguments_model(function, name, docs)
    return Tool(
        name=name,
        description=description if description is not None else _description(docs),
        function=function,
        input_schema=_input_schema(model, function, name),
        arguments_model=model,
        is_async=inspect.iscoroutinefunction(function),
        timeout_s=timeout_s,
    )


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.fullmatch(name):
        raise ToolDefinitionError(
            f"Tool name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', "
            "and set it with @tool(name=...)."
        )


def _description(docs: docstring_parser.Docstring) -> str:
    return (docs.description or "").strip()


def _arguments_model(function: Callable[..., Any], name: str, docs: docstring_parser.Docstring) -> type[BaseModel]:
    try:
        signature = inspect.signature(function, eval_str=True)
    except Exception as exc:  # a hint naming something undefined, or an unreadable signature
        raise ToolDefinitionError(
            f"Cannot read the parameters of tool {name!r} ({type(exc).__name__}: {exc}): "
            "make sure every type in its hints is defined."
        ) from None
    described = {p.arg_name: " ".join(p.description.split()) for p in docs.params if p.description}
    fields: dict[str, Any] = {}
    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"Tool {name!r} cannot take *{param.name}: list each parameter with a type, "
                "e.g. def f(column: str, limit: int = 10)."
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"Parameter {param.name!r} of tool {name!r} is positional-only: "
                "remove the '/' from its signature (the model passes arguments by name)."
            )
        if param.annotation is param.empty:
            raise ToolDefinitionError(
                f"Parameter {param.name!r} of tool {name!r} has no type: annotate it, "
                f"e.g. {param.name}: str ({_TYPE_HELP})."
            )
        default = ... if param.default is param.empty else param.default
        spec = Field(default, alias=param.name, description=described.get(param.name))
        fields[f"arg{index}"] = (param.annotation, spec)
    try:
        return create_model(GENERATED, __config__=ConfigDict(extra="forbid"), **fields)
    except pydantic.PydanticUserError:
        raise _type_problem(signature, name) from None


def _input_schema(model: type[BaseModel], function: Callable[..., Any], name: str) -> dict[str, Any]:
    try:
        return model.model_json_schema(schema_generator=UntitledJsonSchema)
    except pydantic.PydanticUserError:
        raise _type_problem(inspect.signature(function, eval_str=True), name) from None


def _type_problem(signature: inspect.Signature, name: str) -> ToolDefinitionError:
    """The error naming the first parameter whose type has no JSON form."""
    for param in signature.parameters.values():
        try:
            TypeAdapter(param.annotation).json_schema()
        except pydantic.PydanticUserError:
            shown = getattr(param.annotation, "__name__", None) or repr(param.annotation)
            return ToolDefinitionError(
                f"Parameter {param.name!r} of tool {name!r} has a type the model cannot send as "
                f"JSON ({shown}): {_TYPE_HELP} (e.g. take a variable's name and look it up)."
            )
    return ToolDefinitionError(f"Tool {name!r} has parameter types the model cannot send as JSON: {_TYPE_HELP}.")


class ToolSet(Mapping[str, Tool]):
    """The tools of one request, by name, in the order given; two tools of one name are refused.

    Items may be Tools or plain functions (made tools with :func:`tool`); the same function
    given twice counts once.
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            made = tool(item)
            known = self._tools.get(made.name)
            if known is not None and known.function is not made.function:
                raise ToolDefinitionError(
                    f"Two tools are named {made.name!r} ({_origin(known)} and {_origin(made)}): "
                    "rename one with @tool(name=...)."
                )
            self._tools.setdefault(made.name, made)

    def definitions(self) -> list[dict[str, Any]]:
        """The request's ``tools`` list."""
        return [t.definition() for t in self._tools.values()]

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolSet({', '.join(self._tools)})"


def tool_set(tools: Iterable[Tool | Callable[..., Any]]) -> ToolSet:
    """:class:`ToolSet` of ``tools``: ``tool_set([describe_sales, *file_tools()])``."""
    return ToolSet(tools)


def _origin(t: Tool) -> str:
    target = t.function.func if isinstance(t.function, functools.partial) else t.function
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', t.name)}"


@dataclass(frozen=True)
class ToolStep:
    """One tool call of a run: what the model asked, what came back, how long it took."""

    tool: str
    arguments: dict[str, Any]
    result_preview: str
    duration_s: float
    error: str | None = None
    tool_use_id: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def call_text(self) -> str:
        """The call as Python would write it: ``describe(name='sales')``."""
        arguments = ", ".join(f"{key}={short_repr(value, 40)}" for key, value in self.arguments.items())
        return f"{self.tool}({arguments})"

    def label(self) -> str:
        """The line shown in the cell: ``→ describe(name='sales') · 12 ms`` (· error: ...)."""
        took = f"{self.duration_s * 1000:.0f} ms" if self.duration_s < 1 else f"{self.duration_s:.1f} s"
        line = f"→ {self.call_text()} · {took}"
        return line if self.error is None else f"{line} · error: {textwrap.shorten(self.error, 80, placeholder=' …')}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
