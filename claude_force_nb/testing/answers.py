"""The simulated model: the deterministic answer, prompt caching, and the Message it makes.

The answer text is a pure function of ``model``, ``system`` and ``messages``: a short Markdown
paragraph that starts with ``**Offline answer** from `MODEL`.``, quotes the start of the last user
message and adds 2-4 canned sentences.  After ``tool_result`` blocks it quotes the results instead
(``claude_force_nb.testing.tools``); with ``output_config.format`` (``json_schema``) it is JSON: a
deterministic minimal instance of the schema (``claude_force_nb.testing.schemas``).  A request
that offers tools may be answered with ``tool_use`` blocks instead (see ``tools``).  Then
``stop_sequences`` are honoured (``stop_reason "stop_sequence"``) and the output is cut to
``max_tokens`` tokens (``stop_reason "max_tokens"``, tool calls dropped).

Token accounting (a deliberately simple, documented approximation):

* input: ``claude_force_nb.testing.prompt.count_input_tokens`` (4 characters a token).
* ``output_tokens`` = number of whitespace-separated words of the answer text, plus
  ``max(1, ceil(len(json.dumps(input)) / 4))`` for each ``tool_use`` block.
* Prompt cache: if a ``system`` text block carries ``cache_control`` (``{"type": "ephemeral"}``,
  optionally ``"ttl": "1h"``), the last such block is a breakpoint.  With
  ``P = ceil(chars of the system blocks up to and including it / 4) >= 1024`` the first request with
  that exact prefix (model + texts) reports ``cache_creation_input_tokens = P`` (split into
  ``cache_creation.ephemeral_5m/1h_input_tokens`` by ttl), later ones ``cache_read_input_tokens = P``.
  ``input_tokens = max(1, count(request) - P)`` then.  The seen-prefix set lives per server.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import uuid
from dataclasses import dataclass

from .faults import Fault
from .prompt import count_input_tokens, question, system_blocks
from .schemas import instance
from .tools import planned_calls, results_answer, tool_results, tool_use_blocks

__all__ = ["CachePrefix", "PromptCache", "answer_text", "build_message", "input_usage"]

CACHE_MIN_TOKENS = 1024
_WORD_RE = re.compile(r"\S+")

_SENTENCES = (
    "This reply comes from the offline fake Anthropic server, not from a real model.",
    "The same request always produces exactly the same words.",
    "Token usage is estimated at four characters per input token and one token per output word.",
    "Markdown such as **bold** text and `inline code` passes through unchanged.",
    "Nothing was sent over the internet while producing this answer.",
    "Latency, errors and streaming behaviour are scripted by the test suite.",
)


# ------------------------------------------------------------------------------------------ the answer
def _digest(body: dict) -> str:
    canonical = json.dumps({"model": body.get("model", ""), "system": body.get("system"),
                            "messages": body.get("messages")}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def answer_text(body: dict) -> str:
    """The deterministic answer for a create body (before stop sequences and ``max_tokens``)."""
    model = body.get("model", "")
    digest = _digest(body)
    results = tool_results(body)
    if results:
        return results_answer(model, results, digest)
    asked = question(body).replace('"', "'")
    if len(asked) > 60:
        asked = asked[:60].rstrip() + "…"
    n = 2 + int(digest[0], 16) % 3  # 2..4 sentences
    start = int(digest[1:3], 16) % len(_SENTENCES)
    extra = [_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(n - 1)]
    parts = [f"**Offline answer** from `{model}`.", f'You asked: "{asked}".' if asked else "You asked nothing."]
    parts.extend(extra)
    parts.append(f"Fingerprint `{digest[:8]}`.")
    return " ".join(parts)


def json_answer(body: dict) -> str | None:
    """The JSON text for ``output_config.format`` (a ``json_schema``), else None."""
    fmt = (body.get("output_config") or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    return json.dumps(instance(fmt.get("schema"), question(body)), ensure_ascii=False)


def _cut_words(text: str, n: int) -> str:
    """Keep the first ``n`` whitespace-separated words, preserving the original spacing."""
    if n <= 0:
        return ""
    for i, m in enumerate(_WORD_RE.finditer(text)):
        if i == n - 1:
            return text[: m.end()]
    return text


def _word_count(text: str) -> int:
    return len(text.split())


def _first_stop(text: str, stop_sequences: list[str]) -> tuple[int, str] | None:
    """Where the earliest stop sequence starts in ``text``, and which one it is."""
    best: tuple[int, str] | None = None
    for seq in stop_sequences:
        idx = text.find(seq) if seq else -1
        if idx >= 0 and (best is None or idx < best[0]):
            best = (idx, seq)
    return best


def _chosen_text(body: dict, fault: Fault | None, found: dict[str, str | None],
                 calling: bool) -> tuple[str, str, dict | None]:
    """The text before limits, its stop reason, and ``stop_details``: scripted, refusal, empty (also
    when only tools are called), JSON for a schema, or the answer."""
    if fault and fault.text is not None:
        return fault.text, "end_turn", None
    if "refuse" in found:
        return "I can't help with that request.", "refusal", {"type": "refusal", "category": None, "explanation": None}
    if "empty" in found or calling:
        return "", "end_turn", None
    return json_answer(body) or answer_text(body), "end_turn", None


def _tool_tokens(block: dict) -> int:
    return max(1, math.ceil(len(json.dumps(block["input"])) / 4))


def build_message(body: dict, fault: Fault | None, found: dict[str, str | None], usage: dict,
                  model: str | None = None) -> dict:
    """The full Message for a valid create body; ``usage`` comes from the prompt cache (input side).

    ``model`` is the id the Message names (the dated id of an alias); default: the requested one.
    """
    calls = tool_use_blocks(body, planned_calls(body, fault, found))
    text, stop_reason, stop_details = _chosen_text(body, fault, found, bool(calls))
    stop_sequence = None
    if text and stop_reason != "refusal":
        first = _first_stop(text, body.get("stop_sequences") or [])
        if first is not None:
            text, calls = text[: first[0]], []
            stop_reason, stop_sequence = "stop_sequence", first[1]
    output_tokens = _word_count(text) + sum(_tool_tokens(b) for b in calls)
    if output_tokens > body["max_tokens"]:
        text, calls = _cut_words(text, body["max_tokens"]), []
        stop_reason, stop_sequence = "max_tokens", None
        output_tokens = _word_count(text)
    elif calls:
        stop_reason = "tool_use"
    if fault and fault.stop_reason is not None:
        stop_reason = fault.stop_reason
    usage = dict(usage, output_tokens=output_tokens)
    if fault and fault.usage:
        usage.update(fault.usage)
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model or body["model"],
        "content": ([{"type": "text", "text": text}] if text else []) + calls,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": stop_details,
        "container": None,
        "usage": usage,
    }


# ------------------------------------------------------------------------------------------ prompt cache
@dataclass(frozen=True)
class CachePrefix:
    """A cacheable system prefix of one request: its key, size, TTL and whether it was seen before."""

    key: tuple
    tokens: int
    ttl: str
    hit: bool


class PromptCache:
    """The system prefixes a server has seen (per model), to report cache writes and then reads."""

    def __init__(self) -> None:
        self._seen: set[tuple] = set()
        self._lock = threading.Lock()

    def lookup(self, body: dict) -> CachePrefix | None:
        """The request's cacheable prefix (None below 1024 tokens or without ``cache_control``)."""
        blocks = system_blocks(body.get("system"))
        marked = [i for i, b in enumerate(blocks) if isinstance(b.get("cache_control"), dict)]
        if not marked:
            return None
        texts = tuple(b["text"] for b in blocks[: marked[-1] + 1])
        tokens = math.ceil(sum(len(t) for t in texts) / 4)
        if tokens < CACHE_MIN_TOKENS:
            return None
        key = (body.get("model"), texts)
        with self._lock:
            hit = key in self._seen
        ttl = "1h" if blocks[marked[-1]]["cache_control"].get("ttl") == "1h" else "5m"
        return CachePrefix(key, tokens, ttl, hit)

    def remember(self, prefix: CachePrefix | None) -> None:
        """Record that a prefix was written, so later requests read it."""
        if prefix is not None:
            with self._lock:
                self._seen.add(prefix.key)


def input_usage(body: dict, prefix: CachePrefix | None) -> dict:
    """The input side of ``usage`` for a request whose cacheable prefix is ``prefix``."""
    total = count_input_tokens(body)
    created = read = 0
    by_ttl = {"5m": 0, "1h": 0}
    if prefix is not None:
        if prefix.hit:
            read = prefix.tokens
        else:
            created = by_ttl[prefix.ttl] = prefix.tokens
        total = max(1, total - prefix.tokens)
    return {
        "input_tokens": total,
        "output_tokens": 0,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": by_ttl["5m"], "ephemeral_1h_input_tokens": by_ttl["1h"]},
        "server_tool_use": None,
        "service_tier": "standard",
    }
