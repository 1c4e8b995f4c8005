"""The team tier: a second level of the response cache on Redis, shared by one team.

A team is everyone holding one cache secret (``CLAUDE_FORCE_CACHE_SECRET``). Keys are the
local cache's HMAC keys under ``cfnb:v1:<key id>:`` (``team_prefix``): another secret gives
other key names, so its holders can neither find nor probe this team's entries, and
rotating the secret is invalidation. A value is ``b"cfr1" + signature + payload``: the very
signed envelope of a local row, checked with ``hmac.compare_digest`` before anything is
parsed. Never pickle. Expiry is the entry's own (``SET ... EX``); size is Redis's job
(``maxmemory`` with ``maxmemory-policy volatile-lru``).

Redis never holds a cell up for long: every command has ``redis_timeout_s`` (50 ms) and no
retries; a timeout or connection error opens the link's circuit (``RedisLink``), one
warning says so, lookups skip Redis, and after ``redis_retry_s`` one caller probes it again:
the tier comes back by itself. Garbage, foreign or tampered values are misses, counted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ..core.errors import CacheError, ConfigurationError
from ..core.settings import Settings
from .faults import StorageWarning

if TYPE_CHECKING:
    from .cache.signing import Signer

__all__ = ["ENVELOPE", "RedisCacheTier", "RedisLink", "link_for", "team_prefix"]

log = logging.getLogger("claude_force_nb.store")

T = TypeVar("T")

KEY_ROOT = "cfnb:v1:"
ENVELOPE = b"cfr1"              # a team value: this magic, the 32-byte signature, the payload
SIG_BYTES = 32
SCAN_COUNT = 1000               # keys per SCAN step of clear_team
REPORT_TIMEOUT_S = 10.0         # reports and clear read many keys: a longer wait than a lookup


def _bump(lock: threading.Lock, counters: Any, *names: str) -> bool:
    """Add one to each counter ``names`` of ``counters``; True when the first is now 1 (warn then)."""
    with lock:
        for name in names:
            setattr(counters, name, getattr(counters, name) + 1)
        return bool(getattr(counters, names[0]) == 1)


def team_prefix(kid: bytes) -> str:
    """The key prefix of the team whose secret has key id ``kid``."""
    return f"{KEY_ROOT}{kid.hex()}:"


def _where(url: str) -> str:
    """The URL without user or password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    place = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{place}{parts.path}"


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "redis_url is set but redis-py is not installed: pip install 'claude-force-nb[redis]', "
            "or unset CLAUDE_FORCE_REDIS_URL."
        ) from None
    return redis


def connect(url: str, timeout_s: float) -> Any:
    """A redis-py client for ``url`` whose every command gives up after ``timeout_s``, untried again."""
    redis = _redis_module()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                    retry=Retry(NoBackoff(), 0), health_check_interval=0)
    except ValueError as exc:
        raise ConfigurationError(f"redis_url {_where(url)!r} cannot be used ({exc}): fix the URL's options.") from None


