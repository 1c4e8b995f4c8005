"""An offline, deterministic fake of the Anthropic Messages API for tests and benchmarks.

``FakeAnthropicServer`` is a real HTTP/1.1 server (stdlib only) bound to ``127.0.0.1`` on an
ephemeral port and served from a daemon thread.  Point the real ``anthropic`` SDK at it::

    from claude_force_nb.testing import FakeAnthropicServer, Fault

    with FakeAnthropicServer(latency_s=0.05) as server:
        client = anthropic.Anthropic(api_key="test-key", base_url=server.url, max_retries=0)
        msg = client.messages.create(model="claude-sonnet-4-6", max_tokens=256,
                                     messages=[{"role": "user", "content": "Hello"}])
        server.fail_next(529, retry_after_ms=10)      # the next POST /v1/messages gets a 529

Routes
------
* ``POST /v1/messages`` - JSON, or SSE when ``"stream": true`` (chunked transfer encoding, keep-alive).
* ``POST /v1/messages/count_tokens`` - ``{"input_tokens": N}``.
* ``GET /v1/models[?limit=&after_id=&before_id=&lifecycle[]=]``, ``GET /v1/models/{id or alias}`` -
  the models it serves (``claude_force_nb.testing.models``); ``server.add_model(id)`` adds one.
* ``POST /v1/messages/batches``, ``GET /v1/messages/batches[?limit=&after_id=&before_id=]``,
  ``GET /v1/messages/batches/{id}``, ``POST /v1/messages/batches/{id}/cancel``,
  ``DELETE /v1/messages/batches/{id}``, ``GET /v1/messages/batches/{id}/results`` (JSONL).
  ``results_url`` is the relative path ``/v1/messages/batches/{id}/results``.  A batch ends
  ``batch_delay_s`` after creation (0 = it is created already ended).
* Anything else: 404 ``not_found_error``.

Every request needs ``Authorization: Bearer <anything>`` or ``x-api-key: <anything>`` (else 401
``authentication_error``).  Every response carries a ``request-id: req_<hex>`` header; error bodies are
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``.

A create body is checked as the API checks it (``claude_force_nb.testing.validation``): an unknown
or retired model is a 404 ``not_found_error``; unknown fields, out-of-range ``max_tokens`` /
``temperature``, empty content, unknown block types, bad tools and unanswered or stray
``tool_result`` blocks are 400 ``invalid_request_error``.  A request naming an alias
(``claude-haiku-4-5``) is answered with the dated id (``claude-haiku-4-5-20251001``) in ``model``.

The answer and its token counts are described in ``claude_force_nb.testing.answers``: text, or
``tool_use`` blocks when tools are offered (``claude_force_nb.testing.tools``), or JSON valid
against an ``output_config`` ``json_schema`` (``claude_force_nb.testing.schemas``)::

    server.script_tools(("describe", {"name": "sales"}), ("list_variables", {}))  # next turn: two calls
    server.script(Fault(text='{"not": "the schema"}'))                           # a reply that fails it

Task directives
---------------
Tests that run in another process (a notebook kernel, a subprocess) can steer the fake through the
text of the *last user message*:

* ``[[fake:sleep=S]]`` - wait ``S`` seconds (disconnect-aware) before sending the response headers.
* ``[[fake:refuse]]`` - a short refusal text with ``stop_reason "refusal"`` (and ``stop_details``).
* ``[[fake:empty]]`` - ``content: []`` and ``stop_reason "end_turn"`` (a stream sends no content block).
* ``[[fake:error=STATUS]]`` - answer with that HTTP error status (e.g. ``[[fake:error=529]]``).
* ``[[fake:malformed]]`` - a 200 that is not JSON (a stream: an event whose data is not JSON).
* ``[[fake:stall=S]]`` - pings only for ``S`` seconds of the server clock (default 60), as ``Fault(stall_s=S)``.
  These two hit every request that carries them (a retry too), unless a scripted fault comes first.

Faults
------
``server.script(Fault(...), ...)`` queues faults; each ``POST /v1/messages`` consumes one (FIFO),
whether or not it would otherwise succeed.  A queued fault is applied before authentication,
validation, overload and rate limits.  See :class:`Fault` for what can be simulated (HTTP errors
with retry headers, latency, mid-stream ``event: error``, truncated bodies/streams, connection
resets, usage/text/stop_reason overrides, raw bodies that are not JSON or are HTML, and stalls
that send only ``ping`` events).

Conditions that last
--------------------
Timed on the server's ``clock`` (pass a ``ManualClock`` to move it by hand):

* per-minute limits: ``FakeAnthropicServer(requests_per_minute=..., tokens_per_minute=...,
  input_tokens_per_minute=..., output_tokens_per_minute=...)`` or ``server.set_rate_limits(...)``:
  429 ``rate_limit_error`` with ``retry-after`` beyond them, ``anthropic-ratelimit-*`` headers on
  every ``/v1/messages`` response (see ``claude_force_nb.testing.limits``);
* ``server.overload(share, status=529, duration_s=None)``: exactly ``floor(n * share)`` of the next
  ``n`` requests refused, spread evenly; ``server.overload(0)`` lifts it;
* ``server.down(duration_s=None, mode="drop"|"refuse")`` / ``server.up()``: connections reset, or
  the port closed;
* ``server.release_stalls()`` ends every ``Fault(stall_s=...)`` now.

Metrics (``request_count``, ``requests``, ``in_flight``, ``max_in_flight``, ``disconnects``, and
``counters``: ``dropped``, ``malformed``, ``overloaded``, ``rate_limited``, ``stalled``) are
thread-safe.  ``requests`` records every request to every route; ``request_count``, ``in_flight`` and
``max_in_flight`` only count ``POST /v1/messages``.

``python -m claude_force_nb.testing [--latency S] [--rpm N --tpm N --itpm N --otpm N]
[--overload SHARE --overload-status 429|529 --overload-for S] [--model ID ...]`` serves it standalone.
"""

from __future__ import annotations

from .answers import answer_text
from .clock import ManualClock
from .faults import Fault, RecordedRequest
from .prompt import count_input_tokens
from .server import FakeAnthropicServer

__all__ = ["FakeAnthropicServer", "Fault", "ManualClock", "RecordedRequest", "answer_text", "count_input_tokens"]
