"""CachedResponse and the binary payload it is stored as (the signed bytes of a row).

Layout (little-endian, ``HEADER``): the magic ``b"cfn2"``; cost_usd, created and expires as
doubles (NaN = None); the five token counts as int64; the lengths in code points of agent,
model, request_id, stop_reason and task_head as uint32 (``NONE`` = None). Then those strings
and the answer, back to back, as one UTF-8 block (``surrogatepass``: any str round-trips).
A hit unpacks one struct, decodes once and slices, instead of parsing JSON. No pickle.

Files in the wild hold this format: change it only together with a new magic, and keep
reading the old one (a row in a format this version does not know is a miss, not tampering).
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

from ...core.results import TASK_HEAD_CHARS, Usage

__all__ = ["CachedResponse", "ForeignPayload", "TASK_HEAD_CHARS", "decode", "encode"]

MAGIC = b"cfn2"
HEADER = struct.Struct("<4sddd5q5I")    # magic, cost, created, expires, 5 token counts, 5 string lengths
NONE = 0xFFFFFFFF                       # a string length meaning None
_OPTIONAL = ("agent", "request_id", "task_head")     # may be None (task_head None is stored as "")


class CachedResponse(NamedTuple):
    """A complete response as stored in the cache (``created``/``expires`` are set by put).

    A named tuple: immutable, and built in one step on every hit."""

    text: str
    stop_reason: str
    usage: Usage
    model: str                 # the model id the API served
    cost_usd: float | None     # cost when first made (becomes saved_usd on hits)
    agent: str | None = None
    task_head: str = ""        # first line of the task, <= 200 chars
    request_id: str | None = None
    created: float = 0.0
    expires: float | None = None


class ForeignPayload(ValueError):
    """A correctly signed payload in a format this version does not read (a miss, not tampering)."""


def encode(response: CachedResponse, created: float, expires: float | None) -> bytes:
    """The payload of ``response``, dated ``created`` and valid until ``expires`` (None: no expiry).

    An unknown cost (None or NaN) is stored as unknown; a non-string field raises TypeError."""
    for name in ("agent", "model", "request_id", "stop_reason", "task_head", "text"):
        value = getattr(response, name)
        if not isinstance(value, str) and not (value is None and name in _OPTIONAL):
            raise TypeError(f"CachedResponse.{name} must be a string, not {type(value).__name__}")
    cost = math.nan if response.cost_usd is None else float(response.cost_usd)
    u = response.usage if isinstance(response.usage, Usage) else Usage.from_dict(dict(response.usage))
    strings = [response.agent, response.model, response.request_id, response.stop_reason,
               (response.task_head or "")[:TASK_HEAD_CHARS]]
    header = HEADER.pack(
        MAGIC,
        cost if math.isfinite(cost) else math.nan,
        float(created),
        math.nan if expires is None else float(expires),
        int(u.input_tokens), int(u.output_tokens), int(u.cache_write_5m_tokens),
        int(u.cache_write_1h_tokens), int(u.cache_read_tokens),
        *(NONE if value is None else len(value) for value in strings),
    )
    body = "".join([*(value for value in strings if value), response.text])
    return header + body.encode("utf-8", "surrogatepass")


def decode(payload: bytes) -> CachedResponse:
    """Parse a payload whose signature was already checked, still strictly: a malformed
    payload raises ValueError, never yields a half-filled object. Raises ForeignPayload for
    a payload another version of claude-force-nb wrote."""
    if payload[:4] != MAGIC:
        raise ForeignPayload("payload written by another version of claude-force-nb")
    try:
        header = HEADER.unpack_from(payload)
    except struct.error as exc:
        raise ValueError(f"payload header is truncated ({exc})") from None
    _, cost, created, expires, i, o, w5, w1, cr, n_agent, n_model, n_rid, n_stop, n_head = header
    body = payload[HEADER.size:].decode("utf-8", "surrogatepass")
    # where each string ends in the body (a None string takes no room)
    agent_end = 0 if n_agent == NONE else n_agent
    model_end = agent_end + n_model
    rid_end = model_end if n_rid == NONE else model_end + n_rid
    stop_end = rid_end + n_stop
    head_end = stop_end + n_head
    if head_end > len(body):
        raise ValueError("payload strings run past its end")
    usage = Usage(input_tokens=i, output_tokens=o, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                  cache_read_tokens=cr)
    return CachedResponse(      # the fields in order
        body[head_end:],                                        # text
        body[rid_end:stop_end],                                 # stop_reason
        usage,
        body[agent_end:model_end],                              # model
        None if math.isnan(cost) else cost,                     # cost_usd
        None if n_agent == NONE else body[:agent_end],          # agent
        body[stop_end:head_end],                                # task_head
        None if n_rid == NONE else body[model_end:rid_end],     # request_id
        created,
        None if math.isnan(expires) else expires,
    )