class RedisLink:
    """One Redis server as this process sees it: a client and a circuit shared by the cache
    tier and the team ledger. ``clock`` is monotonic seconds (tests pass a fake one)."""

    def __init__(self, url: str, *, timeout_s: float, retry_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = _redis_module()
        self.url = url
        self.where = _where(url)
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.client = connect(url, timeout_s)
        self._slow_client: Any = None
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None     # None: the circuit is closed (Redis is used)
        self._probing = False
        self.failures = 0                         # timeouts and connection errors met
        self.outages = 0
        self.refusals = 0                         # writes Redis refused (maxmemory reached)
        self._faults = (self.redis.ConnectionError, self.redis.TimeoutError, OSError)

    @property
    def up(self) -> bool:
        return self._open_until is None

    def ready(self) -> bool:
        """Whether a call now would ask Redis (closed circuit, or an open one due a probe)."""
        until = self._open_until
        return until is None or (not self._probing and self._clock() >= until)

    def call(self, op: Callable[[Any], T], default: T) -> T:
        """``op(client)``, or ``default`` when the circuit is open or Redis does not answer in
        time. Other errors (a full Redis refusing writes, a bug) propagate."""
        with self._lock:
            if self._open_until is not None:
                if self._probing or self._clock() < self._open_until:
                    return default
                self._probing = True
        try:
            value = op(self.client)
        except self._faults as exc:
            self._failed(exc)
            return default
        except BaseException:
            with self._lock:
                self._probing = False
            raise
        if self._open_until is not None:
            self._recovered()
        return value

    def slow_call(self, op: Callable[[Any], T]) -> T:
        """``op`` on a client with a longer timeout (reports, clear): raises CacheError when
        Redis cannot be reached, since the user asked for exactly this."""
        if self._slow_client is None:
            self._slow_client = connect(self.url, max(REPORT_TIMEOUT_S, self.timeout_s))
        try:
            return op(self._slow_client)
        except self._faults as exc:
            raise CacheError(f"Redis at {self.where} cannot be reached ({exc}): try again when it is up.") from None

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            entering = self._open_until is None
            self._open_until = self._clock() + self.retry_s
            self._probing = False
            self.failures += 1
            if entering:
                self.outages += 1
        if entering:
            warnings.warn(
                f"Redis at {self.where} did not answer ({type(exc).__name__}: {exc}): the team tier is off; "
                "calls go on with the local cache and the API, and team ledger rows wait in the local ledger. "
                f"Redis is tried again every {self.retry_s:g} s and used again as soon as it answers.",
                StorageWarning, stacklevel=4)

    def _recovered(self) -> None:
        with self._lock:
            self._open_until = None
            self._probing = False
        log.info("Redis at %s answers again: the team tier is back.", self.where)

    def refused(self, exc: BaseException) -> None:
        """Redis answered but refused a write (maxmemory reached): warn once, keep the circuit closed."""
        if _bump(self._lock, self, "refusals"):
            warnings.warn(
                f"Redis at {self.where} refused a write ({exc}): team cache entries stay local and team ledger "
                "rows wait in the local ledger. Give Redis a maxmemory with `maxmemory-policy volatile-lru` so "
                "old cache entries make room.", StorageWarning, stacklevel=3)

    def status(self) -> dict[str, Any]:
        return {"url": self.where, "up": self.up, "failures": self.failures, "outages": self.outages,
                "refusals": self.refusals}

    def close(self) -> None:
        for client in (self.client, self._slow_client):
            if client is not None:
                client.close()


_links: dict[tuple[str, float, float], RedisLink] = {}
_links_lock = threading.Lock()


def link_for(settings: Settings) -> RedisLink | None:
    """This process's link to ``settings.redis_url`` (one per URL and timeouts), or None when off."""
    if settings.redis_url is None:
        return None
    ident = (settings.redis_url, float(settings.redis_timeout_s), float(settings.redis_retry_s))
    with _links_lock:
        link = _links.get(ident)
        if link is None:
            link = _links[ident] = RedisLink(ident[0], timeout_s=ident[1], retry_s=ident[2])
        return link


class RedisCacheTier:
    """The team's cache entries on Redis: signed envelopes under ``team_prefix(kid)``.

    ``get`` returns a verified (payload, signature) pair; decoding and expiry are the
    ResponseCache's, which calls ``miss``/``tampered`` for what it rejects after that."""

    def __init__(self, link: RedisLink, signer: Signer) -> None:
        self.link = link
        self._signer = signer
        self.prefix = team_prefix(signer.kid)
        self._lock = threading.Lock()
        self.hits = self.misses = self.integrity_failures = self.skipped = self.write_errors = 0

    def _count(self, name: str) -> None:
        _bump(self._lock, self, name)

    def get(self, key: str) -> tuple[bytes, bytes] | None:
        """The verified (payload, signature) stored under ``key``, or None (a counted miss)."""
        missing = object()
        raw = self.link.call(lambda r: r.get(self.prefix + key), missing)
        if raw is missing:
            self._count("skipped")
            return None
        if raw is None:
            self._count("misses")
            return None
        if not (isinstance(raw, bytes) and raw[:4] == ENVELOPE and len(raw) > 4 + SIG_BYTES):
            self.tampered(key, "not an envelope")
            return None
        sig, payload = raw[4:4 + SIG_BYTES], raw[4 + SIG_BYTES:]
        if not self._signer.genuine(key, payload, sig):
            self.tampered(key, "bad signature")
            return None
        return payload, sig

    def hit(self) -> None:
        self._count("hits")

    def miss(self) -> None:
        self._count("misses")

    def tampered(self, key: str, why: str) -> None:
        """Count a value that failed its check (a miss); warn the first time."""
        if _bump(self._lock, self, "integrity_failures", "misses"):
            warnings.warn(
                f"Redis at {self.link.where}: the team cache entry {key[:12]} failed its integrity check ({why}); "
                "it was treated as a miss. Someone without the team secret wrote to Redis (further failures "
                "are counted in %agent cache stats, not shown).", StorageWarning, stacklevel=3)

    def put_many(self, entries: list[tuple[str, bytes, bytes, float | None]], now: float) -> int:
        """Write (key, payload, signature, expires) entries in one round trip; returns how many
        Redis took. An expired entry is skipped; a refusal (maxmemory reached) is counted."""
        todo = [(key, payload, sig, None if expires is None else math.ceil(expires - now))
                for key, payload, sig, expires in entries]
        todo = [entry for entry in todo if entry[3] is None or entry[3] > 0]
        if not todo:
            return 0

        def write(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for key, payload, sig, ex in todo:
                pipe.set(self.prefix + key, ENVELOPE + sig + payload, ex=ex)
            return list(pipe.execute(raise_on_error=False))

        results = self.link.call(write, None)
        if results is None:
            return 0
        refused = [result for result in results if isinstance(result, Exception)]
        if refused:
            with self._lock:
                self.write_errors += len(refused)
            self.link.refused(refused[0])
        return len(results) - len(refused)

    def clear(self) -> int:
        """Delete every cache entry of this team (SCAN + UNLINK, never KEYS); returns how many."""
        def sweep(r: Any) -> int:
            removed = 0
            batch: list[bytes] = []
            for name in r.scan_iter(match=self.prefix + "v1:*", count=SCAN_COUNT):
                batch.append(name)
                if len(batch) >= SCAN_COUNT:
                    removed += int(r.unlink(*batch))
                    batch = []
            if batch:
                removed += int(r.unlink(*batch))
            return removed

        return self.link.slow_call(sweep)

    def stats(self) -> dict[str, Any]:
        """This process's team tier counters, and the link's state."""
        with self._lock:
            hits, misses = self.hits, self.misses
            counts = {"hits": hits, "misses": misses, "integrity_failures": self.integrity_failures,
                      "skipped": self.skipped, "write_errors": self.write_errors}
        lookups = hits + misses
        return {**counts, "hit_rate": hits / lookups if lookups else 0.0, "team": self._signer.kid.hex(),
                **self.link.status()}
