"""A deterministic, minimal instance of a JSON schema: the fake's tool arguments and JSON answers.

``instance(schema, seed)`` builds a value valid against ``schema`` (the subset a tool's
``input_schema`` or an ``output_config`` schema uses, as pydantic writes them):

* ``$ref`` to ``#/...`` (``$defs``), ``allOf`` (merged), ``anyOf`` / ``oneOf`` (the first branch
  that is not ``null``), ``const``, ``enum``, ``type`` (a list of types: the first that is not
  ``null``); a schema without ``type`` is an object if it has ``properties``, an array if it has
  ``items``, else a string.
* objects: the ``required`` properties only (minimal), each built from its own schema;
* arrays: ``max(minItems, 1)`` items (at most ``maxItems``), ``prefixItems`` first;
* strings: a word of ``seed`` (the request's last user text), or a fixed value for the formats
  ``date``, ``date-time``, ``time``, ``email``, ``uri``, ``uuid`` and ``ipv4``; padded or cut to
  ``minLength`` / ``maxLength``.  ``pattern`` is not honoured;
* integers and numbers: inside ``minimum`` / ``maximum`` / ``exclusive*`` (0-100 when unbounded),
  a multiple of ``multipleOf``; booleans and ``null`` as asked.

Every choice (which word, which number, which enum member) comes from a SHA-256 of ``seed`` and
the value's path, so the same request always gets the same value and different prompts (rows of a
DataFrame) get different ones.  Nesting deeper than 12 levels ends in ``{}`` / ``[]``.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from typing import Any

__all__ = ["instance"]

_MAX_DEPTH = 12
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,}")
_FORMATS = {
    "date": lambda n: f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}",
    "date-time": lambda n: f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
    "time": lambda n: f"{n % 24:02d}:{n % 60:02d}:00",
    "email": lambda n: f"user{n % 1000}@example.com",
    "uri": lambda n: f"https://example.com/item/{n % 1000}",
    "uuid": lambda n: str(uuid.UUID(int=n % (1 << 128))),
    "ipv4": lambda n: f"192.0.2.{n % 255}",
}


def instance(schema: Any, seed: str, salt: str = "") -> Any:
    """A value valid against ``schema``, chosen deterministically from ``seed`` (see the module docstring);
    ``salt`` varies the choices without adding words (e.g. the tool's name)."""
    return _Maker(schema, seed, salt).make(schema, "$", 0)


class _Maker:
    def __init__(self, root: Any, seed: str, salt: str) -> None:
        self.root = root
        self.seed = f"{salt}\0{seed}"
        self.words = _WORD_RE.findall(seed)

    def pick(self, path: str, n: int) -> int:
        """A number in ``range(n)`` fixed by the seed and the path."""
        digest = hashlib.sha256(f"{self.seed}\0{path}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % max(1, n)

    def make(self, schema: Any, path: str, depth: int) -> Any:
        schema = self.resolve(schema, depth)
        if schema is False:
            return None
        if not isinstance(schema, dict):
            schema = {}
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][self.pick(path, len(schema["enum"]))]
        kind = _type_of(schema)
        if kind == "object":
            return self.make_object(schema, path, depth)
        if kind == "array":
            return self.make_array(schema, path, depth)
        if kind in ("integer", "number"):
            return _number(schema, self.pick(path, 1 << 30), integer=kind == "integer")
        if kind == "boolean":
            return self.pick(path, 2) == 1
        if kind == "null":
            return None
        return self.make_string(schema, path)

    def resolve(self, schema: Any, depth: int) -> Any:
        """Follow ``$ref``, merge ``allOf`` and choose an ``anyOf`` / ``oneOf`` branch."""
        if depth > 3 * _MAX_DEPTH:  # a cycle of anyOf / allOf through $ref
            return {}
        for _ in range(32):
            if not isinstance(schema, dict):
                return schema
            if isinstance(schema.get("$ref"), str):
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = {**self.lookup(schema["$ref"]), **rest}
            elif isinstance(schema.get("allOf"), list):
                merged = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    merged = _merge(merged, self.resolve(part, depth + 1))
                schema = merged
            elif isinstance(branches := schema.get("anyOf") or schema.get("oneOf"), list):
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                chosen = next((b for b in branches if _type_of(self.resolve(b, depth + 1)) != "null"), branches[0])
                schema = _merge(rest, self.resolve(chosen, depth + 1))
            else:
                return schema
        return {}

    def lookup(self, ref: str) -> Any:
        """A local ``#/a/b`` reference into the root schema (``{}`` when it points nowhere)."""
        node: Any = self.root if ref.startswith("#") else {}
        for part in filter(None, ref[1:].split("/")):
            if not isinstance(node, dict):
                return {}
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
        return node

    def make_object(self, schema: dict, path: str, depth: int) -> dict:
        if depth >= _MAX_DEPTH:
            return {}
        props = schema.get("properties")
        if not isinstance(props, dict):
            props = {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        names = [p for p in props if p in required] + [r for r in required if r not in props]
        return {name: self.make(props.get(name, {}), f"{path}.{name}", depth + 1) for name in names}

    def make_array(self, schema: dict, path: str, depth: int) -> list:
        if depth >= _MAX_DEPTH:
            return []
        count = max(_int(schema.get("minItems"), 0), 1)
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        prefix = schema.get("prefixItems")
        if not isinstance(prefix, list):
            prefix = []
        items = schema.get("items", {})
        return [self.make(prefix[i] if i < len(prefix) else items, f"{path}[{i}]", depth + 1) for i in range(count)]

    def make_string(self, schema: dict, path: str) -> str:
        n = self.pick(path, 1 << 30)
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt](n)
        words = self.words or [path.rsplit(".", 1)[-1].strip("$[]0123456789") or "value"]
        text = words[n % len(words)]
        low, high = _int(schema.get("minLength"), 0), schema.get("maxLength")
        while len(text) < low:
            text += "-" + text
        return text[:high] if isinstance(high, int) else text


def _type_of(schema: Any) -> str:
    """The schema's one type: the first non-null of a list; inferred from its keywords when absent."""
    if not isinstance(schema, dict):
        return "string"
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if kinds else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _merge(base: dict, extra: Any) -> dict:
    """``allOf`` / branch merging: properties and required lists are combined, the rest overridden."""
    if not isinstance(extra, dict):
        return base
    merged = {**base, **extra}
    if isinstance(base.get("properties"), dict) and isinstance(extra.get("properties"), dict):
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if isinstance(base.get("required"), list) and isinstance(extra.get("required"), list):
        merged["required"] = base["required"] + [r for r in extra["required"] if r not in base["required"]]
    return merged


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bound(schema: dict, inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    """A bound and whether it is exclusive (``exclusiveMinimum: true`` of draft 4 included)."""
    value = schema.get(exclusive)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), True
    value = schema.get(inclusive)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), schema.get(exclusive) is True
    return None, False


