"""Message Batches: a batch's state machine and the list/cancel/delete/results operations.

A batch is ``in_progress`` until ``delay_s`` (server clock) after creation, then ``ended``; all its
answers are computed at creation (each kept as its JSONL line, so 100,000 requests stay cheap).
Its requests finish in a shuffled order (seeded by the batch's number: deterministic), a steady
share of them as the clock passes through ``delay_s``, so ``request_counts`` move while it is in
progress.  ``cancel`` makes it ``canceling`` until the next read, which ends it: requests
finished before the cancel keep their results, the others are ``canceled``.  Results are JSONL
rows in finishing order (not request order, as on the API), available once it has ended.
``results_url`` is the relative path ``/v1/messages/batches/{id}/results``.  ``submitted`` lists
the custom_ids of every batch created, for tests to assert on.

Every operation returns ``(status, payload)``: the payload is the JSON body for 200, else an error
message for the handler to wrap in the error envelope.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import ErrorReply, default_error_type, error_body, error_message, new_request_id
from .paging import list_page
from .prompt import directives

__all__ = ["BatchStore"]

_DAY_S = 86400.0

MessageFor = Callable[[dict, dict[str, str | None]], dict]
"""Builds the Message for valid params and their directives (the server's answer with its prompt cache)."""
CheckParams = Callable[[Any], "ErrorReply | None"]
"""The error a request's params get as a create body (the server's validation), or None."""


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def batch_result(params: Any, message_for: MessageFor, check: CheckParams) -> dict:
    """One request's ``result`` object: ``succeeded`` with a Message, or ``errored``."""
    problem = check(params)
    if problem is None and params.get("stream") is True:
        problem = ErrorReply(400, message="stream: batch requests cannot stream")
    if problem is not None:
        error_type = problem.error_type or default_error_type(problem.status)
        return {"type": "errored", "error": error_body(error_type, problem.message or "", new_request_id())}
    found = directives(params)
    if "error" in found:
        error_type = default_error_type(_status(found["error"]))
        return {"type": "errored", "error": error_body(error_type, error_message(error_type), new_request_id())}
    message = message_for(params, found)
    message["usage"]["service_tier"] = "batch"
    return {"type": "succeeded", "message": message}


def _status(value: str | None) -> int:
    try:
        return int(value or 500)
    except ValueError:
        return 500


_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")
_CANCELED = {"type": "canceled"}


@dataclass
class _Batch:
    """One batch: its requests' results as JSONL lines, in the (shuffled) order they finish."""

    id: str
    seq: int
    created_at: float
    requested: list[str]  # custom_ids in request order
    lines: list[str]  # one JSONL line per request, in finishing order
    kinds: list[str]  # each line's result type, same order
    ended_at: float | None = None
    cancel_initiated_at: float | None = None

    def finished(self, now: float, delay_s: float) -> int:
        """How many requests have finished by ``now``: a steady share of them over ``delay_s``."""
        if self.ended_at is not None:
            return len(self.kinds)
        if delay_s <= 0:
            return len(self.kinds)
        share = min(1.0, max(0.0, (now - self.created_at) / delay_s))
        return int(len(self.kinds) * share)

    def refresh(self, now: float, delay_s: float) -> None:
        """Advance the state machine to ``now``."""
        if self.ended_at is not None:
            return
        if self.cancel_initiated_at is not None:
            done = self.finished(self.cancel_initiated_at, delay_s)  # what finished before the cancel stays
            self.ended_at = now
            for i in range(done, len(self.lines)):
                custom_id = json.loads(self.lines[i])["custom_id"]
                self.lines[i] = json.dumps({"custom_id": custom_id, "result": _CANCELED})
                self.kinds[i] = "canceled"
        elif now >= self.created_at + delay_s:
            self.ended_at = self.created_at + delay_s

    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def to_json(self, now: float, delay_s: float) -> dict:
        ended = self.ended_at is not None
        done = self.finished(now if self.cancel_initiated_at is None else self.cancel_initiated_at, delay_s)
        counts = dict.fromkeys(_COUNTS, 0)
        for kind in self.kinds[:done]:
            counts[kind] += 1
        counts["processing"] = len(self.kinds) - done
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status(),
            "request_counts": counts,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.created_at + _DAY_S),
            "ended_at": _iso(self.ended_at),
            "cancel_initiated_at": _iso(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"/v1/messages/batches/{self.id}/results" if ended else None,
        }


