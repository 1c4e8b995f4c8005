"""Usage and AgentResult: the raw facts of one call and what a user gets back."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import (
    APICallError,
    EmptyResponseError,
    IncompleteResponseError,
    MalformedResponseError,
    RateLimitedError,
    StalledStreamError,
)

if TYPE_CHECKING:  # pragma: no cover
    from .tools import ToolStep

__all__ = ["TASK_HEAD_CHARS", "AgentResult", "Usage", "task_head"]

TASK_HEAD_CHARS = 200


def task_head(text: str | None) -> str:
    """The first line of a task (or an answer), at most TASK_HEAD_CHARS: what the ledger and
    the cache keep of it, and what tables show."""
    stripped = (text or "").strip()
    return stripped.splitlines()[0][:TASK_HEAD_CHARS] if stripped else ""


@dataclass(frozen=True)
class Usage:
    """Token counts exactly as the API reported them (input excludes cache tokens)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """From an SDK ``Usage`` object or its dict form; a missing split counts as 5m writes."""
        if usage is None:
            return cls()
        get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
        creation_total = int(get("cache_creation_input_tokens", 0) or 0)
        w1 = 0
        split = get("cache_creation", None)
        if split is not None:
            sget = split.get if isinstance(split, dict) else lambda k, d=None: getattr(split, k, d)
            w1 = int(sget("ephemeral_1h_input_tokens", 0) or 0)
            creation_total = max(creation_total, w1 + int(sget("ephemeral_5m_input_tokens", 0) or 0))
        w5 = creation_total - w1
        return cls(
            input_tokens=int(get("input_tokens", 0) or 0),
            output_tokens=int(get("output_tokens", 0) or 0),
            cache_write_5m_tokens=w5,
            cache_write_1h_tokens=w1,
            cache_read_tokens=int(get("cache_read_input_tokens", 0) or 0),
        )

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_write_5m_tokens + self.cache_write_1h_tokens + self.cache_read_tokens

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: Usage) -> Usage:
        """Token counts of two calls together (the steps of one tool loop)."""
        return Usage(*(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        return cls(**{k: int(data.get(k, 0) or 0) for k in cls.__dataclass_fields__})


def format_cost(usd: float | None) -> str:
    """'$0.0123' style; None (unknown price) shows as 'cost ?'."""
    if usd is None:
        return "cost ?"
    if usd == 0:
        return "$0"
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


@dataclass(frozen=True)
class AgentResult:
    """One agent call's outcome. ``error`` is None when the call succeeded."""

    agent: str
    model: str
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    saved_usd: float = 0.0
    cached: bool = False
    latency_s: float = 0.0
    stop_reason: str | None = None
    request_id: str | None = None
    error: str | None = None
    error_type: str | None = None
    cache_key: str | None = None
    offline: bool = False
    refused: bool = False
    attempts: int = 1
    rate_limited: int = 0  # attempts of this call answered 429
    overloaded: int = 0  # attempts of this call answered 529
    waited_s: float = 0.0  # seconds held back by the run's pacing and between retries
    steps: tuple[ToolStep, ...] = ()  # the tool calls of a tool loop, in order
    data: Any = None  # the validated structured output (a ``schema=`` run)
    run_id: str | None = None  # shared by the ledger rows of every step of one run
    batch: bool = False  # answered through the Message Batches API, priced at batch rates

    @property
    def ok(self) -> bool:
        return self.error is None

    def footer(self) -> str:
        """One line: agent · model · tokens · cost · latency (· cached/saved · offline)."""
        u = self.usage
        parts = [self.agent, self.model, f"{u.total_input_tokens:,} in / {u.output_tokens:,} out"]
        parts.append(format_cost(self.cost_usd))
        parts.append(f"{self.latency_s:.2f}s")
        if self.steps:
            parts.append(f"{len(self.steps)} tool call{'s' if len(self.steps) != 1 else ''}")
        if self.cached:
            parts.append(f"cached (saved {format_cost(self.saved_usd)})")
        if self.offline:
            parts.append("offline")
        if self.refused:
            parts.append("refused")
        if self.error:
            parts.append(f"error: {self.error_type or 'failed'}")
        return " · ".join(parts)

    def raise_for_error(self) -> AgentResult:
        """Raise the matching APICallError if the call failed; return self otherwise."""
        if self.error is None:
            return self
        cls = _ERRORS_BY_TYPE.get(self.error_type or "", APICallError)
        raise cls(self.error, error_type=self.error_type, request_id=self.request_id, attempts=self.attempts)

    def _repr_markdown_(self) -> str:
        body = self.text if self.ok else f"**Error:** {self.error}"
        return f"{body}\n\n---\n<sub>{html.escape(self.footer())}</sub>\n"

    def __str__(self) -> str:
        return self.text if self.ok else f"[error] {self.error}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


_ERRORS_BY_TYPE: dict[str, type[APICallError]] = {
    "rate_limit_error": RateLimitedError,
    "incomplete_stream": IncompleteResponseError,
    "empty_response": EmptyResponseError,
    "malformed_response": MalformedResponseError,
    "stalled": StalledStreamError,
}
