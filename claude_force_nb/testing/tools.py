"""The simulated model's tool use: which tools it calls, with which arguments, and what it says
once the tool results are back.

When a request offers custom tools (those with an ``input_schema``), the answer is one or more
``tool_use`` blocks with ``stop_reason "tool_use"``:

* ``tool_choice`` ``{"type": "tool", "name": X}``: tool ``X``, every turn;
* ``any``: the tools the last user text names (as whole words, in order of first mention), else
  the first tool, every turn;
* ``auto`` (the default): like ``any``, but once the last user message carries ``tool_result``
  blocks the answer is text that quotes every result (see ``results_answer``);
* ``none``: never a tool.

``disable_parallel_tool_use`` keeps only the first call.  Arguments are a deterministic minimal
instance of the tool's ``input_schema`` (``claude_force_nb.testing.schemas``), seeded with the
last user text.  Each block's ``id`` is ``toolu_`` plus 24 characters derived from the request and
the block's position, so the same request gets the same ids.  A test scripts exact calls with
``Fault(tool_calls=[("describe", {"name": "sales"}), ...])`` (or ``server.script_tools``);
``tool_calls=[]`` scripts a plain text answer even when a tool is forced.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from typing import Any

from .faults import Fault
from .prompt import content_texts, last_user_text, question
from .schemas import instance

__all__ = ["custom_tools", "planned_calls", "results_answer", "tool_results", "tool_use_blocks"]

_ALPHABET = string.digits + string.ascii_letters
_QUOTE_CHARS = 200


def custom_tools(body: dict) -> list[dict]:
    """The offered tools the model calls with arguments (``type`` absent or ``custom``)."""
    return [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type", "custom") == "custom"]


def _blocks(message: Any) -> list[dict]:
    """A message's content blocks (none for string content)."""
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def tool_results(body: dict) -> list[tuple[str, str, bool]]:
    """``(tool name, result text, is_error)`` for each ``tool_result`` of the last user message;
    the name comes from the matching ``tool_use`` of the message before it."""
    messages = body.get("messages") or []
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return []
    last = users[-1]
    names = {b.get("id"): b.get("name") for b in _blocks(messages[last - 1])} if last else {}
    results = []
    for block in _blocks(messages[last]):
        if block.get("type") == "tool_result":
            text = " ".join(" ".join(content_texts(block.get("content"))).split())
            results.append((str(names.get(block.get("tool_use_id"), "tool")), text, block.get("is_error") is True))
    return results


def _mentioned(tools: list[dict], text: str) -> list[dict]:
    """The tools whose names appear in ``text`` as whole words, in order of first mention."""
    found = []
    for tool in tools:
        match = re.search(rf"(?<![\w-]){re.escape(tool['name'])}(?![\w-])", text)
        if match:
            found.append((match.start(), tool))
    return [tool for _, tool in sorted(found, key=lambda pair: pair[0])]


def planned_calls(body: dict, fault: Fault | None, found: dict[str, str | None]) -> list[tuple[str, dict]]:
    """The ``(name, input)`` calls this turn makes (empty: answer with text)."""
    if "refuse" in found or "empty" in found:
        return []
    if fault is not None and fault.tool_calls is not None:
        return [_as_call(call) for call in fault.tool_calls]
    if fault is not None and fault.text is not None:
        return []
    tools = custom_tools(body)
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        choice = {"type": "auto"}
    kind = choice.get("type")
    if not tools or kind == "none" or (kind == "auto" and tool_results(body)):
        return []
    if kind == "tool":
        chosen = [t for t in tools if t["name"] == choice.get("name")]
    else:
        chosen = _mentioned(tools, last_user_text(body)) or tools[:1]
    if choice.get("disable_parallel_tool_use") is True:
        chosen = chosen[:1]
    seed = question(body)
    return [(tool["name"], instance(tool.get("input_schema"), seed, tool["name"])) for tool in chosen]


def _as_call(call: Any) -> tuple[str, dict]:
    """A scripted call: ``(name, input)`` or ``{"name": ..., "input": ...}``."""
    if isinstance(call, dict):
        return str(call["name"]), dict(call.get("input") or {})
    name, arguments = call
    return str(name), dict(arguments)


def tool_use_blocks(body: dict, calls: list[tuple[str, dict]]) -> list[dict]:
    """The ``tool_use`` content blocks for ``calls``, with ids fixed by the request."""
    canonical = json.dumps({"model": body.get("model"), "system": body.get("system"),
                            "messages": body.get("messages")}, sort_keys=True, default=str)
    blocks = []
    for i, (name, arguments) in enumerate(calls):
        digest = int.from_bytes(hashlib.sha256(f"{canonical}\0{i}".encode()).digest(), "big")
        suffix = "".join(_ALPHABET[(digest >> (6 * k)) % 62] for k in range(22))
        blocks.append({"type": "tool_use", "id": f"toolu_01{suffix}", "name": name, "input": arguments})
    return blocks


def _quote(text: str) -> str:
    text = text.replace('"', "'")
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS].rstrip() + "…"


def results_answer(model: str, results: list[tuple[str, str, bool]], digest: str) -> str:
    """The text after tool results: each result quoted (up to 200 characters), errors marked."""
    quoted = "; ".join(f'`{name}` {"failed" if error else "returned"}: "{_quote(text)}"'
                       for name, text, error in results)
    return f"**Offline answer** from `{model}`. Tool results: {quoted}. Fingerprint `{digest[:8]}`."
