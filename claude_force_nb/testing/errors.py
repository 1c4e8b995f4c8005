"""The API's error envelope: which ``error.type`` goes with which HTTP status, and the body shape.

Every error the fake sends (scripted, validation, rate limit, overload) is built here, so the
wire format lives in one place::

    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
     "request_id": "req_..."}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

__all__ = ["ErrorReply", "default_error_type", "error_body", "error_message", "new_request_id", "retry_headers"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "timeout_error": "Request timed out",
    "conflict_error": "Conflict",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}


@dataclass
class ErrorReply:
    """An error the fake is about to send: status, envelope fields and extra response headers."""

    status: int
    error_type: str | None = None
    """``error.type``; derived from ``status`` when None."""
    message: str | None = None
    """``error.message``; the type's usual message when None."""
    headers: dict[str, str] = field(default_factory=dict)
    details: dict | None = None
    """``error.details`` (e.g. ``{"error_code": ...}``, which picks the SDK's finer exception class)."""


def default_error_type(status: int) -> str:
    """The API's ``error.type`` for an HTTP status (unknown 5xx -> api_error, other 4xx -> invalid)."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_message(error_type: str) -> str:
    """The usual human message for an ``error.type``."""
    return ERROR_MESSAGES.get(error_type, "Error")


def error_body(error_type: str, message: str, request_id: str, details: dict | None = None) -> dict:
    """The JSON error envelope the API sends (``error.details`` only when given)."""
    error: dict = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": request_id}


def new_request_id() -> str:
    """A fresh ``req_<hex>`` id, as the API puts in the ``request-id`` header."""
    return "req_" + uuid.uuid4().hex


def retry_headers(retry_after_ms: float | None = None, retry_after: float | None = None,
                  should_retry: bool | None = None) -> dict[str, str]:
    """The retry hint headers (``retry-after-ms``, ``retry-after``, ``x-should-retry``) that are set."""
    headers: dict[str, str] = {}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = _number(retry_after_ms)
    if retry_after is not None:
        headers["retry-after"] = _number(retry_after)
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return headers


def _number(value: float) -> str:
    """``25`` for 25.0, ``1.5`` for 1.5: header values as a person would write them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
