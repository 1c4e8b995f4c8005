"""Cache keys: canonical JSON of a request, the HMAC key over it, and the row id it maps to.

``key_for`` = ``"v1:" + HMAC-SHA256(k_id, canonical_json({"schema", "request"}))`` in hex:
everything that changes the answer is in the request body, absent params stay absent, and
numeric ``temperature``/``top_p`` are floats (``1`` == ``1.0``). Because the key is an HMAC,
the database does not let anyone confirm a guessed prompt.

A row's id is the key's first 60 bits (``rowid_of``): keys are HMAC outputs, so these bits
are uniform and a lookup is one b-tree descent with no index on the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

__all__ = ["KEY_PREFIX", "canonical_json", "check_key", "key_for", "rowid_if_key", "rowid_of", "stored_rowid"]

KEY_PREFIX = "v1:"
KEY_SCHEMA = "claude-force-nb/1"            # hashed with the request: a new scheme gets new keys
KEY_FORMAT = re.compile(r"v1:[0-9a-f]{64}")
NOT_A_KEY = "{!r:.40} is not a cache key: pass the string key_for() returns"
FLOAT_PARAMS = ("temperature", "top_p")


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8, NaN/Infinity refused.

    A lone surrogate (valid in JSON as ``\\ud800``, so the API accepts it) is encoded with
    ``surrogatepass`` rather than raising; every other string encodes as plain UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8", "surrogatepass"
    )


def key_for(k_id: bytes, request: dict[str, Any]) -> str:
    """The cache key of a Messages API request body (without stream/timeouts) under ``k_id``.

    Raises TypeError/ValueError when the body is not plain JSON (NaN included)."""
    if not isinstance(request, dict):
        raise TypeError(f"request must be a dict of Messages API params, not {type(request).__name__}")
    body = dict(request)
    for name in FLOAT_PARAMS:
        value = body.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            body[name] = float(value)
    material = canonical_json({"schema": KEY_SCHEMA, "request": body})
    return KEY_PREFIX + hmac.new(k_id, material, hashlib.sha256).hexdigest()


def rowid_of(key: str) -> int:
    """The row id of a cache key: its first 60 bits (15 hex digits after ``"v1:"``).

    Two keys sharing an id (p ≈ n²/2⁶¹: 3·10⁻⁸ for the 250k rows a 512 MiB cache holds)
    share one row: the later put replaces the earlier answer, which is then a miss.
    Raises ValueError or TypeError when those digits are not there."""
    return int(key[3:18], 16)


def rowid_if_key(key: object) -> int | None:
    """The row id of ``key`` when it is a string in the exact format ``key_for`` gives, else None."""
    return rowid_of(key) if isinstance(key, str) and KEY_FORMAT.fullmatch(key) else None


def check_key(key: object) -> int:
    """The row id of ``key``; a TypeError that names the fix when it is not a cache key."""
    if not (isinstance(key, str) and KEY_FORMAT.fullmatch(key)):
        raise TypeError(NOT_A_KEY.format(key))
    return int(key[3:18], 16)


def stored_rowid(raw_key: Any) -> int | None:
    """The row id for a key column read as bytes, or None when it does not hold a key."""
    return rowid_if_key(raw_key.decode("ascii", "replace")) if isinstance(raw_key, bytes) else None
