"""The exception tree of claude_force_nb: every error the package raises on purpose.

::

    ClaudeForceError
    ├── ConfigurationError           settings, home directory, missing API key
    │   ├── MissingAPIKeyError       no ANTHROPIC_API_KEY and not offline
    │   ├── InvalidAPIKeyError       a key with spaces, line breaks or control characters inside
    │   └── InsecurePathError        a key file or home readable/writable by others
    ├── InvalidInputError (ValueError)   bad task, max_tokens, temperature, model id
    │   ├── UnknownAgentError        with close-match suggestions
    │   ├── UnknownToolError         a tool name in a flag or agent file that nothing offers
    │   ├── UnknownThreadError       a conversation thread that does not exist, with close matches
    │   ├── UnknownBatchError        a Message Batch id this home has no record of
    │   ├── ToolDefinitionError      a function that cannot be offered as a tool, a name clash
    │   └── InvalidSchemaError       a schema= spec that cannot describe structured output
    ├── AgentDefinitionError         a malformed or unsafe agent file
    ├── BudgetExceededError          a call refused before sending: it could cross the budget
    ├── APICallError                 the API call failed (after retries where retried)
    │   ├── RateLimitedError         429 after every retry
    │   ├── CircuitOpenError         failing fast after repeated failures
    │   ├── IncompleteResponseError  a stream that ended without stop_reason
    │   ├── MalformedResponseError   a reply that is not the API's format (not JSON, HTML, not SSE)
    │   ├── StalledStreamError       a stream that stopped making progress (pings only) or ran too long
    │   ├── EmptyResponseError       a response with no text content
    │   └── SchemaMismatchError      a reply that is not JSON fitting the requested schema
    ├── CacheError                   the response cache cannot be used
    └── ToolError                    a tool call failed: the message goes back to the model
        └── ToolArgumentsError       the model's arguments do not fit the tool's schema

Messages name the problem and the fix in one line: they are shown to notebook users
as they are, without a traceback. Bugs are never wrapped in these classes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "APICallError",
    "AgentDefinitionError",
    "BudgetExceededError",
    "CacheError",
    "CircuitOpenError",
    "ClaudeForceError",
    "ConfigurationError",
    "EmptyResponseError",
    "IncompleteResponseError",
    "InsecurePathError",
    "InvalidAPIKeyError",
    "InvalidInputError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "InvalidSchemaError",
    "RateLimitedError",
    "SchemaMismatchError",
    "StalledStreamError",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "UnknownAgentError",
    "UnknownBatchError",
    "UnknownThreadError",
    "UnknownToolError",
    "WorkflowError",
]


class ClaudeForceError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class ConfigurationError(ClaudeForceError):
    """Settings, paths or credentials are not usable as they are."""


class MissingAPIKeyError(ConfigurationError):
    """No API key and offline mode is off."""

    def __init__(self) -> None:
        super().__init__(
            "No Anthropic API key: set ANTHROPIC_API_KEY in the environment (before starting "
            "the kernel), or set CLAUDE_FORCE_OFFLINE=1 to use the built-in offline server."
        )


class InvalidAPIKeyError(ConfigurationError):
    """The API key holds a character no key has (space, line break, control or non-ASCII)."""


class InsecurePathError(ConfigurationError):
    """A secret or data path has permissions or ownership that others could abuse."""


class InvalidInputError(ClaudeForceError, ValueError):
    """The caller passed a value that cannot be sent (bad task, model, max_tokens...)."""


class UnknownAgentError(InvalidInputError, LookupError):
    """No agent of that name; the message lists close matches."""

    def __init__(self, name: str, suggestions: list[str] | None = None, *, create_as: str | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        hint = (
            f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if self.suggestions
            else ""
        )
        create_as = create_as or name  # a valid name when ``name`` itself could not name an agent
        renamed = "" if create_as == name else f" ({name!r} cannot name an agent: letters, digits, '.', '_', '-')"
        super().__init__(
            f"Unknown agent {name!r}.{hint} List agents with `%agent list` or "
            f"AgentRegistry().names(); add one as .claude/agents/{create_as}.md{renamed}."
        )


class AgentDefinitionError(ClaudeForceError):
    """An agent definition file is malformed, too large or escapes its directory."""


class BudgetExceededError(ClaudeForceError):
    """A call was refused before sending because it could cross Settings.budget_usd."""


class APICallError(ClaudeForceError):
    """The API call failed. Carries what the API said, for the ledger and the user."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        self.attempts = attempts


class RateLimitedError(APICallError):
    """Still rate limited (429) after every retry."""


class CircuitOpenError(APICallError):
    """Too many consecutive failures: calls fail fast until the breaker resets."""


class IncompleteResponseError(APICallError):
    """The stream ended without a stop_reason: the answer is truncated and never cached."""


class MalformedResponseError(APICallError):
    """A 200 whose body is not what the API sends: not JSON, an HTML page, not an event stream."""


class StalledStreamError(APICallError):
    """A stream that made no progress for too long (keep-alive pings only) or passed its deadline."""


class EmptyResponseError(APICallError):
    """The response held no text content."""


class CacheError(ClaudeForceError):
    """The response cache cannot be opened or used."""



class UnknownToolError(InvalidInputError, LookupError):
    """A tool name (in ``--tools``, ``tools=`` or an agent file) that nothing offers."""

    def __init__(self, name: str, available: Iterable[str] = ()) -> None:
        self.name = name
        self.available = sorted(available)
        close = difflib.get_close_matches(name, self.available, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        offered = ", ".join(self.available) or "none"
        super().__init__(
            f"Unknown tool {name!r}.{hint} Available tools: {offered}. Decorate a notebook "
            "function with @tool, or use 'notebook' for list_variables and describe."
        )


class ToolDefinitionError(InvalidInputError):
    """A function cannot be offered as a tool (no types, *args...), or two tools share a name."""


class InvalidSchemaError(InvalidInputError):
    """A ``schema=`` value that cannot describe structured output."""


class WorkflowError(InvalidInputError):
    """A workflow refused before anything is sent (syntax, duplicate or unknown node, cycle,
    no single final node, unknown agent); the message names the node or line and the fix."""


class SchemaMismatchError(APICallError):
    """The reply is not JSON that fits the requested schema: an error result, never cached."""

    def __init__(self, message: str, **details: Any) -> None:
        details.setdefault("error_type", "schema_mismatch")
        super().__init__(message, **details)


class ToolError(ClaudeForceError):
    """Raised by a tool to report a failure to the model: the message is sent as the tool's
    result (with ``is_error``), without an exception type in front."""


class ToolArgumentsError(ToolError, ValueError):
    """The model's arguments do not fit the tool's input schema; the message says what to fix."""


class UnknownThreadError(InvalidInputError, LookupError):
    """No conversation thread of that name; the message lists close matches."""

    def __init__(self, name: str, existing: Iterable[str] = ()) -> None:
        self.name = name
        self.suggestions = difflib.get_close_matches(name, sorted(existing), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        super().__init__(
            f"Unknown thread {name!r}.{hint} List threads with `%agent threads` or ThreadStore().names(); "
            f"a thread starts with its first turn (`%%agent NAME --thread {name}`)."
        )


class UnknownBatchError(InvalidInputError, LookupError):
    """A Message Batch id that this home never submitted (or no longer lists)."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(f"No batch {batch_id!r} in this home: `%agent batches` lists the batches it submitted.")
