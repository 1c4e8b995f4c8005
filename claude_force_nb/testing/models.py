"""The models the fake serves: ids, aliases, limits and the ``/v1/models`` list and retrieve bodies.

Ids follow the API: models up to the 4.5 generation have a dated id (``claude-haiku-4-5-20251001``)
and an undated alias (``claude-haiku-4-5``); later ones (``claude-sonnet-4-6`` onwards) have one
undated id.  A request naming an alias is answered with the dated id in the Message's ``model``
field, and ``GET /v1/models/{alias}`` returns the dated model, as the API does.

A ``retired`` model is listed only when asked for (``?lifecycle=retired``) and a request naming
it is a 404 ``not_found_error``, like an id nobody knows; a ``deprecated`` one still answers, even
past its ``retires_at`` (the API's ``lifecycle`` is the retirement signal, not the date).  The
lifecycles follow the SDK's own list of deprecated models (``anthropic._data``) as of 2.15.
Release dates, context sizes and capabilities are illustrative: the fake promises their shape and
order, not Anthropic's figures.  ``FakeAnthropicServer.add_model`` adds a model (e.g. one newer
than the product's price table).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .paging import list_page

__all__ = ["ModelCatalog", "ModelInfo", "default_models"]

_LIFECYCLES = ("active", "deprecated", "retired")


@dataclass(frozen=True)
class ModelInfo:
    """One model: what ``GET /v1/models/{id}`` describes and what validation checks a request against."""

    id: str
    display_name: str
    created_at: str
    """RFC 3339 release date; the list is sorted newest first on it."""
    aliases: tuple[str, ...] = ()
    max_tokens: int = 64_000
    """The largest ``max_tokens`` a request may ask for."""
    max_input_tokens: int = 200_000
    lifecycle: str = "active"
    deprecated_at: str | None = None
    retires_at: str | None = None
    structured_outputs: bool = True
    """Whether ``output_config.format`` (native structured output) is accepted."""
    line: str | None = None

    def body(self) -> dict[str, Any]:
        """The API's ModelInfo object."""
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "lifecycle": self.lifecycle,
            "deprecated_at": self.deprecated_at,
            "retires_at": self.retires_at,
            "line": self.line,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            # Models with at most 8K output tokens (Claude 3 Haiku and 3.5 Haiku) predate thinking,
            # server tools, citations and PDF input.
            "capabilities": _capabilities(self.structured_outputs, modern=self.max_tokens > 8_192),
        }


def _supported(flag: bool) -> dict[str, bool]:
    return {"supported": flag}


def _capabilities(structured: bool, *, modern: bool) -> dict[str, Any]:
    """The API's ``capabilities`` object: every key present, each ``{"supported": bool}``."""
    yes = _supported(modern)
    return {
        "batch": _supported(True), "citations": yes, "code_execution": yes, "image_input": _supported(True),
        "pdf_input": yes, "structured_outputs": _supported(structured),
        "context_management": {"supported": modern},
        "effort": {"supported": structured, "low": _supported(structured), "medium": _supported(structured),
                   "high": _supported(structured), "max": _supported(structured)},
        "server_tools": {"supported": modern, "code_execution": yes, "web_search": yes},
        "thinking": {"supported": modern, "types": {"adaptive": yes, "between_tools": _supported(False),
                                                   "disabled": _supported(True), "enabled": yes}},
    }


def _day(date: str | None) -> str | None:
    return None if date is None else f"{date}T00:00:00Z"


def _model(id: str, name: str, date: str, line: str, *, lifecycle: str = "active", deprecated: str | None = None,
           retires: str | None = None, **kw: Any) -> ModelInfo:
    return ModelInfo(id, name, f"{date}T00:00:00Z", line=line, lifecycle=lifecycle, deprecated_at=_day(deprecated),
                     retires_at=_day(retires), **kw)