def _check_requests(body: Any) -> str | None:
    """Why a create body is refused (no requests, bad shape, duplicate custom_id), else None."""
    reqs = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(reqs, list) or not reqs:
        return "requests: at least one request is required"
    seen: set[str] = set()
    for i, r in enumerate(reqs):
        if not isinstance(r, dict) or not isinstance(r.get("custom_id"), str) or not isinstance(r.get("params"), dict):
            return f"requests.{i}: needs custom_id (str) and params (object)"
        if r["custom_id"] in seen:
            return f"requests.{i}.custom_id: duplicate custom_id {r['custom_id']!r}"
        seen.add(r["custom_id"])
    return None


class BatchStore:
    """The batches of one server, thread-safe; ``delay_s`` is how long a batch stays in progress."""

    def __init__(self, clock: Callable[[], float], message_for: MessageFor, delay_s: float = 0.0, *,
                 check: CheckParams) -> None:
        self.delay_s = delay_s
        self._check = check
        self._clock = clock
        self._message_for = message_for
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}
        self._submitted: list[list[str]] = []
        self._seq = 0

    def _find(self, batch_id: str) -> _Batch | None:
        """The batch, refreshed to now (call with the lock held)."""
        batch = self._batches.get(batch_id)
        if batch is not None:
            batch.refresh(self._clock(), self.delay_s)
        return batch

    @property
    def submitted(self) -> list[list[str]]:
        """The custom_ids of every batch created (deleted ones too), oldest first, in request order."""
        with self._lock:
            return [list(ids) for ids in self._submitted]

    def create(self, body: Any) -> tuple[int, Any]:
        problem = _check_requests(body)
        if problem is not None:
            return 400, problem
        requested = [r["custom_id"] for r in body["requests"]]
        with self._lock:
            self._seq += 1
            seq = self._seq
        finishing = list(body["requests"])
        random.Random(seq).shuffle(finishing)  # results come back in no particular order, as on the API
        lines, kinds = [], []
        for r in finishing:
            result = batch_result(r["params"], self._message_for, self._check)
            lines.append(json.dumps({"custom_id": r["custom_id"], "result": result}))
            kinds.append(result["type"])
        with self._lock:
            batch = _Batch("msgbatch_" + uuid.uuid4().hex[:24], seq, self._clock(), requested, lines, kinds)
            batch.refresh(batch.created_at, self.delay_s)
            self._batches[batch.id] = batch
            self._submitted.append(requested)
            return 200, batch.to_json(batch.created_at, self.delay_s)

    def _with_batch(self, batch_id: str, action: Callable[[_Batch], tuple[int, Any]]) -> tuple[int, Any]:
        """Run ``action`` on the refreshed batch under the lock, or answer 404."""
        with self._lock:
            batch = self._find(batch_id)
            return action(batch) if batch is not None else (404, f"Batch not found: {batch_id}")

    def get(self, batch_id: str) -> tuple[int, Any]:
        return self._with_batch(batch_id, lambda batch: (200, self._json(batch)))

    def _json(self, batch: _Batch) -> dict:
        return batch.to_json(self._clock(), self.delay_s)

    def list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """Newest first, paged by ``limit`` and ``after_id`` / ``before_id``."""
        with self._lock:
            ids = [b.id for b in sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)]
            items = [self._json(self._find(i)) for i in ids]  # type: ignore[arg-type]
        return list_page(items, query, what="Batch")

    def cancel(self, batch_id: str) -> tuple[int, Any]:
        """An unfinished batch becomes ``canceling``; an ended one stays as it is."""
        return self._with_batch(batch_id, self._cancel)

    def delete(self, batch_id: str) -> tuple[int, Any]:
        """Forget an ended batch (an unfinished one must be cancelled first)."""
        return self._with_batch(batch_id, self._delete)

    def results(self, batch_id: str) -> tuple[int, Any]:
        """The JSONL rows (a list of dicts) once the batch has ended."""
        return self._with_batch(batch_id, self._results)

    def _cancel(self, batch: _Batch) -> tuple[int, Any]:
        if batch.ended_at is None:
            batch.cancel_initiated_at = self._clock()
        return 200, self._json(batch)

    def _delete(self, batch: _Batch) -> tuple[int, Any]:
        if batch.ended_at is None:
            return 400, f"Batch {batch.id} is still processing; cancel it before deleting it."
        del self._batches[batch.id]
        return 200, {"id": batch.id, "type": "message_batch_deleted"}

    @staticmethod
    def _results(batch: _Batch) -> tuple[int, Any]:
        if batch.ended_at is None:
            return 404, f"Results for batch {batch.id} are not available until it has ended."
        return 200, list(batch.lines)