def _number(schema: dict, n: int, *, integer: bool) -> int | float:
    """A number inside the schema's bounds (0-100 when unbounded), a multiple of ``multipleOf``."""
    (low, low_open), (high, high_open) = _bound(schema, "minimum", "exclusiveMinimum"), _bound(
        schema, "maximum", "exclusiveMaximum")
    if low is None:
        low, low_open = (0.0 if high is None or high > 0 else high - 100.0), False
    if high is None:
        high, high_open = low + 100.0, False
    step = schema.get("multipleOf") if isinstance(schema.get("multipleOf"), (int, float)) else None
    if integer:
        first = math.floor(low) + 1 if low_open else math.ceil(low)
        last = math.ceil(high) - 1 if high_open else math.floor(high)
        if step:
            first, last = math.ceil(first / step) * step, math.floor(last / step) * step
            count = max(1, int((last - first) // step) + 1)
            return int(first + (n % count) * step)
        return first + n % max(1, last - first + 1)
    if step:
        first, last = math.ceil(low / step) * step, math.floor(high / step) * step
        count = max(1, int(round((last - first) / step)) + 1)
        value = first + (n % count) * step
        return value if (value > low or not low_open) and (value < high or not high_open) else first + step
    grid = 100
    k = n % (grid + 1)
    if low_open:
        k = max(k, 1)
    if high_open:
        k = min(k, grid - 1)
    return round(low + (high - low) * k / grid, 6)