def default_models() -> list[ModelInfo]:
    """The models a new server knows, newest first (the ids of the SDK's ``Model`` literal and their
    predecessors; the dated 4.5-and-older ids carry their aliases)."""
    big: dict[str, Any] = {"max_tokens": 128_000, "max_input_tokens": 1_000_000}
    return [
        _model("claude-fable-5-2", "Claude Fable 5.2", "2026-10-20", "fable", **big),
        _model("claude-mythos-5-2", "Claude Mythos 5.2", "2026-10-20", "mythos", **big),
        _model("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-06", "haiku"),
        _model("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-29", "sonnet", max_input_tokens=1_000_000),
        _model("claude-fable-5-1", "Claude Fable 5.1", "2026-09-15", "fable", **big),
        _model("claude-opus-5-5", "Claude Opus 5.5", "2026-09-08", "opus", **big),
        _model("claude-mythos-5-1", "Claude Mythos 5.1", "2026-08-25", "mythos", **big),
        _model("claude-sonnet-5", "Claude Sonnet 5", "2026-08-18", "sonnet", max_input_tokens=1_000_000),
        _model("claude-fable-5", "Claude Fable 5", "2026-08-04", "fable", **big),
        _model("claude-mythos-5", "Claude Mythos 5", "2026-08-04", "mythos", **big),
        _model("claude-opus-5", "Claude Opus 5", "2026-07-24", "opus", **big),
        _model("claude-opus-4-8", "Claude Opus 4.8", "2026-06-09", "opus", **big),
        _model("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16", "opus", **big),
        _model("claude-mythos-preview", "Claude Mythos Preview", "2026-04-07", "mythos", lifecycle="deprecated",
               deprecated="2026-04-30", retires="2026-06-30", **big),
        _model("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17", "sonnet", max_input_tokens=1_000_000),
        _model("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05", "opus", **big),
        _model("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01", "opus", aliases=("claude-opus-4-5",),
               lifecycle="deprecated", deprecated="2026-10-22", retires="2027-01-22"),
        _model("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01", "haiku",
               aliases=("claude-haiku-4-5",)),
        _model("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29", "sonnet",
               aliases=("claude-sonnet-4-5",), lifecycle="retired", deprecated="2026-08-30", retires="2026-11-30"),
        _model("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05", "opus", aliases=("claude-opus-4-1",),
               max_tokens=32_000, structured_outputs=False,
               lifecycle="retired", deprecated="2026-02-05", retires="2026-06-15"),
        _model("claude-opus-4-20250514", "Claude Opus 4", "2025-05-14", "opus", aliases=("claude-opus-4-0",),
               max_tokens=32_000, structured_outputs=False,
               lifecycle="retired", deprecated="2026-02-05", retires="2026-06-15"),
        _model("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-14", "sonnet", aliases=("claude-sonnet-4-0",),
               structured_outputs=False, lifecycle="retired", deprecated="2026-02-05", retires="2026-06-15"),
        _model("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-19", "sonnet",
               aliases=("claude-3-7-sonnet-latest",), structured_outputs=False, lifecycle="retired",
               deprecated="2025-10-28", retires="2026-02-19"),
        _model("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22", "haiku",
               aliases=("claude-3-5-haiku-latest",), max_tokens=8_192, structured_outputs=False,
               lifecycle="retired", deprecated="2025-10-28", retires="2026-02-19"),
        _model("claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07", "haiku", max_tokens=4_096,
               structured_outputs=False, lifecycle="deprecated", deprecated="2026-04-01"),
    ]


class ModelCatalog:
    """The server's models, by id and alias (thread-safe: tests add models while requests run)."""

    def __init__(self, models: list[ModelInfo] | None = None) -> None:
        self._lock = threading.Lock()
        self._models: list[ModelInfo] = []
        self._by_name: dict[str, ModelInfo] = {}
        for model in default_models() if models is None else models:
            self.add(model)

    def add(self, model: ModelInfo) -> None:
        """Serve ``model`` (replacing one with the same id); its id and aliases resolve to it."""
        with self._lock:
            self._models = sorted([m for m in self._models if m.id != model.id] + [model],
                                  key=lambda m: (m.created_at, m.id), reverse=True)
            self._by_name = {name: m for m in self._models for name in (m.id, *m.aliases)}

    def find(self, name: str) -> ModelInfo | None:
        """The model an id or alias names, retired ones included (None if nobody knows it)."""
        with self._lock:
            return self._by_name.get(name)

    def serving(self, name: Any) -> ModelInfo | None:
        """The model a request may use: known and not retired."""
        model = self.find(name) if isinstance(name, str) else None
        return model if model is not None and model.lifecycle != "retired" else None

    def retrieve(self, name: str) -> tuple[int, Any]:
        """``GET /v1/models/{name}``: the model (an alias gives its dated model), or a 404."""
        model = self.find(name)
        return (200, model.body()) if model is not None else (404, f"model: {name}")

    def list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """``GET /v1/models?limit=&after_id=&before_id=&lifecycle=``: one page, newest first."""
        lifecycles = query.get("lifecycle") or query.get("lifecycle[]") or ["active", "deprecated"]
        unknown = sorted(set(lifecycles) - set(_LIFECYCLES))
        if unknown:
            return 400, f"lifecycle: Input should be 'active', 'deprecated' or 'retired' (got {unknown[0]!r})"
        with self._lock:
            items = [m.body() for m in self._models if m.lifecycle in lifecycles]
        return list_page(items, query, what="Model")


def created_now() -> str:
    """Today at midnight UTC, RFC 3339: the release date of a model a test adds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
