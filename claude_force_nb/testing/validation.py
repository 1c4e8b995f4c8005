"""What the fake refuses in a ``POST /v1/messages`` body, with the API's status and wording.

Checked in this order; the first problem is the answer (``error.message`` as the API words it):

1. the shape: a JSON object whose top-level fields the API knows (``foo: Extra inputs are not
   permitted``; the beta fields of ``client.beta.messages`` (``context_management``, ``thread``, ...)
   only on its ``/v1/messages?beta=true`` or with an ``anthropic-beta`` header; a server-side
   ``thread`` is refused with ``error.details.error_code`` ``thread_unsupported_request``, on which
   the SDK's tool runner resends the whole conversation), ``model``, ``max_tokens`` (an integer
   >= 0) and ``messages``;
2. every message: role ``user`` / ``assistant`` / ``system``, content that is not empty (except a
   final assistant message), blocks of a known ``type``, text blocks with non-empty text;
3. ``system``, ``stop_sequences``, ``temperature`` and ``top_p`` (0-1), ``top_k`` (>= 0);
4. ``tools`` (custom tools need a name of ``[a-zA-Z0-9_-]{1,128}``, an object ``input_schema``
   and a unique name), ``tool_choice`` (``auto`` / ``any`` / ``tool`` / ``none``; ``tool`` names
   an offered tool), and the pairing of ``tool_use`` and ``tool_result`` blocks between turns;
5. ``output_config.format``: ``{"type": "json_schema", "schema": {...}}``;
6. the model: an unknown or retired id is a 404 ``not_found_error`` (``model: ID``); then its
   limits: ``max_tokens`` above the model's maximum, structured output on a model without it,
   and a prompt longer than its context window (``prompt is too long: N tokens > M maximum``).

All but the model lookup are 400 ``invalid_request_error``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ErrorReply
from .models import ModelCatalog

__all__ = ["BLOCK_TYPES", "check_body"]

FIELDS = frozenset({
    "model", "max_tokens", "messages", "cache_control", "container", "diagnostics", "inference_geo", "metadata",
    "output_config", "service_tier", "speed", "stop_sequences", "stream", "system", "temperature", "thinking",
    "tool_choice", "tools", "top_k", "top_p"})
BETA_FIELDS = frozenset({"billing_policy", "compaction", "context_management", "fallback_credit_token", "fallbacks",
                         "mcp_servers", "output_format", "thread"})
BLOCK_TYPES = (
    "bash_code_execution_tool_result", "code_execution_tool_result", "container_upload", "document", "image",
    "redacted_thinking", "search_result", "server_tool_use", "text", "text_editor_code_execution_tool_result",
    "thinking", "tool_result", "tool_search_tool_result", "tool_use", "web_fetch_tool_result",
    "web_search_tool_result")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_CHOICES = ("auto", "any", "tool", "none")


def check_body(body: Any, models: ModelCatalog, count_tokens: Callable[[dict], int], *,
               beta: bool = False) -> ErrorReply | None:
    """The error the API would answer ``body`` with, or None when it is valid."""
    if not isinstance(body, dict):
        return ErrorReply(400, message="request body must be a JSON object")
    allowed = FIELDS | BETA_FIELDS if beta else FIELDS
    extra = sorted(set(body) - allowed)
    if extra:
        return ErrorReply(400, message=f"{extra[0]}: Extra inputs are not permitted")
    if beta and body.get("thread") is not None:
        return ErrorReply(400, message="thread: the offline server keeps no message threads; send the whole "
                                       "conversation in messages",
                          details={"error_code": "thread_unsupported_request", "unsupported": ["thread"]})
    for check in (_required, _messages, _sampling, _tools, _tool_choice, _tool_pairs, _output_config):
        problem = check(body)
        if problem is not None:
            return ErrorReply(400, message=problem)
    model = models.serving(body["model"])
    if model is None:
        return ErrorReply(404, message=f"model: {body['model']}")
    if body["max_tokens"] > model.max_tokens:
        return ErrorReply(400, message=f"max_tokens: {body['max_tokens']} > {model.max_tokens}, which is the "
                                       f"maximum allowed number of output tokens for {model.id}")
    if "format" in (body.get("output_config") or {}) and not model.structured_outputs:
        return ErrorReply(400, message=f"output_config.format: structured outputs are not supported by {model.id}")
    tokens = count_tokens(body)
    if tokens > model.max_input_tokens:
        return ErrorReply(400, message=f"prompt is too long: {tokens} tokens > {model.max_input_tokens} maximum")
    return None


def _required(body: dict) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return "max_tokens: Field required"
    if max_tokens < 0:
        return "max_tokens: Input should be greater than or equal to 0"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: at least one message is required"
    return None


def _messages(body: dict) -> str | None:
    messages = body["messages"]
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system") \
                or "content" not in message:
            return f"messages.{i}: each message needs a role (user|assistant|system) and content"
        content = message["content"]
        final_assistant = i == len(messages) - 1 and message["role"] == "assistant"
        if not content and not final_assistant:
            return f"messages.{i}: all messages must have non-empty content except for the optional final " \
                   f"assistant message"
        if isinstance(content, list):
            problem = _blocks(content, f"messages.{i}.content")
            if problem is not None:
                return problem
        elif not isinstance(content, str):
            return f"messages.{i}.content: Input should be a valid string or a list of content blocks"
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list):
            return "system: Input should be a valid string or a list of text blocks"
        return _blocks(system, "system", allowed=("text",))
    return None


def _blocks(blocks: list, where: str, allowed: tuple[str, ...] = BLOCK_TYPES) -> str | None:
    """Why a list of content blocks is refused (unknown type, text without text), else None."""
    for j, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in allowed:
            tags = ", ".join(f"'{t}'" for t in allowed)
            return f"{where}.{j}.type: Input tag {kind!r} found using 'type' does not match any of the " \
                   f"expected tags: {tags}"
        if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
            return f"{where}.{j}.text: text content blocks must be non-empty"
        if kind == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)
                                       and isinstance(block.get("input"), dict)):
            return f"{where}.{j}: tool_use blocks need an id, a name and an input object"
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            return f"{where}.{j}.tool_use_id: Field required"
    return None


def _sampling(body: dict) -> str | None:
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        return "stop_sequences: Input should be a list of strings"
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name}: Input should be a valid number"
        if value < 0:
            return f"{name}: Input should be greater than or equal to 0"
        if value > 1:
            return f"{name}: Input should be less than or equal to 1"
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        return "top_k: Input should be an integer greater than or equal to 0"
    return None


def _tools(body: dict) -> str | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        return "tools: Input should be a list of tool objects"
    names: list[str] = []
    for i, tool in enumerate(tools):
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            return f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        names.append(name)
        if tool.get("type", "custom") == "custom":
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                return f"tools.{i}.custom.input_schema: Field required"
            if schema.get("type") != "object":
                return f"tools.{i}.custom.input_schema.type: Input should be 'object'"
    duplicate = next((n for n in names if names.count(n) > 1), None)
    return f"tools: Tool names must be unique ({duplicate!r} is used twice)" if duplicate else None


def _tool_choice(body: dict) -> str | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in _CHOICES:
        return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
    names = [t.get("name") for t in body.get("tools") or []]
    if choice["type"] in ("any", "tool") and not names:
        return "tool_choice: tool_choice may only be specified while providing tools"
    if choice["type"] == "tool" and choice.get("name") not in names:
        return f"tool_choice.name: no tool named {choice.get('name')!r} in tools"
    return None


def _ids(message: Any, kind: str, key: str) -> list[str]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [b[key] for b in content if isinstance(b, dict) and b.get("type") == kind]


def _tool_pairs(body: dict) -> str | None:
    """Every ``tool_use`` is answered by a ``tool_result`` in the next message, and every result
    answers a ``tool_use`` of the message before it."""
    messages = body["messages"]
    for i, message in enumerate(messages):
        asked = _ids(messages[i - 1], "tool_use", "id") if i else []
        stray = [r for r in _ids(message, "tool_result", "tool_use_id") if r not in asked]
        if stray:
            return f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {stray[0]}. " \
                   f"Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
    for i, message in enumerate(messages[:-1]):
        answered = _ids(messages[i + 1], "tool_result", "tool_use_id")
        missing = [u for u in _ids(message, "tool_use", "id") if u not in answered]
        if missing:
            return f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately " \
                   f"after: {missing[0]}. Each `tool_use` block must have a corresponding `tool_result` " \
                   f"block in the next message."
    return None


def _output_config(body: dict) -> str | None:
    config = body.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        return "output_config: Input should be an object"
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return "output_config.format.type: Input should be 'json_schema'"
    if not isinstance(fmt.get("schema"), dict):
        return "output_config.format.schema: Input should be a valid dictionary"
    return None
