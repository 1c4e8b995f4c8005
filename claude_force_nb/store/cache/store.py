"""ResponseCache: complete Claude responses in one SQLite file, each row a signed envelope.

Shared by several kernels (processes) and threads at once: WAL, ``synchronous=NORMAL``, a
10 s busy timeout, one connection per thread, reopened after ``fork`` (``_sqlite``).

* ``get`` checks the row's signature with ``hmac.compare_digest`` over the stored bytes
  *before* parsing anything, then the signed expiry and the current TTL. A bad row is a
  miss, is deleted, counted and logged (once per process). A row signed under another
  secret (after a rotation), another key's row sharing the id, or a row in another
  version's format is simply a miss.
* ``put`` writes inside ``BEGIN IMMEDIATE`` and, in the same transaction, culls expired
  rows, then the least recently used ones until the size cap holds; entries over the entry
  size cap are not stored. Hit counts and recency reach the file with writes (``counters``).
* ``database.CacheFile`` owns the file: connections, corruption recovery (the file is moved
  aside, never deleted), write transactions, and what a full disk or a lock does to writes.
* A home that cannot be written (no directory, key file or database can be made there) gives
  a cache without a file: every lookup a miss, nothing stored, ``stats()["persistent"]`` False
  with the ``reason``, and one warning (``store.faults``). Calls work as without a cache.

Limits: integrity against writers who do not hold the secret; no confidentiality, and no
protection against code running as the same OS user (it can read the key file).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ...core.errors import CacheError
from ...core.results import task_head
from ...core.settings import Settings, ensure_private_dir
from .._pool import StoreFile
from ..faults import fault_kind
from . import table
from .database import CacheFile, warn_once
from .keyfile import master_secret
from .keys import NOT_A_KEY, check_key, rowid_if_key, rowid_of
from .payload import CachedResponse, ForeignPayload, decode, encode
from .signing import Signer
from .team import TeamCache

__all__ = ["ENTRY_COLUMNS", "ResponseCache"]

# The rows entries() returns: column -> the Python type of its values (None where unknown).
ENTRY_COLUMNS: dict[str, type] = {
    "cache_key": str, "agent": str, "model": str, "created": float, "expires": float, "size": int,
    "hits": int, "cost_usd": float, "task": str, "answer": str,
}


class ResponseCache(StoreFile):
    """A persistent, signed response cache in one SQLite file. Thread- and process-safe.

    The secret is ``secret``, else ``settings.cache_secret``, else the key file (``keyfile``).
    ``clock`` (default ``time.time``) dates entries, decides expiry and when hit counts are
    written: tests pass a fake one.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        path: Path | None = None,
        secret: bytes | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = s = settings if settings is not None else Settings.from_env()
        self.path = Path(s.cache_path if path is None else path)
        fault: OSError | None = None        # why there can be no file now (tried again later)
        forever = False                     # ... nor ever, in this instance
        try:
            ensure_private_dir(Path(s.data_dir) if path is None else self.path.parent)
        except OSError as exc:
            if fault_kind(exc) is None:
                raise
            fault = exc
        try:
            master = master_secret(s, secret)
        except OSError as exc:
            if fault_kind(exc) is None:
                raise
            fault, forever, master = fault or exc, True, os.urandom(32)   # no key, nothing stored: any key will do
        self._signer = Signer(master)
        self.kid = self._signer.kid
        self._clock = clock
        ttl = s.cache_ttl_s
        self.ttl_s: float | None = None if ttl is None or math.isinf(ttl) else float(ttl)
        self.max_bytes = int(s.cache_max_bytes)
        self.max_entry_bytes = int(s.cache_max_entry_bytes)
        self._file = CacheFile(self.path, clock, fault=fault, retry=not forever)
        self._team = TeamCache.for_settings(s, self._signer, self._fits, self._adopt)   # None without redis_url

    def _served(self, rowid: Any, raw_key: Any, kid: Any, payload: Any, sig: Any) -> str | None:
        """The key of a scanned row (``table.SCANNED``) that ``get`` would serve, else None:
        our signature checks out and the row sits at its key's row id."""
        if not isinstance(raw_key, bytes):
            return None
        key = raw_key.decode("ascii", "replace")
        return key if rowid_if_key(key) == rowid and self._signer.signed_here(key, kid, payload, sig) else None

    def key_for(self, request: dict[str, Any]) -> str:
        """The cache key of a Messages API request body (without stream/timeouts).

        Raises TypeError/ValueError when the body is not plain JSON (NaN included)."""
        return self._signer.key_for(request)

    # ------------------------------------------------------------------ reads

    def get(self, key: str, *, defer_writes: bool = False) -> CachedResponse | None:
        """The cached response for ``key``, or None (absent, expired, other secret, or tampered):
        from the local file, else from the team tier (Redis) when one is set up.

        With ``defer_writes`` a get never writes, so it never waits for another process's
        write lock (the orchestrator reads on its event loop): hit counts wait for this
        process's next write, and a tampered row stays until a get without the flag or a
        put of its key (the orchestrator's next step after a miss) replaces it. A team hit
        is then written to the local file by the team tier's own thread.
        """
        response = self._get_local(key, defer_writes)
        if response is None and self._team is not None:
            response = self._team.get(key, self._clock(), self.ttl_s, defer_writes=defer_writes)
        return response

    def peek(self, key: str) -> CachedResponse | None:
        """This file's genuine, unexpired answer for ``key``, if any: a look that counts no hit
        or miss and writes nothing (a run's estimate looks before the run reads)."""
        return self._get_local(key, defer_writes=True, count=False)

    def _get_local(self, key: str, defer_writes: bool, count: bool = True) -> CachedResponse | None:
        miss = self._miss if count else lambda: None  # a peek counts nothing
        now = self._clock()
        rowid = check_key(key)
        row = self._file.lookup(rowid)
        if row is None:
            miss()
            return None
        payload, sig = row
        try:
            genuine = self._signer.genuine(key, payload, sig)
        except TypeError:       # NULLs written by hand
            self._integrity_failure(key, sig, "wrong column types", defer_writes)
            return None
        if not genuine:
            self._integrity_failure(key, sig, "bad signature", defer_writes)
            return None
        try:
            response = decode(payload)
        except ForeignPayload:
            miss()  # another version's format: the next put overwrites it
            return None
        except ValueError as exc:
            self._integrity_failure(key, sig, f"unreadable payload ({exc})", defer_writes)
            return None
        if (response.expires is not None and now >= response.expires) or (
                self.ttl_s is not None and now >= response.created + self.ttl_s):
            miss()
            return None
        if count and self._file.counters.hit(key, now) and not defer_writes:
            self._file.write_hits()
        return response

    def _miss(self) -> None:
        self._file.counters.miss()

    def _not_ours_to_judge(self, key: str, sig: Any) -> bool:
        """Whether the row that failed its check is another secret's (its key id differs) or
        another key's genuine row sharing this key's row id. Checked only on failure, so a hit
        reads two columns."""
        try:
            row = self._file.pool.get().execute(
                f"SELECT {table.SCANNED} FROM entries WHERE id = ? AND sig IS ?", (rowid_of(key), sig)).fetchone()
        except sqlite3.Error:
            return False
        if row is None:
            return False
        served = self._served(*row)
        return row[2] != self.kid or (served is not None and served != key)

    def _integrity_failure(self, key: str, sig: Any, why: str, defer_writes: bool) -> None:
        if self._not_ours_to_judge(key, sig):
            self._miss()                 # another secret's row, or another key's: not tampering
            return
        self._file.counters.miss(tampered_key=key)
        warn_once(
            "integrity",
            "Response cache %s: entry %s failed its integrity check (%s); it was discarded. "
            "Someone without the cache secret modified the database (further failures are not logged).",
            self.path, key[:12], why,
        )
        if not defer_writes:             # delete exactly the row judged, not one a concurrent put wrote
            judged = (rowid_of(key), sig)
            self._file.try_write(lambda conn: conn.execute("DELETE FROM entries WHERE id = ? AND sig IS ?", judged))

    # ------------------------------------------------------------------ writes

    def put(self, key: str, response: CachedResponse) -> bool:
        """Store a complete response; False when not stored (incomplete, too big, writes off)."""
        return self.put_many([(key, response)])[0]

    def put_many(self, items: Iterable[tuple[str, CachedResponse]]) -> list[bool]:
        """Store several responses in one transaction; one flag per item, as ``put`` gives."""
        items = list(items)
        for key, _ in items:
            check_key(key)
        if not self._file.fault.due():          # writes off until the next try
            return [False] * len(items)
        now = self._clock()
        expires = None if self.ttl_s is None else now + self.ttl_s
        rows = [self._row(key, response, now, expires) for key, response in items]
        todo = [row for row in rows if row is not None]
        if not todo:
            return [False] * len(items)
        keep = todo[-1][0] if len(todo) == 1 else None    # never evict the one row just written
        removed: list[int] = []

        def op(conn: sqlite3.Connection) -> None:
            table.upsert(conn, todo)
            removed.append(table.evict(conn, now, max_bytes=self.max_bytes, keep=keep))

        stored = self._file.try_write(op)
        if stored:
            self._file.counters.evicted(removed[-1])
        if self._team is not None:          # write-through: after the local file, whatever it said
            self._team.put_many([(row[1], row[3], row[4], row[6]) for row in todo], now)
        return [stored and row is not None for row in rows]

    def _size(self, key: str, payload: bytes, sig: bytes) -> int:
        """An entry's size as the caps count it: key + kid + payload + signature."""
        return len(key.encode()) + len(self.kid) + len(payload) + len(sig)

    def _fits(self, key: str, payload: bytes, sig: bytes) -> bool:
        """Whether an entry is within the entry and total size caps (as a put stores it)."""
        size = self._size(key, payload, sig)
        return size <= self.max_entry_bytes and size <= self.max_bytes

    def _adopt(self, key: str, payload: bytes, sig: bytes, response: CachedResponse) -> bool:
        """Store a team hit in the local file as it was signed: same payload, same expiry."""
        if not self._fits(key, payload, sig):
            return False
        size = self._size(key, payload, sig)
        now = self._clock()
        row = (rowid_of(key), key, self.kid, payload, sig, response.created, response.expires, now, size)
        removed: list[int] = []

        def op(conn: sqlite3.Connection) -> None:
            table.upsert(conn, [row])
            removed.append(table.evict(conn, now, max_bytes=self.max_bytes, keep=row[0]))

        stored = self._file.try_write(op)
        if stored:
            self._file.counters.evicted(removed[-1])
        return stored

    def _row(self, key: str, response: CachedResponse, now: float, expires: float | None) -> table.Row | None:
        """The signed row for ``response``, or None when it must not be cached."""
        if not isinstance(response.stop_reason, str) or not response.stop_reason or not isinstance(response.text, str):
            return None
        payload = encode(response, now, expires)
        sig = self._signer.sign(key, payload)
        size = self._size(key, payload, sig)
        if not self._fits(key, payload, sig):
            return None
        return (rowid_of(key), key, self.kid, payload, sig, now, expires, now, size)

    def delete(self, key: str) -> bool:
        """Remove one entry; True when it existed: the row ``get(key)`` serves, or else a row
        whose key column is ``key`` (every key ``verify()`` reports can be deleted). Rows away
        from their key's row id exist only in hand-edited files and are found by scanning, so
        deleting an absent key reads the whole file."""
        if not isinstance(key, str) or not key:
            raise TypeError(NOT_A_KEY.format(key))
        self._file.counters.forget(key)
        rowid = rowid_if_key(key)

        def op(conn: sqlite3.Connection) -> int:
            row = None if rowid is None else conn.execute(
                f"SELECT CAST(key AS BLOB), {table.SIGNED} FROM entries WHERE id = ?", (rowid,)).fetchone()
            if row is not None and (row[0] == key.encode() or self._signer.signed_here(key, *row[1:])):
                return conn.execute("DELETE FROM entries WHERE id = ?", (rowid,)).rowcount
            return conn.execute("DELETE FROM entries WHERE CAST(key AS BLOB) = ?", (key.encode(),)).rowcount

        return bool(self._file.write(op))

    def clear_team(self) -> int:
        """Remove this team's entries from Redis (SCAN + UNLINK); returns how many. The local
        file is untouched. Raises CacheError when no team tier is set up or Redis is down."""
        if self._team is None:
            raise CacheError("No team tier is set up: set CLAUDE_FORCE_REDIS_URL (or Settings.redis_url) first.")
        return self._team.clear()

    def clear(self) -> int:
        """Remove every entry (the ledger is a separate file and is untouched). Returns rows removed."""
        self._file.counters.forget()
        removed = self._file.write(lambda conn: conn.execute("DELETE FROM entries").rowcount)
        self._file.vacuum()
        return int(removed)

    def prune(self) -> int:
        """Delete every expired row (by a lowered TTL too), then enforce the size cap. Returns rows removed."""
        now = self._clock()
        older_than = None if self.ttl_s is None else now - self.ttl_s
        removed = int(self._file.write(lambda conn: table.evict(
            conn, now, max_bytes=self.max_bytes, older_than=older_than, all_expired=True)))
        self._file.counters.evicted(removed)
        self._file.vacuum()
        return removed

    # ------------------------------------------------------------------ inspection

    def verify(self) -> list[str]:
        """Re-check every signature; return the keys of rows that fail (payload unreadable too).

        Read-only: bad rows are reported, not deleted (``get`` deletes them when met, or call
        ``delete(key)``). A row that is not at its key's row id is bad too: it is never served.
        Rows signed under another secret cannot be checked and are skipped.
        """
        def scan(conn: sqlite3.Connection) -> list[str]:
            bad = []
            for rowid, raw_key, kid, payload, sig in conn.execute(f"SELECT {table.SCANNED} FROM entries ORDER BY id"):
                if kid != self.kid:
                    continue
                key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
                if self._served(rowid, raw_key, kid, payload, sig) is None:
                    bad.append(key)
                    continue
                try:
                    decode(payload)
                except ForeignPayload:
                    continue
                except (ValueError, TypeError):
                    bad.append(key)
            return bad

        return self._file.read(scan, [])

    def stats(self) -> dict[str, Any]:
        """Counters. ``entries``/``bytes`` describe the database as all processes left it
        (``bytes`` = the sum of entry sizes: key + kid + payload + signature, the figure the
        size cap applies to — not the file size). ``hits``, ``misses``, ``integrity_failures``
        and ``evictions`` (rows removed by TTL culling or the size cap) count this instance's
        operations in this process; with a team tier, ``redis`` holds its own counters.
        ``persistent`` is False while new answers cannot be stored
        (a full disk, a home that cannot be written), and ``reason`` says why."""
        entries, nbytes = self._file.read(table.totals, (0, 0))
        return {
            "entries": entries,
            "bytes": nbytes,
            **self._file.counters.snapshot(),
            "path": str(self.path),
            "max_bytes": self.max_bytes,
            "writes_enabled": self._file.writes_enabled,
            **self._file.fault.status(),
            **({} if self._team is None else {"redis": self._team.stats()}),
        }

    def entries(self) -> list[dict[str, Any]]:
        """One dict per entry ``get`` would serve (``ENTRY_COLUMNS``), most recent first:
        ``task`` and ``answer`` are first lines, ``created``/``expires`` unix times, ``hits``
        counts every process's hits written so far (this process's are written first).
        Rows that fail verification, or were signed under another secret, are left out.
        ``views.reports.cache_contents`` gives them as a DataFrame."""
        self._file.write_hits()
        scanned: list[Any] = self._file.read(lambda conn: conn.execute(
            f"SELECT {table.SCANNED}, size, hits FROM entries ORDER BY created DESC, id DESC").fetchall(), [])
        rows = []
        for rowid, raw_key, kid, payload, sig, size, hits in scanned:
            key = self._served(rowid, raw_key, kid, payload, sig)
            if key is None:
                continue
            try:
                response = decode(payload)
            except ValueError:          # ForeignPayload included: another version's row
                continue
            rows.append({
                "cache_key": key, "agent": response.agent, "model": response.model, "created": response.created,
                "expires": response.expires, "size": size, "hits": hits, "cost_usd": response.cost_usd,
                "task": response.task_head, "answer": task_head(response.text),
            })
        return rows

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Write unwritten hit counts (and team hits waiting for the file), close every connection. Idempotent."""
        if self._team is not None:
            self._team.close()
        self._file.close()
