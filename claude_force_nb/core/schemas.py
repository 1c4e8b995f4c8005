"""Structured output: what ``schema=`` may be, and checking a reply against it.

A schema is given in one of three shapes, all turned into one :class:`OutputSchema`:

- a pydantic model class: the reply becomes an instance of it;
- a JSON-schema dict (``{"type": "object", "properties": {...}}``): the reply is a dict,
  checked with ``jsonschema``;
- a short field list, the shorthand llm users know: ``'title, score float, tags list[str]'``
  (comma- or newline-separated; types ``str`` (default), ``int``, ``float``, ``bool`` and
  ``list[...]`` of those; ``name type: description`` adds a description). The reply is a dict.

``OutputSchema.json_schema`` is what the API gets, in ``output_config`` (native structured
output) or as a forced tool's ``input_schema``: the SDK's ``transform_schema`` makes it fit
what the API accepts (constraints it cannot enforce move into descriptions, objects get
``additionalProperties: false``). The reply is still validated against the full schema.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import GenericAlias
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema

from .errors import InvalidSchemaError, SchemaMismatchError

__all__ = [
    "GENERATED",
    "SCHEMA_TOOL_NAME",
    "OutputSchema",
    "SchemaSpec",
    "UntitledJsonSchema",
    "fields_model",
    "short_repr",
    "validation_problems",
]

SchemaSpec = type[BaseModel] | Mapping[str, Any] | str
SCHEMA_TOOL_NAME = "record_answer"  # the forced tool, for models without native structured output

_SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_FIELD = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\s+(?P<type>\S+))?")
_LIST = re.compile(r"list\[(?P<item>\w+)\]")
_DSL_HELP = (
    "write fields like 'title, score float, tags list[str]' "
    "(types str, int, float, bool and list[...] of those; default str)"
)
_SPEC_HELP = (
    "pass a pydantic model class, a JSON-schema dict such as "
    "{'type': 'object', 'properties': {...}}, or a field list such as 'title, score float'"
)


_DTYPES = {"integer": "Int64", "number": "Float64", "string": "string", "boolean": "boolean"}  # JSON type -> column
GENERATED = "__generated__"  # the class name of models built from a signature or a field list


class UntitledJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON schema without the titles it derives from names (``"title": "Score"``
    for ``score``): they tell the model nothing and cost tokens on every request. A model
    built from a signature or field list (named ``GENERATED``) loses its made-up title too."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        result = super().generate(schema, mode)
        if result.get("title") == GENERATED:
            del result["title"]
        return result


def short_repr(value: object, width: int = 60, items: int = 4) -> str:
    """A repr cut to about ``width`` characters and ``items`` items per container, for
    messages and summaries (reprlib: a long list is never turned into a long string)."""
    cut = reprlib.Repr()  # keyword arguments only from Python 3.12
    cut.maxstring = cut.maxother = width
    cut.maxlist = cut.maxtuple = cut.maxset = cut.maxfrozenset = cut.maxdict = cut.maxdeque = items
    cut.maxlevel = 2
    return cut.repr(value)


def validation_problems(exc: ValidationError, limit: int = 5) -> str:
    """Pydantic's errors as one line: ``'score: Input should be a valid number (got 'high'); ...'``."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:limit]:
        where = ".".join(str(step) for step in err["loc"]) or "(top level)"
        message = "Input should be a JSON object" if err["type"] == "model_type" else err["msg"]
        text = f"{where}: {message}"
        if err["type"] not in ("missing", "extra_forbidden"):
            text += f" (got {short_repr(err['input'])})"
        parts.append(text)
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def fields_model(text: str) -> type[BaseModel]:
    """A pydantic model for a field list such as ``'title, score float, tags list[str]'``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchemaError(f"Empty schema string: {_DSL_HELP}.")
    separator = "\n" if "\n" in text else ","
    fields: dict[str, Any] = {}
    names: set[str] = set()
    for number, item in enumerate(text.split(separator)):
        head, _, description = item.partition(":")
        match = _FIELD.fullmatch(head.strip())
        problem = _field_problem(item, match, names)
        if problem:
            raise InvalidSchemaError(f"Invalid schema string {text!r}: {problem}; {_DSL_HELP}.")
        assert match is not None
        name = match["name"]
        names.add(name)
        field = Field(alias=name, description=description.strip() or None)
        fields[f"f{number}"] = (_field_type(match["type"] or "str"), field)
    return create_model(GENERATED, __config__=ConfigDict(extra="forbid"), **fields)


def _field_problem(item: str, match: re.Match[str] | None, seen: set[str]) -> str | None:
    if not item.strip():
        return "an empty field (two separators in a row?)"
    if match is None:
        return f"cannot read field {item.strip()!r} (expected 'name' or 'name type')"
    if match["name"] in seen:
        return f"field {match['name']!r} appears twice"
    kind = match["type"] or "str"
    inner = _LIST.fullmatch(kind)
    if (inner["item"] if inner else kind) not in _SCALARS:
        return f"unknown type {kind!r} for field {match['name']!r}"
    return None


def _field_type(kind: str) -> Any:
    """The annotation for a field type word: a scalar class, or ``list[scalar]`` built at run time."""
    inner = _LIST.fullmatch(kind)
    if inner is None:
        return _SCALARS[kind]
    return GenericAlias(list, _SCALARS[inner["item"]])


@dataclass(frozen=True, eq=False)
class OutputSchema:
    """One requested output shape: what to send (``json_schema``) and how to check a reply.

    Build it with :meth:`from_spec`. ``model`` is the user's pydantic class (replies become
    instances of it) or None (replies are dicts); ``columns`` are the top-level field names
    in order, for DataFrame views.
    """

    json_schema: dict[str, Any]
    columns: tuple[str, ...]
    model: type[BaseModel] | None
    _check: Callable[[Any], Any]

    @classmethod
    def from_spec(cls, spec: SchemaSpec | OutputSchema) -> OutputSchema:
        """From a pydantic model class, a JSON-schema dict or a field-list string."""
        if isinstance(spec, OutputSchema):
            return spec
        if isinstance(spec, str):
            model = fields_model(spec)
            return cls(_api_schema(model), _columns(model), None, _model_check(model, as_dict=True))
        if isinstance(spec, type) and issubclass(spec, BaseModel):
            return cls(_api_schema(spec), _columns(spec), spec, _model_check(spec, as_dict=False))
        if isinstance(spec, Mapping):
            schema = _checked_json_schema(dict(spec))
            return cls(_api_schema(schema), tuple(schema["properties"]), None, _json_schema_check(schema))
        raise InvalidSchemaError(f"schema={short_repr(spec)} is not a schema: {_SPEC_HELP}.")

    def validate(self, text: str) -> Any:
        """The reply's text parsed and validated: a model instance or a dict.

        Raises :class:`SchemaMismatchError` (one line, for the result's ``error``) when the
        text is not JSON or does not fit.
        """
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise SchemaMismatchError(f"The reply is not JSON ({exc}): {short_repr(text)}") from None
        return self.validate_data(data)

    def validate_data(self, data: Any) -> Any:
        """Already-parsed data (a forced tool's ``input``) validated, as :meth:`validate`."""
        return self._check(data)

    def output_config(self) -> dict[str, Any]:
        """The request's ``output_config`` for native structured output."""
        return {"format": {"type": "json_schema", "schema": self.json_schema}}

    def tool_definition(self) -> dict[str, Any]:
        """The forced tool for models without native structured output."""
        return {
            "name": SCHEMA_TOOL_NAME,
            "description": "Record the answer in exactly this structure.",
            "input_schema": self.json_schema,
        }

    def tool_choice(self) -> dict[str, Any]:
        """The ``tool_choice`` that forces :meth:`tool_definition`."""
        return {"type": "tool", "name": SCHEMA_TOOL_NAME}

    def column_dtypes(self) -> dict[str, str | type]:
        """The pandas dtype of each field's column, as the schema types it (integer: Int64,
        number: Float64, string: string, boolean: boolean, else object): a failed row is <NA>."""
        properties = self.json_schema.get("properties", {})
        return {name: _DTYPES.get(str(properties.get(name, {}).get("type")), object) for name in self.columns}

    @staticmethod
    def fields_of(data: Any) -> dict[str, Any]:
        """A structured answer's fields by name: a pydantic instance (by alias) or a dict; {} for None."""
        if data is None:
            return {}
        if hasattr(data, "model_dump"):
            return dict(data.model_dump(by_alias=True))
        return dict(data)


def _api_schema(spec: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    from anthropic import transform_schema  # the SDK is heavy: only when a schema is built

    try:
        if isinstance(spec, type):
            spec = spec.model_json_schema(schema_generator=UntitledJsonSchema)
        return transform_schema(spec)
    except (ValueError, pydantic.PydanticUserError) as exc:
        raise InvalidSchemaError(f"The schema cannot be sent as structured output: {exc}") from None


def _columns(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(field.alias or name for name, field in model.model_fields.items())


def _model_check(model: type[BaseModel], *, as_dict: bool) -> Callable[[Any], Any]:
    def check(data: Any) -> Any:
        try:
            value = model.model_validate(data)
        except ValidationError as exc:
            raise SchemaMismatchError(f"The reply does not fit the schema: {validation_problems(exc)}") from None
        return value.model_dump(by_alias=True) if as_dict else value

    return check


def _checked_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "top level"
        raise InvalidSchemaError(f"Invalid JSON schema ({where}): {exc.message}; {_SPEC_HELP}.") from None
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), Mapping):
        raise InvalidSchemaError(
            "A JSON schema for structured output must describe an object: "
            "{'type': 'object', 'properties': {...}} (a list can be one of its properties)."
        )
    return schema


def _json_schema_check(schema: dict[str, Any]) -> Callable[[Any], Any]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)

    def check(data: Any) -> Any:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            parts = [f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors[:5]]
            more = [f"and {len(errors) - 5} more"] if len(errors) > 5 else []
            raise SchemaMismatchError(f"The reply does not fit the schema: {'; '.join(parts + more)}")
        return data

    return check
