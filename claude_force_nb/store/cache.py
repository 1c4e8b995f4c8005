"""ResponseCache: an HMAC-signed SQLite cache of complete Claude responses.

The cache survives kernel restarts and may be shared by several kernels (processes) and
threads at once. Design (see facts/cache-design.md §5):

* **Keys.** ``key_for(request)`` = ``"v1:" + HMAC-SHA256(k_id, canonical_json({"schema",
  "request"}))``: everything that changes the answer is in the request body, absent params
  stay absent, numeric ``temperature``/``top_p`` are floats (``1`` == ``1.0``). Because the
  key is an HMAC, the database does not let anyone confirm a guessed prompt.
* **Rows are signed envelopes.** ``payload`` holds every field of the response: a fixed
  binary header (format magic, cost, created, expires, token counts, string lengths), then
  five short strings and the answer as one UTF-8 block: a hit unpacks one struct, decodes
  once and slices, instead of parsing JSON.
  ``sig = HMAC-SHA256(k_mac, b"claude-force-nb/1\\0" + kid + key + payload)``. ``get``
  checks the signature with ``hmac.compare_digest`` over the stored bytes *before* parsing
  anything, then the signed expiry. A bad row is a miss, is deleted, is counted and logged
  (once per process). A row signed under another secret (``kid`` mismatch, e.g. after
  rotation) is simply a miss, and so is a correctly signed row in another version's format.
* **Secret.** The ``secret`` argument, else ``Settings.cache_secret``
  (``CLAUDE_FORCE_CACHE_SECRET``), else a 32-byte key file (``settings.key_path``) created
  0600 with ``O_EXCL`` in a 0700 directory outside the data dir. Subkeys ``k_id``/``k_mac``
  are derived with HMAC; ``kid`` = first 8 bytes of SHA-256(master).
* **Storage.** One rowid table whose row id is the key's first 60 bits (``rowid_of``): keys
  are HMAC outputs, so a hit is one b-tree descent with no key index (schema 2; a schema 1
  file, with a UNIQUE key index, is upgraded in place on open); WAL, ``synchronous=NORMAL``, 10 s busy
  timeout, one connection per thread, reopened after ``fork``. No pickle anywhere.
* **Eviction.** TTL checked on read (the signed expiry, and the current TTL from
  ``created``); the size cap (``cache_max_bytes``) is enforced on every write, inside the
  same ``BEGIN IMMEDIATE`` transaction: expired rows first, then least recently used.
  ``total bytes`` and ``entries`` are kept in a one-row ``totals`` table by triggers (O(1)
  per write, no scan). Approximate LRU: recency is written with the hit counts, so hits
  almost never write and a hit reads two columns only.
* **Hit counts and recency** (the ``hits`` and ``last_access`` columns) are kept in memory
  per process and written inside the next write transaction this process makes (a ``put``,
  ``delete``, ``prune``, ``entries()``), by a hit when the last such write is an hour old or
  more than 1024 keys wait, and on ``close()``. A hit takes no lock: it appends
  ``(key, time)`` to a log that is folded into per-key counts every 1024 hits and before
  each write (a locked per-key update on every hit cost ~0.5 µs of a ~12 µs hit). A process
  killed before any of these loses its unwritten counts (never entries). A write per hit
  would cost ~5× on hit latency (facts §4).
* **Failures.** A corrupt database file is renamed to ``cache.sqlite3.corrupt-<ts>``
  (with its ``-wal``/``-shm``) and recreated, with a logged warning. A full disk turns
  writes off for this process (``put`` returns False) and keeps reads working.

Limits: integrity against writers who do not hold the secret; no confidentiality, and no
protection against code running as the same OS user (it can read the key file).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import stat
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._sqlite import (
    ConnectionPool,
    is_corruption,
    is_disk_full,
    is_locked,
    move_aside,
    reset_after_fork,
    vacuum,
    write_transaction,
)
from ..core.errors import CacheError, ConfigurationError, InsecurePathError
from ..core.results import Usage
from ..core.settings import Settings, ensure_private_dir

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["CachedResponse", "ResponseCache", "canonical_json"]

log = logging.getLogger(__name__)

SCHEMA = "claude-force-nb/1"
# Signed columns are read as BLOBs whatever their stored type: a row rewritten as TEXT that is
# not UTF-8 must fail its signature check, not the fetch. Each extra column costs ~0.3 µs a hit.
_SIGNED = "CAST(kid AS BLOB), CAST(payload AS BLOB), CAST(sig AS BLOB)"
_ROW = f"id, CAST(key AS BLOB), {_SIGNED}"       # a scanned row: bytes, so any key column can be judged
_SELECT_ENTRY = "SELECT CAST(payload AS BLOB), CAST(sig AS BLOB) FROM entries WHERE id = ?"
KEY_PREFIX = "v1:"
_KEY_FORMAT = re.compile(r"v1:[0-9a-f]{64}")
_NOT_A_KEY = "{!r:.40} is not a cache key: pass the string key_for() returns"
SIG_DOMAIN = b"claude-force-nb/1\0"
SCHEMA_VERSION = 2                  # 2: the rowid is derived from the key (1: a UNIQUE key index)
KEY_FILE_BYTES = 32
FLUSH_INTERVAL_S = 3600.0           # a process that only reads writes its hit counts and recency hourly
EXPIRED_PER_WRITE = 256             # expired rows culled per put (prune() removes all)
MAX_PENDING_KEYS = 1024             # flush in-memory hit counts beyond this many keys
MAX_LOGGED_HITS = 1024              # hits logged before they are folded into per-key counts
_FLOAT_PARAMS = ("temperature", "top_p")
_TASK_HEAD_CHARS = 200

_warned: set[str] = set()           # warnings already logged by this process


def _warn_once(tag: str, message: str, *args: Any) -> None:
    if tag not in _warned:
        _warned.add(tag)
        log.warning(message, *args)


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8, NaN/Infinity refused.

    A lone surrogate (valid in JSON as ``\\ud800``, so the API accepts it) is encoded with
    ``surrogatepass`` rather than raising; every other string encodes as plain UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8", "surrogatepass"
    )


def _first_line(text: str | None, limit: int = _TASK_HEAD_CHARS) -> str:
    if not text:
        return ""
    stripped = text.strip()
    return stripped.splitlines()[0][:limit] if stripped else ""


@dataclass(frozen=True)
class CachedResponse:
    """A complete response as stored in the cache (``created``/``expires`` are set by put)."""

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

    def _payload(self, created: float, expires: float | None) -> bytes:
        """The signed bytes: a fixed binary header, then five short strings and ``text``.

        Layout (little-endian, ``_HEADER``): the magic ``b"cfn2"``; cost_usd, created and
        expires as doubles (NaN = None); the five token counts as int64; the lengths in code
        points of agent, model, request_id, stop_reason and task_head as uint32 (``_NONE`` =
        None). Then those strings and the answer, back to back, as one UTF-8 block. A hit
        unpacks one struct, decodes once and slices, instead of parsing JSON.
        """
        cost = self.cost_usd
        if cost is not None:
            cost = float(cost)
            if not math.isfinite(cost):
                cost = None       # NaN = "unknown price" → stored as unknown
        u = self.usage if isinstance(self.usage, Usage) else Usage.from_dict(dict(self.usage))
        for name in ("agent", "model", "request_id", "stop_reason", "task_head", "text"):
            value = getattr(self, name)
            if not isinstance(value, str) and not (value is None and name in _OPTIONAL_STRINGS):
                raise TypeError(f"CachedResponse.{name} must be a string, not {type(value).__name__}")
        strings = [self.agent, self.model, self.request_id, self.stop_reason, (self.task_head or "")[:_TASK_HEAD_CHARS]]
        header = _HEADER.pack(
            PAYLOAD_MAGIC,
            math.nan if cost is None else cost,
            float(created),
            math.nan if expires is None else float(expires),
            int(u.input_tokens), int(u.output_tokens), int(u.cache_write_5m_tokens),
            int(u.cache_write_1h_tokens), int(u.cache_read_tokens),
            *(_NONE if value is None else len(value) for value in strings),
        )
        body = "".join([*(value for value in strings if value), self.text])
        return header + body.encode("utf-8", "surrogatepass")

    @classmethod
    def _from_payload(cls, payload: bytes) -> CachedResponse:
        """Parse a payload whose signature was already verified (so it is our own output),
        still strictly: a malformed payload must never yield a half-filled object.

        Raises ForeignPayload for a payload another version of claude-force-nb wrote."""
        if payload[:4] != PAYLOAD_MAGIC:
            raise ForeignPayload("payload written by another version of claude-force-nb")
        try:
            _, cost, created, expires, i, o, w5, w1, cr, n_agent, n_model, n_rid, n_stop, n_head = _unpack_header(payload)
        except struct.error as exc:
            raise ValueError(f"payload header is truncated ({exc})") from None
        body = payload[_HEADER_SIZE:].decode("utf-8", "surrogatepass")
        b = 0 if n_agent == _NONE else n_agent
        c = b + n_model
        d = c if n_rid == _NONE else c + n_rid
        e = d + n_stop
        f = e + n_head
        if f > len(body):
            raise ValueError("payload strings run past its end")
        # Both classes are plain frozen dataclasses: item stores into the instance __dict__ give
        # equal objects at a third of the cost of fifteen object.__setattr__ calls per hit, and
        # less than __dict__.update(**fields) (the struct already typed every value).
        usage = _new(Usage)
        fields = usage.__dict__
        fields["input_tokens"] = i
        fields["output_tokens"] = o
        fields["cache_write_5m_tokens"] = w5
        fields["cache_write_1h_tokens"] = w1
        fields["cache_read_tokens"] = cr
        response = _new(cls)
        fields = response.__dict__
        fields["text"] = body[f:]
        fields["stop_reason"] = body[d:e]
        fields["usage"] = usage
        fields["model"] = body[b:c]
        fields["cost_usd"] = None if cost != cost else cost
        fields["agent"] = None if n_agent == _NONE else body[:b]
        fields["task_head"] = body[e:f]
        fields["request_id"] = None if n_rid == _NONE else body[c:d]
        fields["created"] = created
        fields["expires"] = None if expires != expires else expires
        return response


class ForeignPayload(ValueError):
    """A correctly signed payload in a format this version does not read (a miss, not tampering)."""


PAYLOAD_MAGIC = b"cfn2"
_HEADER = struct.Struct("<4sddd5q5I")   # magic, cost, created, expires, 5 token counts, 5 string lengths
_HEADER_SIZE = _HEADER.size
_unpack_header = _HEADER.unpack_from
_new = object.__new__
_NONE = 0xFFFFFFFF                      # string length meaning None
_OPTIONAL_STRINGS = ("agent", "request_id", "task_head")   # task_head None is stored as ""
if set(Usage.__dataclass_fields__) != {"input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                                       "cache_read_tokens"} or hasattr(Usage, "__slots__") or hasattr(Usage, "__post_init__"):
    raise ImportError("results.Usage changed shape: update the cache payload format (claude_force_nb/cache.py)")


class _HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the keyed inner/outer states and a fixed message prefix
    computed once, so signing a row costs two ``hashlib`` copies instead of the ``hmac``
    module's per-object set-up (about 0.7 µs of a 10 µs hit). Equal to
    ``hmac.new(secret, prefix + key + payload, hashlib.sha256).digest()`` (tested)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes, prefix: bytes = b"") -> None:
        block = hashlib.sha256().block_size
        if len(secret) > block:
            secret = hashlib.sha256(secret).digest()
        secret = secret.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(k ^ 0x36 for k in secret))
        self._outer = hashlib.sha256(bytes(k ^ 0x5C for k in secret))
        self._inner.update(prefix)

    def digest(self, key: bytes, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(key)
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


# --------------------------------------------------------------------------- secret

def _check_key_file(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise InsecurePathError(f"{path} is not a regular file: remove it so a new cache key can be created.")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecurePathError(
            f"{path} belongs to another user (uid {st.st_uid}): remove it (a new key is generated) "
            "or set CLAUDE_FORCE_CACHE_SECRET."
        )
    if st.st_mode & 0o077:
        raise InsecurePathError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}): "
            f"run `chmod 600 {path}`."
        )


def _read_key_file(path: Path, *, wait_s: float = 2.0) -> bytes:
    """Read an existing key file; wait briefly for a creator that has not written it yet."""
    deadline = time.monotonic() + wait_s
    while True:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            _check_key_file(fd, path)
            data = b""
            while chunk := os.read(fd, 4096):
                data += chunk
        finally:
            os.close(fd)
        if len(data) >= KEY_FILE_BYTES:
            return data
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"{path} holds {len(data)} bytes, not a {KEY_FILE_BYTES}-byte key: delete it to generate a "
                "new one (existing cache entries then become misses)."
            )
        time.sleep(0.01)


def load_or_create_key_file(path: Path) -> bytes:
    """The master secret from ``path``, creating it (0600, O_EXCL) when absent. Race-safe."""
    path = Path(path)
    ensure_private_dir(path.parent)
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return _read_key_file(path)         # another kernel won the race (or made it long ago)
    try:
        key = os.urandom(KEY_FILE_BYTES)
        view = memoryview(key)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return key


# --------------------------------------------------------------------------- schema

_DDL = (
    """CREATE TABLE IF NOT EXISTS entries(
        id INTEGER PRIMARY KEY,     -- rowid_of(key): a lookup is one b-tree descent
        key TEXT NOT NULL,
        kid BLOB NOT NULL,
        payload BLOB NOT NULL,
        sig BLOB NOT NULL,
        created REAL NOT NULL,
        expires REAL,
        last_access REAL NOT NULL,
        size INTEGER NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires) WHERE expires IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS entries_access ON entries(last_access)",
    "CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1), entries INTEGER NOT NULL, bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO totals(id, entries, bytes) VALUES (1, 0, 0)",
    """CREATE TRIGGER IF NOT EXISTS entries_ai AFTER INSERT ON entries BEGIN
        UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1; END""",
    """CREATE TRIGGER IF NOT EXISTS entries_ad AFTER DELETE ON entries BEGIN
        UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1; END""",
    """CREATE TRIGGER IF NOT EXISTS entries_au AFTER UPDATE OF size ON entries BEGIN
        UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1; END""",
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v)",
    f"INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', {SCHEMA_VERSION})",
)


