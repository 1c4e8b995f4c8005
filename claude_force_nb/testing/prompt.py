"""Reading a create body: its texts, its input token count, its last user message and directives.

``count(request) = max(1, ceil(chars / 4))`` where ``chars`` is the number of characters of every
text in ``system`` (string or text blocks), in ``messages`` (string content, ``text`` blocks, text
inside ``tool_result`` blocks, and ``json.dumps(input)`` of ``tool_use`` blocks) and of
``json.dumps(tools)`` (tool definitions cost input tokens, as they do on the API).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["DIRECTIVE_RE", "content_texts", "count_input_tokens", "directives", "last_user_message",
           "last_user_text", "question", "system_blocks"]

DIRECTIVE_RE = re.compile(r"\[\[fake:(sleep|refuse|empty|error|malformed|stall)(?:=([^\]]*))?\]\]")


def content_texts(content: Any) -> list[str]:
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
                    out.extend(content_texts(block.get("content")))
                elif btype == "tool_use":
                    out.append(json.dumps(block.get("input", {}), sort_keys=True))
    return out


def system_blocks(system: Any) -> list[dict]:
    """``system`` as text blocks (a string is one block)."""
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    if isinstance(system, list):
        return [b for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def _request_chars(body: dict) -> int:
    chars = sum(len(b["text"]) for b in system_blocks(body.get("system")))
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            chars += sum(len(t) for t in content_texts(msg.get("content")))
    if body.get("tools"):
        chars += len(json.dumps(body["tools"], sort_keys=True))
    return chars


def count_input_tokens(body: dict) -> int:
    """``max(1, ceil(chars / 4))`` over system, message and tool text (see the module docstring)."""
    return max(1, math.ceil(_request_chars(body) / 4))


def last_user_message(body: dict) -> dict | None:
    """The last message with role ``user``."""
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return msg
    return None


def last_user_text(body: dict) -> str:
    """Every text of the last user message, one per line (tool results included)."""
    msg = last_user_message(body)
    return "\n".join(content_texts(msg.get("content"))) if msg else ""


def question(body: dict) -> str:
    """The last user text without directives, on one line."""
    return " ".join(DIRECTIVE_RE.sub(" ", last_user_text(body)).split())


def directives(body: dict) -> dict[str, str | None]:
    """The ``[[fake:NAME=VALUE]]`` task directives in the last user message, by name."""
    return {m.group(1): m.group(2) for m in DIRECTIVE_RE.finditer(last_user_text(body))}
