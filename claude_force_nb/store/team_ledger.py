"""The team ledger: every local ledger row also goes to one capped Redis stream per team.

The stream is ``cfnb:v1:<key id>:ledger`` (``XADD ... MAXLEN ~ redis_stream_maxlen``); the
local ledger stays the record for one person. Each entry carries the user and host, the
row as JSON (never pickle) and an HMAC under the team secret, checked before parsing, so
only holders of the secret can add rows a report counts.

No row is lost and none counted twice: the local file remembers (table ``team_sent``)
the last row id the stream took, so rows written while Redis was down, or by a kernel
that died, are sent by the next sync once Redis answers. Rows go in one SQLite write
transaction with the send, so two kernels never send the same range. A send whose reply
is lost (Redis killed after it wrote) is sent again, so Redis keeps its own mark too: one
Lua script (``APPEND``, atomic) adds only rows past the highest row id it has taken from
this ledger file (``<stream>-sent``, a hash of origin -> row id) and returns that id. And
every entry has a stable ``uid`` (``<ledger origin>:<row id>``); readers keep the first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from ..core.settings import Settings
from ._sqlite import write_transaction
from .cache.keyfile import master_secret
from .cache.signing import Signer
from .ledger_schema import COLUMNS
from .redis_tier import RedisLink, link_for, team_prefix

__all__ = ["TEAM_COLUMNS", "TeamLedger"]

T = TypeVar("T")
Run = Callable[[Callable[[sqlite3.Connection], T]], T]

SEND_BATCH = 500            # rows per XADD pipeline
READ_BATCH = 10_000         # entries per XRANGE
ROW_COLUMNS = [name for name in COLUMNS if name != "id"]
TEAM_COLUMNS: dict[str, type] = {"user": str, "host": str, "uid": str, **{n: COLUMNS[n] for n in ROW_COLUMNS}}
APPEND = """
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
for i = 3, #ARGV, 6 do
  local rowid = tonumber(ARGV[i])
  if rowid > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'uid', ARGV[i + 1], 'user', ARGV[i + 2],
               'host', ARGV[i + 3], 'row', ARGV[i + 4], 'sig', ARGV[i + 5])
    last = rowid
  end
