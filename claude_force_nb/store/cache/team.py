"""The response cache's read-through / write-through to the team tier (``redis_tier``).

A local miss asks Redis; a verified team entry is decoded and judged like a local row
(format, signed expiry, this cache's TTL), then written to the local file exactly as it
was signed, so the next lookup is a local hit. Lookups that must not write (the
orchestrator's, on its event loop) hand that write to one thread of this tier's own.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...core.settings import Settings
from ..redis_tier import RedisCacheTier, link_for
from .payload import CachedResponse, ForeignPayload, decode
from .signing import Signer

__all__ = ["Adopt", "TeamCache"]

Adopt = Callable[[str, bytes, bytes, CachedResponse], bool]   # write a team hit to the local file
Fits = Callable[[str, bytes, bytes], bool]                     # whether the local file would take it


class TeamCache:
    """A ResponseCache's team tier: lookups, write-through and the local copies of team hits."""

    def __init__(self, tier: RedisCacheTier, fits: Fits, adopt: Adopt) -> None:
        self.tier = tier
        self._fits = fits
        self._adopt = adopt
        self._writer: ThreadPoolExecutor | None = None

    @classmethod
    def for_settings(cls, settings: Settings, signer: Signer, fits: Fits, adopt: Adopt) -> TeamCache | None:
        link = link_for(settings)
        return None if link is None else cls(RedisCacheTier(link, signer), fits, adopt)

    def get(self, key: str, now: float, ttl_s: float | None, *, defer_writes: bool) -> CachedResponse | None:
        found = self.tier.get(key)
        if found is None:
            return None
        payload, sig = found
        try:
            response = decode(payload)
        except ForeignPayload:
            self.tier.miss()            # another version's entry: the next put replaces it
            return None
        except ValueError as exc:
            self.tier.tampered(key, f"unreadable payload ({exc})")
            return None
        if (response.expires is not None and now >= response.expires) or (
                ttl_s is not None and now >= response.created + ttl_s):
            self.tier.miss()
            return None
        self.tier.hit()
        if not self._fits(key, payload, sig):
            pass                        # too big for the local file: it stays a team entry
        elif defer_writes:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claude-force-nb-team")
            self._writer.submit(self._adopt, key, payload, sig, response)
        else:
            self._adopt(key, payload, sig, response)
        return response

    def put_many(self, entries: list[tuple[str, bytes, bytes, float | None]], now: float) -> int:
        return self.tier.put_many(entries, now)

    def clear(self) -> int:
        return self.tier.clear()

    def stats(self) -> dict[str, Any]:
        return self.tier.stats()

    def close(self) -> None:
        """Finish writing team hits to the local file."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
