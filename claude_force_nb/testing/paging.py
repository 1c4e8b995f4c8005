"""Cursor pagination as the API does it for every list (``/v1/models``, ``/v1/messages/batches``).

``?limit=N`` (1-1000, default 20), then either ``after_id`` (the page after that object) or
``before_id`` (the page before it).  The body is ``{"data", "has_more", "first_id", "last_id"}``;
``has_more`` says whether there is more in the direction paged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["list_page"]


def list_page(items: list[dict], query: dict[str, list[str]], *, what: str) -> tuple[int, Any]:
    """One page of ``items`` (objects with an ``id``, in list order), or an error for the handler.

    ``what`` names the objects in the 404 for a cursor that matches none of them.
    """
    try:
        limit = int(_first(query, "limit") or "20")
    except ValueError:
        return 400, "limit: Input should be a valid integer"
    if not 1 <= limit <= 1000:
        return 400, "limit: Input should be greater than or equal to 1 and less than or equal to 1000"
    ids = [item["id"] for item in items]
    after = _first(query, "after_id")
    before = _first(query, "before_id")
    for cursor in (after, before):
        if cursor is not None and cursor not in ids:
            return 404, f"{what} not found: {cursor}"
    if before is not None:
        end = ids.index(before)
        start = max(0, end - limit)
        has_more = start > 0
    else:
        start = ids.index(after) + 1 if after is not None else 0
        end = start + limit
        has_more = end < len(ids)
    chosen = items[start:end]
    return 200, {"data": chosen, "has_more": has_more, "first_id": chosen[0]["id"] if chosen else None,
                 "last_id": chosen[-1]["id"] if chosen else None}


def _first(query: dict[str, list[str]], name: str) -> str | None:
    """The first value of a query parameter, or None when the URL does not give it."""
    values = query.get(name)
    return values[0] if values else None