end
redis.call('HSET', KEYS[2], ARGV[2], last)
return last
"""
_SENT_TABLE = """CREATE TABLE IF NOT EXISTS team_sent(
    stream TEXT PRIMARY KEY, origin TEXT NOT NULL, last_id INTEGER NOT NULL)"""


def _login() -> str:
    import getpass
    try:
        return getpass.getuser()
    except (KeyError, OSError):          # no login name (a container with a bare uid)
        return "unknown"


class TeamLedger:
    """Sends a ledger file's rows to the team stream and reads the stream back."""

    def __init__(self, link: RedisLink, master: bytes, run: Run[Any], *, user: str, host: str, maxlen: int) -> None:
        self.link = link
        self.stream = team_prefix(Signer(master).kid) + "ledger"
        self._key = hmac.new(master, b"claude-force-nb team-ledger v1", hashlib.sha256).digest()
        self._run = run
        self.user, self.host, self.maxlen = user, host, maxlen
        self.sent = 0               # rows this process sent
        self.rejected = 0           # stream entries a read dropped (unsigned, tampered, unreadable)

    @classmethod
    def for_settings(cls, settings: Settings, run: Run[Any]) -> TeamLedger | None:
        """The team ledger of ``settings`` (None without redis_url, or without a usable secret)."""
        link = link_for(settings)
        if link is None:
            return None
        try:
            master = master_secret(settings)
        except OSError:                 # no key file can be made: the cache says so too
            return None
        return cls(link, master, run, user=settings.team_user or _login(), host=socket.gethostname(),
                   maxlen=settings.redis_stream_maxlen)

    def _mark(self, conn: sqlite3.Connection) -> tuple[str, int]:
        """(origin, last row id sent) of this ledger file; a first use starts after its rows."""
        conn.execute(_SENT_TABLE)
        row = conn.execute("SELECT origin, last_id FROM team_sent WHERE stream = ?", (self.stream,)).fetchone()
        if row is None:
            (last,), = conn.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchall()
            row = (uuid.uuid4().hex[:16], int(last))
            conn.execute("INSERT INTO team_sent VALUES (?, ?, ?)", (self.stream, *row))
        return str(row[0]), int(row[1])

    def start(self) -> None:
        """Remember where this ledger file joins the stream (rows before stay local)."""
        def op(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                self._mark(conn)

        try:
            self._run(op)
        except (sqlite3.OperationalError, OSError):
            pass                        # the ledger reports its own storage faults; the next sync tries again

    def sync(self) -> int:
        """Send the rows the stream has not taken yet; returns how many went. Never raises for
        Redis or the disk: what is not sent now goes with a later sync."""
        total = 0
        while self.link.ready():
            try:
                sent, more = self._run(self._send_batch)
            except (sqlite3.OperationalError, OSError):
                break
            total += sent
            if not more or not sent:
                break
        self.sent += total
        return total

    def _send_batch(self, conn: sqlite3.Connection) -> tuple[int, bool]:
        with write_transaction(conn):
            origin, last = self._mark(conn)
            rows = conn.execute(f"SELECT id, {', '.join(ROW_COLUMNS)} FROM calls WHERE id > ? ORDER BY id LIMIT ?",
                                (last, SEND_BATCH)).fetchall()
            if not rows:
                return 0, False
            args: list[Any] = [self.maxlen, origin]
            for row in rows:
                fields = self._entry(origin, row[0], dict(zip(ROW_COLUMNS, row[1:])))
                args += [row[0], *fields.values()]
            try:
                taken_to = self.link.call(lambda r: r.eval(APPEND, 2, self.stream, self.stream + "-sent", *args), None)
            except self.link.redis.ResponseError as exc:   # maxmemory reached: the rows wait
                self.link.refused(exc)
                return 0, False
            if taken_to is None or int(taken_to) <= last:
                return 0, False
            conn.execute("UPDATE team_sent SET last_id = ? WHERE stream = ?", (int(taken_to), self.stream))
            taken = sum(1 for row in rows if last < row[0] <= int(taken_to))
            return taken, len(rows) == SEND_BATCH

    def _sign(self, *parts: bytes) -> bytes:
        return hmac.new(self._key, b"\0".join(parts), hashlib.sha256).digest()

    def _entry(self, origin: str, rowid: int, row: dict[str, Any]) -> dict[bytes, bytes]:
        uid, user, host = f"{origin}:{rowid}".encode(), self.user.encode(), self.host.encode()
        body = json.dumps(row, separators=(",", ":")).encode()
        return {b"uid": uid, b"user": user, b"host": host, b"row": body, b"sig": self._sign(uid, user, host, body)}

    def rows(self) -> list[dict[str, Any]]:
        """Every genuine row in the stream (TEAM_COLUMNS), oldest first, each uid once. Raises
        CacheError when Redis cannot be reached."""
        def read(r: Any) -> list[Any]:
            found: list[Any] = []
            start = "-"
            while True:
                chunk = r.xrange(self.stream, min=start, max="+", count=READ_BATCH)
                found.extend(chunk)
                if len(chunk) < READ_BATCH:
                    return found
                start = "(" + chunk[-1][0].decode()

        seen: set[str] = set()
        out = []
        for _, fields in self.link.slow_call(read):
            row = self._checked(fields)
            if row is None:
                self.rejected += 1
            elif row["uid"] not in seen:
                seen.add(row["uid"])
                out.append(row)
        return out

    def _checked(self, fields: dict[bytes, bytes]) -> dict[str, Any] | None:
        parts = [fields.get(name) for name in (b"uid", b"user", b"host", b"row", b"sig")]
        if not all(isinstance(part, bytes) for part in parts):
            return None
        uid, user, host, body, sig = parts
        assert uid is not None and user is not None and host is not None and body is not None and sig is not None
        if not hmac.compare_digest(self._sign(uid, user, host, body), sig):
            return None
        try:
            row = json.loads(body)
        except ValueError:
            return None
        if not isinstance(row, dict):
            return None
        return {"user": user.decode(), "host": host.decode(), "uid": uid.decode(),
                **{name: row.get(name) for name in ROW_COLUMNS}}

    def status(self) -> dict[str, Any]:
        return {"stream": self.stream, "sent": self.sent, "rejected": self.rejected, **self.link.status()}