def _schema_version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT v FROM meta WHERE k = 'schema'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else int(row[0])


def rowid_of(key: str) -> int:
    """The row id of a cache key: its first 60 bits (15 hex digits after ``"v1:"``).

    Keys are HMAC outputs, so these bits are uniform and the id needs no index of its own.
    Two keys sharing an id (p ≈ n²/2⁶¹: 3·10⁻⁸ for the 250k rows a 512 MiB cache holds)
    share one row: the later put replaces the earlier answer, which is then a miss.
    Raises ValueError or TypeError when those digits are not there (``get``, ``put`` and
    ``delete`` turn that into one TypeError that names the fix)."""
    return int(key[3:18], 16)


def _rowid_if_key(key: str) -> int | None:
    """The row id of ``key`` when it has the exact format ``key_for`` gives, else None."""
    return rowid_of(key) if _KEY_FORMAT.fullmatch(key) else None


def _stored_rowid(raw_key: Any) -> int | None:
    """The row id for a key column read as bytes, or None when it does not hold a key."""
    return _rowid_if_key(raw_key.decode("ascii", "replace")) if isinstance(raw_key, bytes) else None


UPGRADE_CHUNK_ROWS = 256
UPGRADE_SPACE_FACTOR = 1.5          # free disk the upgrade wants, x the file (measured peak: ~1.3x)


