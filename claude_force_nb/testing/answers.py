"""The simulated model: validation, token counting, prompt caching and the deterministic answer.

The answer text is a pure function of ``model``, ``system`` and ``messages``: a short Markdown
paragraph that starts with ``**Offline answer** from `MODEL`.``, quotes the start of the last user
message and adds 2-4 canned sentences.  Then ``stop_sequences`` are honoured (``stop_reason
"stop_sequence"``) and the text is cut to ``max_tokens`` words (``stop_reason "max_tokens"``).

Token accounting (a deliberately simple, documented approximation):

* ``count(request) = max(1, ceil(chars / 4))`` where ``chars`` is the number of characters of every
  text in ``system`` (string or text blocks) and in ``messages`` (string content, ``text`` blocks,
  text inside ``tool_result`` blocks, and ``json.dumps(input)`` of ``tool_use`` blocks).
* ``output_tokens`` = number of whitespace-separated words of the answer text.
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
from typing import Any

from .faults import Fault

__all__ = ["CachePrefix", "PromptCache", "answer_text", "build_message", "count_input_tokens", "directives",
           "input_usage", "validate"]

CACHE_MIN_TOKENS = 1024
_DIRECTIVE_RE = re.compile(r"\[\[fake:(sleep|refuse|empty|error|malformed|stall)(?:=([^\]]*))?\]\]")
_WORD_RE = re.compile(r"\S+")

_SENTENCES = (
    "This reply comes from the offline fake Anthropic server, not from a real model.",
    "The same request always produces exactly the same words.",
    "Token usage is estimated at four characters per input token and one token per output word.",
    "Markdown such as **bold** text and `inline code` passes through unchanged.",
    "Nothing was sent over the internet while producing this answer.",
    "Latency, errors and streaming behaviour are scripted by the test suite.",
)


# ------------------------------------------------------------------------------------------ reading a request
def _content_texts(content: Any) -> list[str]:
    """Texts of a message ``content`` (string or block list), recursively for tool results."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                out.append(block)
            elif isinstance(block, dict):
                btype = block.get("type")
                if btype == "text" and isinstance(block.get("text"), str):
                    out.append(block["text"])
                elif btype == "tool_result":
                    out.extend(_content_texts(block.get("content")))
                elif btype == "tool_use":
                    out.append(json.dumps(block.get("input", {}), sort_keys=True))
    return out


def _system_blocks(system: Any) -> list[dict]:
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    if isinstance(system, list):
        return [b for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def _request_chars(body: dict) -> int:
    chars = sum(len(b["text"]) for b in _system_blocks(body.get("system")))
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            chars += sum(len(t) for t in _content_texts(msg.get("content")))
    return chars


def count_input_tokens(body: dict) -> int:
    """``max(1, ceil(chars / 4))`` over system and message text (see the module docstring)."""
    return max(1, math.ceil(_request_chars(body) / 4))


def _last_user_text(body: dict) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return "\n".join(_content_texts(msg.get("content")))
    return ""


def directives(body: dict) -> dict[str, str | None]:
    """The ``[[fake:NAME=VALUE]]`` task directives in the last user message, by name."""
    return {m.group(1): m.group(2) for m in _DIRECTIVE_RE.finditer(_last_user_text(body))}


def validate(body: Any) -> str | None:
    """Return an error message for an invalid create body, else None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int):
        return "max_tokens: Field required"
    if mt < 0:
        return "max_tokens: Input should be greater than or equal to 0"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages: at least one message is required"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or "content" not in m:
            return f"messages.{i}: each message needs a role (user|assistant) and content"
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        return "stop_sequences: Input should be a list of strings"
    return None


# ------------------------------------------------------------------------------------------ the answer
def answer_text(body: dict) -> str:
    """The deterministic answer for a create body (before stop sequences and ``max_tokens``)."""
    model = body.get("model", "")
    canonical = json.dumps(
        {"model": model, "system": body.get("system"), "messages": body.get("messages")},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    question = " ".join(_DIRECTIVE_RE.sub(" ", _last_user_text(body)).split())
    question = question.replace('"', "'")
    if len(question) > 60:
        question = question[:60].rstrip() + "…"
    n = 2 + int(digest[0], 16) % 3  # 2..4 sentences
    start = int(digest[1:3], 16) % len(_SENTENCES)
    extra = [_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(n - 1)]
    parts = [f"**Offline answer** from `{model}`.", f'You asked: "{question}".' if question else "You asked nothing."]
    parts.extend(extra)
    parts.append(f"Fingerprint `{digest[:8]}`.")
    return " ".join(parts)


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


def _chosen_text(body: dict, fault: Fault | None, found: dict[str, str | None]) -> tuple[str, str, dict | None]:
    """The text before limits, its stop reason, and ``stop_details``: scripted, refusal, empty or the answer."""
    if fault and fault.text is not None:
        return fault.text, "end_turn", None
    if "refuse" in found:
        return "I can't help with that request.", "refusal", {"type": "refusal", "category": None, "explanation": None}
    if "empty" in found:
        return "", "end_turn", None
    return answer_text(body), "end_turn", None


def build_message(body: dict, fault: Fault | None, found: dict[str, str | None], usage: dict) -> dict:
    """The full Message for a valid create body; ``usage`` comes from the prompt cache (input side)."""
    text, stop_reason, stop_details = _chosen_text(body, fault, found)
    stop_sequence = None
    if text and stop_reason != "refusal":
        first = _first_stop(text, body.get("stop_sequences") or [])
        if first is not None:
            text = text[: first[0]]
            stop_reason, stop_sequence = "stop_sequence", first[1]
    if _word_count(text) > body["max_tokens"]:
        text = _cut_words(text, body["max_tokens"])
        stop_reason, stop_sequence = "max_tokens", None
    if fault and fault.stop_reason is not None:
        stop_reason = fault.stop_reason
    usage = dict(usage, output_tokens=_word_count(text))
    if fault and fault.usage:
        usage.update(fault.usage)
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": text}] if text else [],
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
        blocks = _system_blocks(body.get("system"))
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