def _upgrade_from_v1(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: each row moves to the row id derived from its key, and the UNIQUE key
    index goes. Signatures, hit counts and recency move with the rows; totals are recounted
    by the insert trigger. Rows whose key column holds no key (never written by
    claude-force-nb) are dropped; of two keys sharing an id, the more recently used stays.

    One transaction, so a concurrent opener waits and then finds version 2. Rows move in
    chunks, each removed from the old table as it goes, so freed pages are reused: the file
    grows little, the WAL to about the file's size until the next checkpoint. Free space of
    UPGRADE_SPACE_FACTOR x the file is checked first (inside the transaction, so an opener
    that waited for another's upgrade finds version 2 instead of judging its WAL)."""
    path = Path(_database_path(conn))
    try:
        _move_rows_to_schema2(conn, path)
    except sqlite3.OperationalError as exc:
        if is_disk_full(exc):
            raise _upgrade_needs_space(path, *_upgrade_space(path)) from exc
        raise
    vacuum(conn)                                    # give the old table's pages back


def _upgrade_space(path: Path) -> tuple[int, int]:
    """(bytes the upgrade may need, bytes free) for the cache file at ``path``."""
    return int(path.stat().st_size * UPGRADE_SPACE_FACTOR), shutil.disk_usage(path.parent).free


def _upgrade_needs_space(path: Path, needed: int, free: int) -> CacheError:
    mib = 2**20
    return CacheError(
        f"The response cache {path} must be upgraded once (to schema 2), which needs about "
        f"{needed / mib:.0f} MiB free on its disk; {free / mib:.0f} MiB are free. Free some space, "
        f"or delete {path} to start with an empty cache."
    )


def _move_rows_to_schema2(conn: sqlite3.Connection, path: Path) -> None:
    with write_transaction(conn):
        if _schema_version(conn) != 1:
            return
        needed, free = _upgrade_space(path)
        if free < needed:
            raise _upgrade_needs_space(path, needed, free)
        slots: dict[int, tuple[float, int]] = {}       # new id -> (recency, old id)
        total = 0
        for old_id, raw_key, last_access in conn.execute("SELECT id, CAST(key AS BLOB), last_access FROM entries"):
            total += 1
            rowid = _stored_rowid(raw_key)
            recency = float(last_access) if isinstance(last_access, (int, float)) else 0.0
            if rowid is not None and (rowid not in slots or recency > slots[rowid][0]):
                slots[rowid] = (recency, old_id)
        log.warning("Upgrading the response cache %s to schema 2 (%d entries): once, in place.", path, total)
        for kind, name in (("TRIGGER", "entries_ai"), ("TRIGGER", "entries_ad"), ("TRIGGER", "entries_au"),
                           ("INDEX", "entries_expires"), ("INDEX", "entries_access")):
            conn.execute(f"DROP {kind} IF EXISTS {name}")     # (a hand-edited file may lack some)
        conn.execute("ALTER TABLE entries RENAME TO entries_v1")
        conn.execute("UPDATE totals SET entries = 0, bytes = 0 WHERE id = 1")
        for statement in _DDL:
            conn.execute(statement)
        moves = [(rowid, old_id) for rowid, (_, old_id) in slots.items()]
        for start in range(0, len(moves), UPGRADE_CHUNK_ROWS):
            chunk = moves[start:start + UPGRADE_CHUNK_ROWS]
            conn.executemany(
                """INSERT INTO entries(id, key, kid, payload, sig, created, expires, last_access, size, hits)
                   SELECT ?, key, kid, payload, sig, created, expires, last_access, size, hits FROM entries_v1 WHERE id = ?""",
                chunk,
            )
            conn.executemany("DELETE FROM entries_v1 WHERE id = ?", [(old_id,) for _, old_id in chunk])
        conn.execute("DROP TABLE entries_v1")
        conn.execute("UPDATE meta SET v = 2 WHERE k = 'schema'")
    log.warning("The response cache was upgraded: %d entries kept, %d dropped (no key, or a shared row id).",
                len(moves), total - len(moves))


def _database_path(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA database_list").fetchone()[2]


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema (the pool retries this while another process holds the lock)."""
    version = _schema_version(conn)
    if version is None:
        with write_transaction(conn):       # IF NOT EXISTS: a concurrent creator's work is kept
            for statement in _DDL:
                conn.execute(statement)
        version = _schema_version(conn)
    elif version == 1:
        _upgrade_from_v1(conn)
        version = _schema_version(conn)
    if version != SCHEMA_VERSION:
        raise CacheError(
            f"The cache database has schema version {version}, this version of claude-force-nb "
            f"expects {SCHEMA_VERSION}: upgrade claude-force-nb or use another CLAUDE_FORCE_HOME."
        )


# --------------------------------------------------------------------------- the cache



class ResponseCache:
    """A persistent, signed response cache in one SQLite file. Thread- and process-safe.

    ``clock`` (default ``time.time``) exists for tests: it dates entries and decides expiry.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        path: Path | None = None,
        secret: bytes | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        s = self.settings
        if path is None:
            ensure_private_dir(Path(s.data_dir))
            self.path = Path(s.cache_path)
        else:
            self.path = Path(path)
            ensure_private_dir(self.path.parent)
        master = self._master_secret(secret)
        self.kid = hashlib.sha256(master).digest()[:8]
        self._k_id = hmac.new(master, b"claude-force-nb key-id v1", hashlib.sha256).digest()
        k_mac = hmac.new(master, b"claude-force-nb mac v1", hashlib.sha256).digest()
        self._mac = _HmacSha256(k_mac, SIG_DOMAIN + self.kid)    # rows are signed under our kid
        del master, k_mac
        self._clock = clock
        ttl = s.cache_ttl_s
        self.ttl_s: float | None = None if ttl is None or math.isinf(ttl) else float(ttl)
        self.max_bytes = int(s.cache_max_bytes)
        self.max_entry_bytes = int(s.cache_max_entry_bytes)
        self.flush_interval_s = FLUSH_INTERVAL_S

        self._lock = threading.Lock()                       # counters + pending hit counts
        # A hit only appends (key, time) to _hit_log: deque.append is atomic, so a hit takes no
        # lock and touches no per-key state. The log is folded into _pending (key -> [hits, time
        # of the latest hit]) every MAX_LOGGED_HITS hits and before every write.
        self._hit_log: deque[tuple[str, float]] = deque()
        self._pending: dict[str, list[float]] = {}
        self._flushed_at = clock()                          # when pending hits were last written
        self._doomed: list[tuple[str, Any]] = []             # tampered rows (key, sig) to delete
        self._hits = self._misses = self._integrity_failures = self._evictions = 0
        self._writes_enabled = True
        self._recover_lock = threading.Lock()
        self._pool = ConnectionPool(self.path, setup=_ensure_schema)
        reset_after_fork(self)
        self._run(lambda conn: None)     # open now: schema races, corruption surface here

    def _after_fork(self) -> None:
        # In a forked child: locks may have been held by a parent thread, the parent's
        # pending hit counts are the parent's to flush, and counters are per process.
        self._lock = threading.Lock()
        self._recover_lock = threading.Lock()
        self._hit_log = deque()
        self._pending = {}
        self._doomed = []
        self._hits = self._misses = self._integrity_failures = self._evictions = 0

    def _master_secret(self, secret: bytes | str | None) -> bytes:
        if secret is None:
            secret = self.settings.cache_secret
        if secret is None:
            ensure_private_dir(Path(self.settings.secrets_dir))
            return load_or_create_key_file(Path(self.settings.key_path))
        if isinstance(secret, str):
            secret = secret.encode()
        if not secret:
            raise ConfigurationError("The cache secret is empty: set CLAUDE_FORCE_CACHE_SECRET to a long random value or unset it.")
        return bytes(secret)

    # ------------------------------------------------------------------ plumbing

    def _run(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``op(conn)``; a corrupt database is moved aside, recreated, and ``op`` retried once."""
        for attempt in (0, 1):
            try:
                return op(self._pool.get())
            except sqlite3.DatabaseError as exc:
                if attempt or not is_corruption(exc):
                    raise
                self._recover(exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _recover(self, exc: BaseException) -> None:
        with self._recover_lock:
            opened = self._pool.thread_file_id()
            self._pool.reset()
            if opened is not None and self._pool.file_id_at_path() == opened:
                target = move_aside(self.path)
                log.warning(
                    "The response cache %s was corrupt (%s); it was moved to %s and a new empty cache "
                    "was created. Delete the old file once you no longer need it.",
                    self.path, exc, target,
                )
            with self._lock:
                self._fold_hits()
                self._pending.clear()

    def _served(self, rowid: Any, raw_key: Any, kid: Any, payload: Any, sig: Any) -> str | None:
        """The key of a scanned row (``_ROW``) that ``get`` would serve, else None: our
        signature checks out and the row sits at its key's row id."""
        if not isinstance(raw_key, bytes):
            return None
        key = raw_key.decode("ascii", "replace")
        return key if _rowid_if_key(key) == rowid and self._valid(key, kid, payload, sig) else None

    def _valid(self, key: str, kid: bytes, payload: bytes, sig: bytes) -> bool:
        """Whether the row's signature is ours (its kid must be ours: rows of other secrets fail)."""
        if not (type(kid) is type(payload) is type(sig) is bytes and isinstance(key, str)) or kid != self.kid:
            return False  # another secret's row, or NULLs / a non-text key written by hand
        return hmac.compare_digest(self._mac.digest(key.encode(), payload), sig)

    # ------------------------------------------------------------------ keys

    def key_for(self, request: dict[str, Any]) -> str:
        """The cache key of a Messages API request body (without stream/timeouts).

        Raises TypeError/ValueError when the body is not plain JSON (NaN included).
        """
        if not isinstance(request, dict):
            raise TypeError(f"request must be a dict of Messages API params, not {type(request).__name__}")
        body = dict(request)
        for name in _FLOAT_PARAMS:
            value = body.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                body[name] = float(value)
        material = canonical_json({"schema": SCHEMA, "request": body})
        return KEY_PREFIX + hmac.new(self._k_id, material, hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ reads

    def get(self, key: str, *, defer_writes: bool = False) -> CachedResponse | None:
        """The cached response for ``key``, or None (absent, expired, other secret, or tampered).

        A get never waits for a write lock when ``defer_writes`` is set (the orchestrator
        reads on its event loop): the hourly write of hit counts and recency and the removal
        of a tampered row then wait for this process's next write.
        """
        now = self._clock()
        try:
            if type(key) is not str:
                raise TypeError
            rowid = rowid_of(key)
        except (TypeError, ValueError):
            raise TypeError(_NOT_A_KEY.format(key)) from None
        try:
            row = self._pool.get().execute(_SELECT_ENTRY, (rowid,)).fetchone()
        except sqlite3.DatabaseError as exc:       # rare: corruption (recover, retry) or a lock
            row = self._get_row_slow(rowid, exc)
        if row is None:
            return self._miss()
        payload, sig = row
        try:
            genuine = hmac.compare_digest(self._mac.digest(key.encode(), payload), sig)
        except TypeError:       # a row rewritten with other SQL types
            return self._integrity_failure(key, sig, "wrong column types", defer_writes)
        if not genuine:
            return self._integrity_failure(key, sig, "bad signature", defer_writes)
        try:
            response = CachedResponse._from_payload(payload)
        except ForeignPayload:
            return self._miss()  # another version's format: the next put overwrites it
        except ValueError as exc:
            return self._integrity_failure(key, sig, f"unreadable payload ({exc})", defer_writes)
        expires = response.expires
        if (expires is not None and now >= expires) or (self.ttl_s is not None and now >= response.created + self.ttl_s):
            return self._miss()
        log = self._hit_log
        log.append((key, now))
        if len(log) > MAX_LOGGED_HITS or now - self._flushed_at >= self.flush_interval_s:
            self._settle_hits(now, defer_writes)
        return response

    def _fold_hits(self) -> None:
        """Under ``_lock``: move logged hits into the per-key counts (only folders pop, under
        the lock, while hits only append, so the log never runs dry mid-fold)."""
        log, pending = self._hit_log, self._pending
        folded = len(log)
        for _ in range(folded):
            key, when = log.popleft()
            entry = pending.get(key)
            if entry is None:
                pending[key] = [1, when]
            else:
                entry[0] += 1
                entry[1] = max(entry[1], when)
        self._hits += folded

    def _settle_hits(self, now: float, defer_writes: bool) -> None:
        """Fold logged hits; write them when they are an hour old or too many keys wait."""
        with self._lock:
            self._fold_hits()
            flush = now - self._flushed_at >= self.flush_interval_s or len(self._pending) > MAX_PENDING_KEYS
        if flush and not defer_writes:
            if self._writes_enabled:
                self._flush()
            elif len(self._pending) > MAX_PENDING_KEYS:
                with self._lock:
                    self._pending.clear()

    def _get_row_slow(self, rowid: int, exc: sqlite3.DatabaseError) -> tuple[Any, ...] | None:
        def lookup(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            return conn.execute(_SELECT_ENTRY, (rowid,)).fetchone()

        try:
            if is_corruption(exc):
                self._recover(exc)
                return self._run(lookup)
            raise exc
        except sqlite3.OperationalError as err:
            if not is_locked(err):
                raise
            _warn_once("get-locked", "The response cache %s is locked; treating lookups as misses.", self.path)
            return None

    def _not_ours_to_judge(self, key: str, sig: Any) -> bool:
        """Whether the row that failed its check is another secret's (its key id differs) or
        another key's genuine row sharing this key's row id. Checked only on failure, so a hit
        reads two columns."""
        try:
            row = self._pool.get().execute(f"SELECT {_ROW} FROM entries WHERE id = ? AND sig IS ?", (rowid_of(key), sig)).fetchone()
        except sqlite3.Error:
            return False
        if row is None:
            return False
        served = self._served(*row)
        return row[2] != self.kid or (served is not None and served != key)

    def _miss(self) -> None:
        with self._lock:
            self._misses += 1
        return None

    def _integrity_failure(self, key: str, sig: Any, why: str, defer: bool = False) -> None:
        if self._not_ours_to_judge(key, sig):
            return self._miss()          # another secret's row, or another key's: not tampering
        with self._lock:
            self._misses += 1
            self._integrity_failures += 1
            self._fold_hits()
            self._pending.pop(key, None)
        _warn_once(
            "integrity",
            "Response cache %s: entry %s failed its integrity check (%s); it was discarded. "
            "Someone without the cache secret modified the database (further failures are not logged).",
            self.path, key[:12], why,
        )
        # delete exactly the row we judged (not a valid row a concurrent put just wrote)
        with self._lock:
            self._doomed.append((key, sig))
        if not defer:
            self._try_write(lambda conn: None)  # the write applies pending deletions
        return None

    # ------------------------------------------------------------------ writes

    def _flush_pending(self, conn: sqlite3.Connection) -> list[tuple[str, list[float]]]:
        """Inside a write transaction: apply this process's pending hit counts and recency."""
        with self._lock:
            self._fold_hits()
            items, self._pending = list(self._pending.items()), {}
            self._flushed_at = self._clock()
            doomed, self._doomed = self._doomed, []
        if doomed:
            conn.executemany("DELETE FROM entries WHERE id = ? AND sig IS ?", [(rowid_of(k), sig) for k, sig in doomed])
        if items:
            conn.executemany(
                "UPDATE entries SET hits = hits + ?, last_access = MAX(last_access, ?) WHERE id = ? AND key = ?",
                [(int(hits), touched, rowid_of(key), key) for key, (hits, touched) in items],
            )
        return items

    def _restore_pending(self, items: Iterable[tuple[str, list[float]]]) -> None:
        with self._lock:
            for key, (hits, touched) in items:
                entry = self._pending.setdefault(key, [0, 0.0])
                entry[0] += hits
                entry[1] = max(entry[1], touched)

    def _write(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        """``op`` inside BEGIN IMMEDIATE, after flushing pending hit counts. Errors propagate."""
        flushed: list[tuple[str, list[float]]] = []

        def txn(conn: sqlite3.Connection) -> Any:
            nonlocal flushed
            with write_transaction(conn):
                flushed = self._flush_pending(conn)
                return op(conn)

        try:
            return self._run(txn)
        except BaseException as exc:
            if flushed and not is_corruption(exc):
                self._restore_pending(flushed)
            if is_disk_full(exc):
                self._disable_writes(exc)
            raise

    def _try_write(self, op: Callable[[sqlite3.Connection], Any]) -> bool:
        """Best-effort ``_write``: False (and a log line) when the database cannot be written."""
        if not self._writes_enabled:
            return False
        try:
            self._write(op)
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):
                return False
            if is_locked(exc):
                _warn_once("locked", "The response cache %s stayed locked: a write was skipped (%s).", self.path, exc)
                return False
            raise
        return True

    def _flush(self) -> None:
        """Write this process's pending hit counts and recency (best effort)."""
        if self._hit_log or self._pending or self._doomed:
            self._try_write(lambda conn: None)

    def _disable_writes(self, exc: BaseException) -> None:
        self._writes_enabled = False
        log.warning(
            "The disk holding the response cache %s is full (%s): caching new responses is off for "
            "this process; cached answers are still served. Free space and restart the kernel.",
            self.path, exc,
        )

    def put(self, key: str, response: CachedResponse) -> bool:
        """Store a complete response; False when not stored (incomplete, too big, writes off)."""
        return self.put_many([(key, response)])[0]

    def put_many(self, items: Iterable[tuple[str, CachedResponse]]) -> list[bool]:
        """Store several responses in one transaction; one flag per item, as ``put`` gives."""
        items = list(items)
        for key, _ in items:
            if not isinstance(key, str) or _rowid_if_key(key) is None:
                raise TypeError(_NOT_A_KEY.format(key))
        if not self._writes_enabled:
            return [False] * len(items)
        now = self._clock()
        expires = None if self.ttl_s is None else now + self.ttl_s
        rows = [self._row(key, response, now, expires) for key, response in items]
        todo = [row for row in rows if row is not None]
        if not todo:
            return [False] * len(items)
        removed: list[int] = []
        keep = todo[-1][0] if len(todo) == 1 else None    # the row id just written

        def op(conn: sqlite3.Connection) -> None:
            for row in todo:
                self._upsert(conn, row)
            removed.append(self._enforce_limits(conn, now, keep=keep))

        stored = self._try_write(op)
        if stored:
            self._count_evictions(removed[-1])
        return [stored and row is not None for row in rows]

    def _row(self, key: str, response: CachedResponse, now: float, expires: float | None) -> tuple[Any, ...] | None:
        """The signed row for ``response``, or None when it must not be cached."""
        if not isinstance(response.stop_reason, str) or not response.stop_reason or not isinstance(response.text, str):
            return None
        payload = response._payload(now, expires)
        key_b = key.encode()
        sig = self._mac.digest(key_b, payload)
        size = len(key_b) + len(self.kid) + len(payload) + len(sig)
        if size > self.max_entry_bytes or size > self.max_bytes:
            return None
        return (rowid_of(key), key, self.kid, payload, sig, now, expires, now, size)

    @staticmethod
    def _upsert(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        # An UPSERT (not INSERT OR REPLACE) so the UPDATE trigger keeps the totals exact. A row
        # of another key with the same id is replaced whole, hit count included.
        conn.execute(
            """INSERT INTO entries(id, key, kid, payload, sig, created, expires, last_access, size)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET key = excluded.key, kid = excluded.kid, payload = excluded.payload,
                 sig = excluded.sig, created = excluded.created, expires = excluded.expires,
                 last_access = excluded.last_access, size = excluded.size,
                 hits = CASE WHEN key = excluded.key THEN hits ELSE 0 END""",
            row,
        )

    def _enforce_limits(self, conn: sqlite3.Connection, now: float, *, keep: int | None, all_expired: bool = False) -> int:
        """Delete expired rows, then least-recently-used rows until under max_bytes."""
        removed = 0
        limit = -1 if all_expired else EXPIRED_PER_WRITE
        removed += conn.execute(
            "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)",
            (now, limit),
        ).rowcount
        if all_expired and self.ttl_s is not None:   # prune(): also rows older than a lowered TTL
            removed += conn.execute("DELETE FROM entries WHERE created <= ?", (now - self.ttl_s,)).rowcount
        total = conn.execute("SELECT bytes FROM totals WHERE id = 1").fetchone()[0]
        while total > self.max_bytes:
            victims = conn.execute(
                "SELECT id, size FROM entries WHERE id IS NOT ? ORDER BY last_access, id LIMIT 64", (keep,)
            ).fetchall()
            if not victims:
                break
            batch = []
            for rowid, size in victims:
                batch.append((rowid,))
                total -= size
                if total <= self.max_bytes:
                    break
            conn.executemany("DELETE FROM entries WHERE id = ?", batch)
            removed += len(batch)
        return removed

    def _count_evictions(self, removed: int) -> None:
        if removed:
            with self._lock:
                self._evictions += removed

    def delete(self, key: str) -> bool:
        """Remove one entry; True when it existed: the row ``get(key)`` serves, or else a row
        whose key column is ``key`` (every key ``verify()`` reports can be deleted). Rows away
        from their key's row id exist only in hand-edited files and are found by scanning, so
        deleting an absent key reads the whole file."""
        if not isinstance(key, str) or not key:
            raise TypeError(_NOT_A_KEY.format(key))
        with self._lock:
            self._fold_hits()
            self._pending.pop(key, None)
        rowid = _rowid_if_key(key)

        def op(conn: sqlite3.Connection) -> int:
            row = None if rowid is None else conn.execute(
                f"SELECT CAST(key AS BLOB), {_SIGNED} FROM entries WHERE id = ?", (rowid,)).fetchone()
            if row is not None and (row[0] == key.encode() or self._valid(key, *row[1:])):
                return conn.execute("DELETE FROM entries WHERE id = ?", (rowid,)).rowcount
            return conn.execute("DELETE FROM entries WHERE CAST(key AS BLOB) = ?", (key.encode(),)).rowcount

        return bool(self._write(op))

    def clear(self) -> int:
        """Remove every entry (the ledger is a separate file and is untouched). Returns rows removed."""
        with self._lock:
            self._fold_hits()
            self._pending.clear()
        removed = self._write(lambda conn: conn.execute("DELETE FROM entries").rowcount)
        self._vacuum()
        return int(removed)

    def prune(self) -> int:
        """Delete every expired row, then enforce the size cap. Returns rows removed."""
        now = self._clock()
        removed = int(self._write(lambda conn: self._enforce_limits(conn, now, keep=None, all_expired=True)))
        self._count_evictions(removed)
        self._vacuum()
        return removed

    def _vacuum(self) -> None:
        self._run(vacuum)

    # ------------------------------------------------------------------ inspection

    def verify(self) -> list[str]:
        """Re-check every signature; return the keys of rows that fail (payload unreadable too).

        Read-only: bad rows are reported, not deleted (``get`` deletes them when met, or call
        ``delete(key)``). A row that is not at its key's row id is bad too: it is never served.
        Rows signed under another secret cannot be checked and are skipped.
        """
        def scan(conn: sqlite3.Connection) -> list[str]:
            bad = []
            for rowid, raw_key, kid, payload, sig in conn.execute(f"SELECT {_ROW} FROM entries ORDER BY id"):
                if kid != self.kid:
                    continue
                key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
                if self._served(rowid, raw_key, kid, payload, sig) is None:
                    bad.append(key)
                    continue
                try:
                    CachedResponse._from_payload(payload)
                except ForeignPayload:
                    continue
                except (ValueError, TypeError):
                    bad.append(key)
            return bad

        return self._run(scan)

    def stats(self) -> dict[str, Any]:
        """Counters. ``entries``/``bytes`` describe the database as all processes left it
        (``bytes`` = the sum of entry sizes: key + kid + payload + signature, the figure the
        size cap applies to — not the file size). ``hits``, ``misses``, ``integrity_failures``
        and ``evictions`` (rows removed by TTL culling or the size cap) count this instance's
        operations in this process."""
        entries, nbytes = self._run(lambda conn: conn.execute("SELECT entries, bytes FROM totals WHERE id = 1").fetchone())
        with self._lock:
            self._fold_hits()
            hits, misses = self._hits, self._misses
            failures, evictions = self._integrity_failures, self._evictions
        lookups = hits + misses
        return {
            "entries": int(entries),
            "bytes": int(nbytes),
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / lookups if lookups else 0.0,
            "integrity_failures": failures,
            "evictions": evictions,
            "path": str(self.path),
            "max_bytes": self.max_bytes,
            "writes_enabled": self._writes_enabled,
        }

    def entries(self) -> pandas.DataFrame:
        """One row per valid entry, most recent first; the index holds the full keys.

        Columns: key (12-char prefix), agent, model, created, expires (datetime64[ns, UTC]),
        size, hits (int64), cost_usd (float64), task, answer (first lines). Rows that fail
        verification or were signed under another secret are left out.
        """
        import pandas as pd

        self._flush()       # this process's hit counts first

        def scan(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                f"SELECT {_ROW}, size, hits FROM entries ORDER BY created DESC, id DESC"
            ).fetchall()

        cols: dict[str, list[Any]] = {c: [] for c in
                                      ("key", "agent", "model", "created", "expires", "size", "hits", "cost_usd", "task", "answer")}
        full_keys = []
        for rowid, raw_key, kid, payload, sig, size, hits in self._run(scan):
            key = self._served(rowid, raw_key, kid, payload, sig)
            if key is None:
                continue
            try:
                r = CachedResponse._from_payload(payload)
            except ValueError:          # ForeignPayload included: another version's row
                continue
            full_keys.append(key)
            cols["key"].append(key[:12])
            cols["agent"].append(r.agent)
            cols["model"].append(r.model)
            cols["created"].append(r.created)
            cols["expires"].append(math.nan if r.expires is None else r.expires)
            cols["size"].append(size)
            cols["hits"].append(hits)
            cols["cost_usd"].append(math.nan if r.cost_usd is None else r.cost_usd)
            cols["task"].append(r.task_head)
            cols["answer"].append(_first_line(r.text))

        def when(values: list[float]) -> Any:
            return pd.to_datetime(pd.Series(values, dtype="float64"), unit="s", utc=True).astype("datetime64[ns, UTC]")

        frame = pd.DataFrame(
            {
                "key": pd.Series(cols["key"], dtype=str),
                "agent": pd.Series(cols["agent"], dtype=str),
                "model": pd.Series(cols["model"], dtype=str),
                "created": when(cols["created"]),
                "expires": when(cols["expires"]),
                "size": pd.Series(cols["size"], dtype="int64"),
                "hits": pd.Series(cols["hits"], dtype="int64"),
                "cost_usd": pd.Series(cols["cost_usd"], dtype="float64"),
                "task": pd.Series(cols["task"], dtype=str),
                "answer": pd.Series(cols["answer"], dtype=str),
            }
        )
        frame.index = pd.Index(full_keys, dtype=str, name="cache_key")
        return frame

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Flush pending hit counts and close every connection. Idempotent."""
        if self._pool.closed:
            return
        with contextlib.suppress(sqlite3.Error, CacheError):
            self._flush()
        self._pool.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache(path={str(self.path)!r})"
