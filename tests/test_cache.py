"""ResponseCache: keys, signed envelopes, TTL, size cap, secrets, corruption — on real SQLite files."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import re
import shutil
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from claude_force_nb.store import cache as cache_mod
from claude_force_nb.store.cache import (
    MAX_LOGGED_HITS,
    CachedResponse,
    ResponseCache,
    canonical_json,
    load_or_create_key_file,
    rowid_of,
)
from claude_force_nb.core.errors import CacheError, InsecurePathError
from claude_force_nb.core.results import Usage
from claude_force_nb.core.settings import Settings

SECRET = b"test-secret-4d0c9e1f-please-do-not-reuse"
T0 = 1_000_000.0           # clock values with equal digit counts keep payload sizes equal

BASE_REQUEST = {
    "model": "claude-sonnet-4-6",
    "system": "You are a careful code reviewer.",
    "messages": [{"role": "user", "content": "Review: def f(): return 1"}],
    "max_tokens": 1024,
    "temperature": 0.5,
    "stop_sequences": ["\n\nHuman:"],
    "tools": [{"name": "lint", "description": "run a linter", "input_schema": {"type": "object"}}],
    "top_k": 40,
}


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_FORCE_HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_FORCE_CACHE_SECRET", raising=False)
    cache_mod._warned.clear()        # "logged once per process" would hide warnings between tests


@pytest.fixture
def settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=SECRET)


@pytest.fixture
def keyfile_settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(settings, clock):
    c = ResponseCache(settings, clock=clock)
    yield c
    c.close()


def response(text: str = "The answer is 42.\nSecond line.", **kw) -> CachedResponse:
    fields = dict(
        text=text,
        stop_reason="end_turn",
        usage=Usage(input_tokens=11, output_tokens=22, cache_write_5m_tokens=3, cache_write_1h_tokens=4, cache_read_tokens=5),
        model="claude-sonnet-4-6-20260101",
        cost_usd=0.0123,
        agent="code-reviewer",
        task_head="Review this function",
        request_id="req_011CABC",
    )
    fields.update(kw)
    return CachedResponse(**fields)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def raw_query(path: Path, sql: str, params=()):
    conn = raw(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --------------------------------------------------------------------------- round trip, keys

def test_put_get_round_trip_exact_fields(cache, clock):
    key = cache.key_for(BASE_REQUEST)
    assert cache.put(key, response()) is True
    got = cache.get(key)
    assert got == CachedResponse(
        text="The answer is 42.\nSecond line.",
        stop_reason="end_turn",
        usage=Usage(11, 22, 3, 4, 5),
        model="claude-sonnet-4-6-20260101",
        cost_usd=0.0123,
        agent="code-reviewer",
        task_head="Review this function",
        request_id="req_011CABC",
        created=T0,
        expires=T0 + 7 * 24 * 3600,
    )
    assert cache.get(cache.key_for({**BASE_REQUEST, "max_tokens": 1})) is None


def test_unicode_and_unknown_cost_round_trip(cache):
    key = cache.key_for({"model": "m", "messages": [{"role": "user", "content": "héllo ✓"}]})
    assert cache.put(key, response(text="réponse ✓ 🚀", cost_usd=None, agent=None, request_id=None))
    got = cache.get(key)
    assert (got.text, got.cost_usd, got.agent, got.request_id) == ("réponse ✓ 🚀", None, None, None)
    key2 = cache.key_for({"model": "m2"})
    assert cache.put(key2, response(cost_usd=math.nan))          # NaN = unknown price
    assert cache.get(key2).cost_usd is None


@pytest.mark.parametrize(
    "text",
    ["", "\n", '["cfnb/1",null]\n{"text":"x"}\n', "tab\tand\r\nCRLF\u2028 and a lone surrogate \ud800", "é" * 3000],
    ids=["empty", "newline", "json-like", "controls", "long-unicode"],
)
def test_any_text_round_trips(cache, text):
    key = cache.key_for({"model": "m", "messages": [{"role": "user", "content": text[:50] or "x"}]})
    assert cache.put(key, response(text=text, task_head="line\twith tab"))
    got = cache.get(key)
    assert (got.text, got.task_head) == (text, "line\twith tab")
    assert cache.verify() == []


def test_empty_strings_and_none_stay_distinct(cache):
    key = cache.key_for({"model": "m", "messages": [{"role": "user", "content": "empty fields"}]})
    assert cache.put(key, response(agent="", request_id="", task_head=""))
    got = cache.get(key)
    assert (got.agent, got.request_id, got.task_head) == ("", "", "")
    assert got.usage == Usage(11, 22, 3, 4, 5) and got.cost_usd == 0.0123


@pytest.mark.parametrize("secret", [b"k", os.urandom(32), os.urandom(64), os.urandom(200)], ids=["1B", "32B", "64B", "200B"])
def test_signature_helper_is_plain_hmac_sha256(secret):
    import hashlib
    import hmac

    mac = cache_mod._HmacSha256(secret, b"prefix\0")
    for key, payload in [(b"", b""), (b"v1:abc", os.urandom(2146)), (os.urandom(70), os.urandom(100_000))]:
        expected = hmac.new(secret, b"prefix\0" + key + payload, hashlib.sha256).digest()
        assert mac.digest(key, payload) == expected
        assert mac.digest(key, payload) == expected          # the keyed states are reusable


def test_a_signed_row_in_another_versions_format_is_a_plain_miss(cache, caplog):
    """A newer or older claude-force-nb sharing the home writes rows this one cannot read:
    they are misses (not tampering), verify() does not flag them, and a put replaces them."""
    key = cache.key_for(BASE_REQUEST)
    foreign = b'["cfnb/1","code-reviewer",0.01]\nan answer in the earlier format'
    sig = cache._mac.digest(key.encode(), foreign)
    conn = sqlite3.connect(cache.path)
    conn.execute(
        "INSERT INTO entries(id, key, kid, payload, sig, created, expires, last_access, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (rowid_of(key), key, cache.kid, foreign, sig, T0, None, T0, len(foreign)),
    )
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="claude_force_nb.store.cache"):
        assert cache.get(key) is None
        assert cache.verify() == []
        assert cache.entries().empty
    s = cache.stats()
    assert (s["misses"], s["integrity_failures"], s["entries"]) == (1, 0, 1)
    assert not caplog.records
    assert cache.put(key, response())
    assert cache.get(key).text == response().text and cache.stats()["entries"] == 1


def test_key_format_and_stable_across_dict_orderings(cache):
    key = cache.key_for(BASE_REQUEST)
    assert re.fullmatch(r"v1:[0-9a-f]{64}", key)
    reordered = dict(reversed(list(BASE_REQUEST.items())))
    reordered["tools"] = [dict(reversed(list(t.items()))) for t in BASE_REQUEST["tools"]]
    assert cache.key_for(reordered) == key
    assert cache.key_for(dict(BASE_REQUEST)) == key


@pytest.mark.parametrize(
    "change",
    [
        {"model": "claude-haiku-4-5"},
        {"system": "You are a careless code reviewer."},
        {"messages": [{"role": "user", "content": "Review: def f(): return 2"}]},
        {"messages": BASE_REQUEST["messages"] + [{"role": "assistant", "content": "ok"}]},
        {"max_tokens": 1025},
        {"temperature": 0.7},
        {"stop_sequences": ["STOP"]},
        {"tools": [{"name": "lint", "description": "run a linter!", "input_schema": {"type": "object"}}]},
        {"top_k": 41},
        {"top_p": 0.9},
        {"metadata": {"user_id": "u1"}},
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_request_field_changes_the_key(cache, change):
    assert cache.key_for({**BASE_REQUEST, **change}) != cache.key_for(BASE_REQUEST)


@pytest.mark.parametrize("param", ["temperature", "stop_sequences", "tools", "top_k", "system"])
def test_absent_and_present_params_differ(cache, param):
    without = {k: v for k, v in BASE_REQUEST.items() if k != param}
    assert cache.key_for(without) != cache.key_for(BASE_REQUEST)
    # no defaults are filled in: absent is not the same as an explicit default
    assert cache.key_for({**without, param: None}) != cache.key_for(without)


def test_numeric_sampling_params_normalised(cache):
    assert cache.key_for({**BASE_REQUEST, "temperature": 1}) == cache.key_for({**BASE_REQUEST, "temperature": 1.0})
    assert cache.key_for({**BASE_REQUEST, "top_p": 1}) == cache.key_for({**BASE_REQUEST, "top_p": 1.0})
    assert cache.key_for({**BASE_REQUEST, "temperature": 0.5}) == cache.key_for({**BASE_REQUEST, "temperature": 0.50})
    assert cache.key_for({**BASE_REQUEST, "temperature": 0}) != cache.key_for({**BASE_REQUEST, "temperature": 1})
    # only the sampling floats: max_tokens stays an int
    assert cache.key_for({**BASE_REQUEST, "max_tokens": 10}) != cache.key_for({**BASE_REQUEST, "max_tokens": 10.0})


def test_key_is_an_hmac_of_the_secret(settings, tmp_path):
    with ResponseCache(settings) as a, ResponseCache(settings.replace(cache_secret=b"another secret")) as b:
        assert a.key_for(BASE_REQUEST) != b.key_for(BASE_REQUEST)
    # and not a plain hash of the canonical request that anyone could recompute
    import hashlib

    material = canonical_json({"schema": "claude-force-nb/1", "request": BASE_REQUEST})
    with ResponseCache(settings) as a:
        assert hashlib.sha256(material).hexdigest() not in a.key_for(BASE_REQUEST)


def test_key_for_refuses_non_json(cache):
    with pytest.raises(ValueError):
        cache.key_for({**BASE_REQUEST, "temperature": math.nan})
    with pytest.raises(TypeError):
        cache.key_for({**BASE_REQUEST, "extra": object()})



@pytest.mark.parametrize("bad", ["", "v1:xyz", "nonsense", 42, None, b"v1:" + b"0" * 64, []])
def test_anything_but_a_key_is_refused_with_the_fix(cache, bad):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    cache.get(key)                                    # a hit waiting to be written
    calls = [lambda: cache.get(bad), lambda: cache.put(bad, response())]
    if not (isinstance(bad, str) and bad):            # delete takes any string verify() may report
        calls.append(lambda: cache.delete(bad))
    for call in calls:
        with pytest.raises(TypeError, match="is not a cache key: pass the string key_for"):
            call()
    if isinstance(bad, str) and bad:
        assert cache.delete(bad) is False
    assert cache.stats()["entries"] == 1 and cache.get(key) is not None


def test_a_row_moved_off_its_key_is_never_served_is_reported_and_can_be_deleted(cache, settings):
    a, b = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
    cache.put(a, response(text="answer a"))
    cache.put(b, response(text="answer b"))
    conn = raw(settings.cache_path)
    try:          # a's genuine row moved to another id (its key now a BLOB); b's relabelled with a junk key
        conn.execute("UPDATE entries SET id = id + 1, key = CAST(key AS BLOB) WHERE key = ?", (a,))
        conn.execute("UPDATE entries SET key = 'junk' WHERE key = ?", (b,))
    finally:
        conn.close()
    assert cache.get(a) is None
    assert cache.get(b).text == "answer b"            # still b's own answer: the signature binds b
    assert sorted(cache.verify()) == sorted([a, "junk"])
    assert cache.entries().empty
    assert cache.delete(a) is True                    # found by scanning
    assert cache.delete(b) is True                    # the row get(b) serves, whatever its key column says
    assert cache.delete("junk") is False
    assert cache.verify() == [] and cache.stats()["entries"] == 0


def test_keys_sharing_a_row_id_replace_each_other_and_are_never_confused(cache, settings):
    """Row ids are the keys' first 60 bits. Two keys sharing them (never seen in practice:
    forced here) share one row: each put replaces the other's answer, a lookup of the key
    not stored is a plain miss (not tampering), and no lookup returns the other's answer."""
    a = "v1:" + "0123456789abcde" + "a" * 49
    b = "v1:" + "0123456789abcde" + "b" * 49
    assert rowid_of(a) == rowid_of(b) == 0x0123456789ABCDE
    assert cache.put(a, response(text="answer a"))
    assert cache.get(a).text == "answer a"
    cache.close()                                     # write a's hit count
    with ResponseCache(settings) as c:
        assert raw_query(settings.cache_path, "SELECT key, hits FROM entries") == [(a, 1)]
        assert c.put(b, response(text="answer b"))
        assert raw_query(settings.cache_path, "SELECT key, hits FROM entries") == [(b, 0)]
        assert c.get(a) is None and c.get(b).text == "answer b"
        assert c.verify() == []
        stats = c.stats()
        assert (stats["entries"], stats["hits"], stats["misses"], stats["integrity_failures"]) == (1, 1, 1, 0)
        conn = raw(settings.cache_path)
        try:          # b's row tampered with: a lookup of a now reports it (the row is nobody's)
            conn.execute("UPDATE entries SET payload = CAST(payload AS BLOB) || x'00'")
        finally:
            conn.close()
        assert c.get(a) is None
        assert c.stats()["integrity_failures"] == 1
    assert raw_query(settings.cache_path, "SELECT COUNT(*) FROM entries") == [(0,)]


# A cache file as schema 1 wrote it: sequential row ids and a UNIQUE index on the key.
SCHEMA1_DDL = """
CREATE TABLE entries(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kid BLOB NOT NULL, payload BLOB NOT NULL,
    sig BLOB NOT NULL, created REAL NOT NULL, expires REAL, last_access REAL NOT NULL, size INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0);
CREATE INDEX entries_expires ON entries(expires) WHERE expires IS NOT NULL;
CREATE INDEX entries_access ON entries(last_access);
CREATE TABLE totals(id INTEGER PRIMARY KEY CHECK (id = 1), entries INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT INTO totals(id, entries, bytes) VALUES (1, 0, 0);
CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1; END;
CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1; END;
CREATE TRIGGER entries_au AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1; END;
CREATE TABLE meta(k TEXT PRIMARY KEY, v);
INSERT INTO meta(k, v) VALUES ('schema', 1);
"""


def write_schema1_cache(settings: Settings, scratch: Path, answers: dict[str, str], now: float = T0) -> dict[str, str]:
    """Write ``answers`` (request name -> text) as a schema 1 cache file signed with
    ``settings``' secret, dated ``now``; return key -> text. Row n has ``hits`` = n + 1."""
    with ResponseCache(settings, path=scratch / "signer.sqlite3") as signer:
        keys = {signer.key_for({"model": "m", "messages": [{"role": "user", "content": name}]}): text
                for name, text in answers.items()}
        rows = [signer._row(key, response(text=text), now, now + 86_400)[1:] + (n + 1,)
                for n, (key, text) in enumerate(keys.items())]
    Path(settings.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = sqlite3.connect(settings.cache_path)
    try:
        conn.execute("PRAGMA page_size = 8192")             # as schema 1 files were made
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.executescript(SCHEMA1_DDL)
        conn.executemany(
            "INSERT INTO entries(key, kid, payload, sig, created, expires, last_access, size, hits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.commit()
    finally:
        conn.close()
    return keys


def test_a_schema1_cache_is_upgraded_in_place_keeping_every_entry(settings, tmp_path, clock, caplog):
    keys = write_schema1_cache(settings, tmp_path, {f"task {i}": f"answer {i}" for i in range(5)})
    before = raw_query(settings.cache_path, "SELECT entries, bytes FROM totals")
    conn = sqlite3.connect(settings.cache_path)
    conn.execute("INSERT INTO entries(key, kid, payload, sig, created, last_access, size) VALUES ('handmade', x'00', x'00', x'00', 0, 0, 9)")
    conn.execute("INSERT INTO entries(key, kid, payload, sig, created, last_access, size) "
                 "VALUES (CAST(x'76313afffe' AS TEXT), x'00', x'00', x'00', 0, 'soon', 9)")   # not UTF-8
    conn.execute("DROP TRIGGER entries_au")          # an old file missing a piece of its schema
    conn.commit()
    conn.close()
    with caplog.at_level(logging.INFO, logger="claude_force_nb.store.cache"), ResponseCache(settings, clock=clock) as c:
        assert {key: c.get(key).text for key in keys} == keys           # every answer still served
        stats = c.stats()
        assert (stats["entries"], stats["bytes"]) == before[0]          # the rows holding no key are gone
        assert (stats["hits"], stats["misses"], stats["integrity_failures"]) == (5, 0, 0)
        assert c.verify() == []
    assert raw_query(settings.cache_path, "SELECT v FROM meta WHERE k = 'schema'") == [(2,)]
    assert sorted(raw_query(settings.cache_path, "SELECT id, key, hits FROM entries")) == sorted(
        (rowid_of(key), key, n + 2) for n, key in enumerate(keys))      # old counts kept, plus this hit
    assert raw_query(settings.cache_path, "PRAGMA freelist_count") == [(0,)]   # the old table's pages given back
    assert sorted(name for (name,) in raw_query(settings.cache_path, "SELECT name FROM sqlite_master")) == sorted(
        ["entries", "entries_access", "entries_ai", "entries_ad", "entries_au", "entries_expires", "meta",
         "sqlite_autoindex_meta_1", "totals"])
    messages = [r.getMessage() for r in caplog.records]
    assert any("to schema 2 (7 entries): once, in place" in m for m in messages)
    assert any("upgraded: 5 entries kept, 2 dropped" in m for m in messages)
    # an opener that read schema 1 just before another upgraded it finds 2 once it holds the lock
    rows = raw_query(settings.cache_path, "SELECT id, key, hits FROM entries ORDER BY id")
    caplog.clear()
    late = sqlite3.connect(settings.cache_path, isolation_level=None)
    try:
        cache_mod._upgrade_from_v1(late)
    finally:
        late.close()
    assert not [r for r in caplog.records if "Upgrading" in r.getMessage()]
    assert raw_query(settings.cache_path, "SELECT id, key, hits FROM entries ORDER BY id") == rows


def test_an_upgrade_without_the_disk_space_for_it_is_refused_with_the_fix(settings, tmp_path, monkeypatch):
    keys = write_schema1_cache(settings, tmp_path, {"task": "answer"})
    before = settings.cache_path.read_bytes()
    real = shutil.disk_usage
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: real(p)._replace(free=4096))   # a full disk
    with pytest.raises(CacheError, match=r"must be upgraded once .* needs about 0 MiB free on its disk; 0 MiB are "
                                         r"free\. Free some space, or delete .*cache\.sqlite3 to start with an empty cache"):
        ResponseCache(settings)
    assert raw_query(settings.cache_path, "SELECT v FROM meta WHERE k = 'schema'") == [(1,)]
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", real)
    with ResponseCache(settings, clock=Clock()) as c:
        assert [c.get(key).text for key in keys] == ["answer"]
    assert len(before) > 0

def test_canonical_json():
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": math.inf})


# --------------------------------------------------------------------------- storage layout

def test_sqlite_layout_and_pragmas(cache, settings):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    conn = raw(settings.cache_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        table_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'entries'").fetchone()[0]
        assert "WITHOUT ROWID" not in table_sql.upper()
        # the row id is the key's first 60 bits: no index on the key at all
        assert conn.execute("SELECT rowid, key FROM entries").fetchone() == (int(key[3:18], 16), key)
        assert sorted(row[1] for row in conn.execute("PRAGMA index_list(entries)")) == ["entries_access", "entries_expires"]
        assert conn.execute("SELECT v FROM meta WHERE k = 'schema'").fetchone()[0] == 2
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2     # incremental
    finally:
        conn.close()
    db = cache._pool.get()
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1           # NORMAL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -32 * 1024       # KiB
    assert db.execute("PRAGMA page_size").fetchone()[0] == 8192
    assert db.execute("PRAGMA mmap_size").fetchone()[0] == 64 * 1024 * 1024


def test_no_pickle_in_the_storage_code():
    for module in ("cache.py", "_sqlite.py", "ledger.py"):
        source = (Path(cache_mod.__file__).parent / module).read_text()
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|shelve|marshal)\b", source, re.M), module


# --------------------------------------------------------------------------- tampering

def test_tampered_payload_is_a_miss_counted_and_deleted(cache, settings, caplog):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    conn = raw(settings.cache_path)
    try:
        payload = conn.execute("SELECT payload FROM entries WHERE key = ?", (key,)).fetchone()[0]
        evil = payload.replace(b"The answer is 42.", b"The answer is 43.")
        assert evil != payload
        conn.execute("UPDATE entries SET payload = ? WHERE key = ?", (evil, key))
    finally:
        conn.close()
    with caplog.at_level(logging.WARNING, logger="claude_force_nb.store.cache"):
        assert cache.get(key) is None
        assert cache.get(key) is None                 # second lookup: row already gone
    assert cache.stats()["integrity_failures"] == 1
    assert raw_query(settings.cache_path, "SELECT COUNT(*) FROM entries") == [(0,)]
    assert sum("integrity check" in r.getMessage() for r in caplog.records) == 1


def test_byte_flipped_on_disk_is_detected(settings):
    marker = "DISTINCTIVE-PAYLOAD-0xC0FFEE"
    with ResponseCache(settings) as c:
        key = c.key_for(BASE_REQUEST)
        c.put(key, response(text=f"prefix {marker} suffix"))
    # the last connection closed: WAL checkpointed into the main file
    data = bytearray(settings.cache_path.read_bytes())
    at = data.find(marker.encode())
    assert at > 0 and data.find(marker.encode(), at + 1) == -1
    data[at + 12] ^= 0x01
    settings.cache_path.write_bytes(bytes(data))
    with ResponseCache(settings) as c:
        assert c.get(key) is None
        stats = c.stats()
        assert (stats["integrity_failures"], stats["entries"]) == (1, 0)


def test_swapped_payloads_are_detected(cache, settings):
    k1, k2 = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
    cache.put(k1, response(text="answer one"))
    cache.put(k2, response(text="answer two"))
    conn = raw(settings.cache_path)
    try:
        select = "SELECT payload, sig FROM entries WHERE key = ?"
        (p1, s1), (p2, s2) = conn.execute(select, (k1,)).fetchone(), conn.execute(select, (k2,)).fetchone()
        conn.execute("UPDATE entries SET payload = ?, sig = ? WHERE key = ?", (p2, s2, k1))
        conn.execute("UPDATE entries SET payload = ?, sig = ? WHERE key = ?", (p1, s1, k2))
    finally:
        conn.close()
    assert sorted(cache.verify()) == sorted([k1, k2])
    assert cache.get(k1) is None and cache.get(k2) is None
    assert cache.stats()["integrity_failures"] == 2


def test_verify_reports_without_deleting(cache, settings):
    keys = [cache.key_for({"model": f"m{i}"}) for i in range(5)]
    for k in keys:
        cache.put(k, response(text=f"answer {k}"))
    assert cache.verify() == []
    conn = raw(settings.cache_path)
    try:
        conn.execute("UPDATE entries SET sig = zeroblob(32) WHERE key = ?", (keys[1],))
        conn.execute("UPDATE entries SET payload = CAST('not json' AS BLOB) WHERE key = ?", (keys[3],))
    finally:
        conn.close()
    assert sorted(cache.verify()) == sorted([keys[1], keys[3]])
    assert cache.stats()["entries"] == 5                      # verify() only reports
    assert cache.stats()["integrity_failures"] == 0
    assert [cache.get(k) is not None for k in keys] == [True, False, True, False, True]
    assert cache.verify() == []


def test_signed_expiry_cannot_be_extended(cache, settings, clock):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    conn = raw(settings.cache_path)
    try:   # the unsigned index copies do not matter: the signed payload decides
        conn.execute("UPDATE entries SET expires = 9e12, created = 9e12")
    finally:
        conn.close()
    clock.now = T0 + 7 * 24 * 3600
    assert cache.get(key) is None
    assert cache.stats()["integrity_failures"] == 0


# --------------------------------------------------------------------------- TTL and sizes

def test_expired_entry_is_a_miss_and_pruned(settings, clock):
    with ResponseCache(settings.replace(cache_ttl_s=60.0), clock=clock) as c:
        k_old, k_new = c.key_for({"model": "old"}), c.key_for({"model": "new"})
        c.put(k_old, response())
        clock.now = T0 + 30
        c.put(k_new, response())
        clock.now = T0 + 59.9
        assert c.get(k_old) is not None
        clock.now = T0 + 60
        assert c.get(k_old) is None
        assert c.get(k_new) is not None
        assert c.stats()["entries"] == 2                 # reads never delete expired rows
        assert c.prune() == 1
        assert (c.stats()["entries"], c.stats()["evictions"]) == (1, 1)
        assert c.get(k_new) is not None


def test_lowered_ttl_applies_to_existing_entries(settings, clock):
    with ResponseCache(settings, clock=clock) as c:
        key = c.key_for(BASE_REQUEST)
        c.put(key, response())
    clock.now = T0 + 3600
    with ResponseCache(settings, clock=clock) as c:
        assert c.get(key) is not None
    with ResponseCache(settings.replace(cache_ttl_s=600.0), clock=clock) as c:
        assert c.get(key) is None
        assert c.prune() == 1


def test_put_culls_expired_rows(settings, clock):
    with ResponseCache(settings.replace(cache_ttl_s=10.0), clock=clock) as c:
        for i in range(3):
            c.put(c.key_for({"model": f"m{i}"}), response())
        clock.now = T0 + 11
        c.put(c.key_for({"model": "fresh"}), response())
        assert c.stats()["entries"] == 1
        assert c.stats()["evictions"] == 3


def _entry_size(settings: Settings, tmp_path: Path, text: str) -> int:
    probe = settings.replace(data_dir=tmp_path / "probe", secrets_dir=tmp_path / "probe" / "secrets")
    with ResponseCache(probe, clock=Clock()) as c:
        c.put(c.key_for({"model": "a"}), response(text=text))
        return c.stats()["bytes"]


def test_size_cap_evicts_least_recently_used(settings, tmp_path, clock):
    text = "x" * 2000
    size = _entry_size(settings, tmp_path, text)
    capped = settings.replace(cache_max_bytes=3 * size + size // 2)
    with ResponseCache(capped, clock=clock) as c:
        a, b, cc, d, e = (c.key_for({"model": name}) for name in "abcde")
        for i, k in enumerate((a, b, cc)):
            clock.now = T0 + i * 10_000
            assert c.put(k, response(text=text))
        clock.now = T0 + 30_000
        assert c.get(a) is not None          # last_access of a is > 1 h old: refreshed
        clock.now = T0 + 40_000
        assert c.put(d, response(text=text))
        assert {k for (k,) in raw_query(capped.cache_path, "SELECT key FROM entries")} == {a, cc, d}
        assert c.stats() | {"path": None} == c.stats() | {
            "entries": 3, "bytes": 3 * size, "evictions": 1, "path": None}
        clock.now = T0 + 50_000
        assert c.put(e, response(text=text))          # next victim: cc (never read)
        assert {k for (k,) in raw_query(capped.cache_path, "SELECT key FROM entries")} == {a, d, e}


def test_recent_hits_do_not_write(cache, settings, clock):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    before = raw_query(settings.cache_path, "SELECT last_access, hits FROM entries")
    clock.now = T0 + 3599
    for _ in range(10):
        assert cache.get(key) is not None
    assert raw_query(settings.cache_path, "SELECT last_access, hits FROM entries") == before == [(T0, 0)]
    clock.now = T0 + 3600                               # older than the touch interval: one write
    assert cache.get(key) is not None
    assert raw_query(settings.cache_path, "SELECT last_access, hits FROM entries") == [(T0 + 3600, 11)]


def test_recency_of_hits_is_written_with_the_next_put(cache, settings, clock):
    a, b = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
    cache.put(a, response())
    clock.now = T0 + 100
    assert cache.get(a) is not None
    clock.now = T0 + 200
    assert cache.get(a) is not None                      # the latest hit's time is kept
    assert raw_query(settings.cache_path, "SELECT last_access, hits FROM entries") == [(T0, 0)]
    clock.now = T0 + 300
    cache.put(b, response())
    assert raw_query(settings.cache_path, "SELECT key, last_access, hits FROM entries ORDER BY last_access") == [
        (a, T0 + 200, 2), (b, T0 + 300, 0)]


def test_hit_counts_are_flushed_on_write_and_close(settings, clock):
    with ResponseCache(settings, clock=clock) as c:
        k1, k2 = c.key_for({"model": "1"}), c.key_for({"model": "2"})
        c.put(k1, response())
        for _ in range(3):
            c.get(k1)
        c.put(k2, response())                              # flushed in this write
        assert dict(raw_query(settings.cache_path, "SELECT key, hits FROM entries")) == {k1: 3, k2: 0}
        c.get(k2)
        c.get(k2)
    assert dict(raw_query(settings.cache_path, "SELECT key, hits FROM entries")) == {k1: 3, k2: 2}


def test_entry_size_cap(settings):
    with ResponseCache(settings.replace(cache_max_entry_bytes=1500)) as c:
        small, big = c.key_for({"model": "small"}), c.key_for({"model": "big"})
        assert c.put(big, response(text="y" * 2000)) is False
        assert c.put(small, response(text="y" * 100)) is True
        assert c.get(big) is None and c.get(small) is not None
        assert c.stats()["entries"] == 1


@pytest.mark.parametrize("stop_reason", ["", None])
def test_incomplete_response_not_stored(cache, stop_reason):
    key = cache.key_for(BASE_REQUEST)
    assert cache.put(key, response(stop_reason=stop_reason)) is False
    assert cache.get(key) is None
    assert cache.stats()["entries"] == 0



def test_clear_gives_the_space_back(cache, settings):
    cache.put_many([(cache.key_for({"model": f"m{i}"}), response(text="x" * 3000)) for i in range(200)])
    cache.close()                                         # checkpoint: the rows are in the file
    full = settings.cache_path.stat().st_size
    with ResponseCache(settings) as c:
        assert c.clear() == 200
    assert raw_query(settings.cache_path, "PRAGMA freelist_count") == [(0,)]
    assert settings.cache_path.stat().st_size < full / 10

def test_replacing_an_entry_keeps_totals_exact(cache, settings):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response(text="short"))
    cache.put(key, response(text="a much longer answer " * 20))
    assert cache.get(key).text == "a much longer answer " * 20
    (count, total), = raw_query(settings.cache_path, "SELECT COUNT(*), SUM(size) FROM entries")
    assert (cache.stats()["entries"], cache.stats()["bytes"]) == (count, total) == (1, total)
    assert cache.delete(key) is True and cache.delete(key) is False
    assert (cache.stats()["entries"], cache.stats()["bytes"]) == (0, 0)


# --------------------------------------------------------------------------- secret handling

def test_key_file_created_private_and_reused(keyfile_settings):
    with ResponseCache(keyfile_settings) as c:
        key = c.key_for(BASE_REQUEST)
        c.put(key, response())
    path = keyfile_settings.key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(keyfile_settings.data_dir).stat().st_mode) == 0o700
    assert len(path.read_bytes()) == 32
    assert path.parent != keyfile_settings.cache_path.parent       # never next to the data
    with ResponseCache(keyfile_settings) as c:
        assert c.key_for(BASE_REQUEST) == key
        assert c.get(key) is not None


def test_key_file_readable_by_others_is_refused(keyfile_settings):
    path = keyfile_settings.key_path
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(InsecurePathError) as info:
        ResponseCache(keyfile_settings)
    assert str(path) in str(info.value) and f"chmod 600 {path}" in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_key_file_owned_by_another_user_is_refused(keyfile_settings):
    path = keyfile_settings.key_path
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(InsecurePathError, match="another user"):
        ResponseCache(keyfile_settings)


def test_home_writable_by_others_is_refused(keyfile_settings):
    home = Path(keyfile_settings.data_dir)
    home.mkdir(mode=0o700)
    home.chmod(0o777)
    with pytest.raises(InsecurePathError):
        ResponseCache(keyfile_settings)


def test_key_file_creation_race(tmp_path):
    path = tmp_path / "secrets" / "cache.key"
    barrier = threading.Barrier(8)
    results: list[bytes] = []

    def worker():
        barrier.wait()
        results.append(load_or_create_key_file(path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1 and len(results[0]) == 32


def test_half_written_key_file_is_waited_for(tmp_path):
    path = tmp_path / "secrets" / "cache.key"
    path.parent.mkdir(mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)   # a creator that has not written yet
    key = os.urandom(32)
    timer = threading.Timer(0.1, lambda: (os.write(fd, key), os.close(fd)))
    timer.start()
    try:
        assert load_or_create_key_file(path) == key
    finally:
        timer.join()


def test_rotating_the_secret_makes_misses_not_errors(settings):
    with ResponseCache(settings) as old:
        old_key = old.key_for(BASE_REQUEST)
        old.put(old_key, response())
    with ResponseCache(settings.replace(cache_secret=b"rotated secret")) as new:
        assert new.key_for(BASE_REQUEST) != old_key
        assert new.get(new.key_for(BASE_REQUEST)) is None
        assert new.get(old_key) is None                  # the old row: other kid → plain miss
        assert new.verify() == []
        s = new.stats()
        assert (s["integrity_failures"], s["misses"], s["entries"]) == (0, 2, 1)
        assert new.entries().empty
        assert new.put(new.key_for(BASE_REQUEST), response())
    with ResponseCache(settings) as old:                 # rotating back still works
        assert old.get(old_key) is not None


def test_secret_argument_wins(settings):
    with ResponseCache(settings, secret=b"explicit") as a, ResponseCache(settings.replace(cache_secret=b"explicit")) as b:
        assert a.key_for(BASE_REQUEST) == b.key_for(BASE_REQUEST)


# --------------------------------------------------------------------------- damage

def test_corrupt_database_is_moved_aside_and_recreated(settings, caplog):
    home = Path(settings.data_dir)
    home.mkdir(mode=0o700)
    garbage = b"this is not a database, but someone's notes " * 200
    settings.cache_path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="claude_force_nb.store.cache"):
        c = ResponseCache(settings)
    try:
        aside = list(home.glob("cache.sqlite3.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == garbage
        assert any("corrupt" in r.getMessage() and str(aside[0]) in r.getMessage() for r in caplog.records)
        key = c.key_for(BASE_REQUEST)
        assert c.get(key) is None
        assert c.put(key, response()) and c.get(key) is not None
        assert c.stats()["entries"] == 1
    finally:
        c.close()


def test_corruption_found_by_a_query_is_recovered(settings, caplog):
    with ResponseCache(settings) as c:
        keys = [c.key_for({"model": f"m{i}"}) for i in range(120)]
        for k in keys:
            c.put(k, response(text="z" * 3000))
    data = bytearray(settings.cache_path.read_bytes())
    page = 8192
    assert len(data) > 40 * page
    data[20 * page:] = b"\xa5" * (len(data) - 20 * page)   # schema and meta pages intact, late rows wrecked
    settings.cache_path.write_bytes(bytes(data))
    aside = lambda: list(Path(settings.data_dir).glob("cache.sqlite3.corrupt-*"))  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="claude_force_nb.store.cache"), ResponseCache(settings) as c:
        assert aside() == []                                   # opening did not notice
        # rows on intact pages are still hits; the first lookup of a wrecked row is a miss
        # and moves the file aside (rows live in row-id order, not in the order of the puts)
        probe = next(k for k in keys if c.get(k) is None)
        assert len(aside()) == 1
        assert c.put(probe, response()) and c.get(probe) is not None
        assert c.stats()["entries"] == 1
    assert len(aside()) == 1 and any("corrupt" in r.getMessage() for r in caplog.records)


def test_full_disk_disables_writes_but_keeps_reads(cache, caplog):
    k1, k2 = cache.key_for({"model": "1"}), cache.key_for({"model": "2"})
    assert cache.put(k1, response())
    conn = cache._pool.get()                         # this thread's connection: cap the file size
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.WARNING, logger="claude_force_nb.store.cache"):
        assert cache.put(k2, response(text="w" * 50_000)) is False
    assert any("full" in r.getMessage() for r in caplog.records)
    assert cache.stats()["writes_enabled"] is False
    assert cache.put(k2, response(text="tiny")) is False          # off for this process
    assert cache.get(k1) is not None and cache.get(k2) is None


def test_closed_cache(settings):
    c = ResponseCache(settings)
    c.close()
    c.close()
    with pytest.raises(CacheError):
        c.get("v1:00")


# --------------------------------------------------------------------------- reporting

def test_stats_exact(cache, settings, clock):
    assert cache.stats() == {
        "entries": 0, "bytes": 0, "hits": 0, "misses": 0, "hit_rate": 0.0, "integrity_failures": 0,
        "evictions": 0, "path": str(settings.cache_path), "max_bytes": settings.cache_max_bytes,
        "writes_enabled": True,
    }
    keys = [cache.key_for({"model": f"m{i}"}) for i in range(3)]
    for k in keys:
        cache.put(k, response())
    for k in keys + keys[:1]:
        assert cache.get(k) is not None
    assert cache.get(cache.key_for({"model": "absent"})) is None
    conn = raw(settings.cache_path)
    try:
        conn.execute("UPDATE entries SET sig = zeroblob(32) WHERE key = ?", (keys[2],))
        (total,), = conn.execute("SELECT SUM(size) FROM entries WHERE key != ?", (keys[2],)).fetchall()
    finally:
        conn.close()
    assert cache.get(keys[2]) is None
    s = cache.stats()
    assert (s["entries"], s["bytes"], s["hits"], s["misses"], s["integrity_failures"], s["evictions"]) == (
        2, total, 4, 2, 1, 0)
    assert s["hit_rate"] == pytest.approx(4 / 6)
    assert cache.clear() == 2
    assert (cache.stats()["entries"], cache.stats()["bytes"]) == (0, 0)


def test_entries_frame(cache, clock):
    import pandas as pd

    empty = cache.entries()
    expected = {
        "key": "str", "agent": "str", "model": "str", "created": "datetime64[ns, UTC]",
        "expires": "datetime64[ns, UTC]", "size": "int64", "hits": "int64", "cost_usd": "float64",
        "task": "str", "answer": "str",
    }

    def kinds(frame):
        out = {}
        for name, dtype in frame.dtypes.items():
            out[name] = "str" if pd.api.types.is_string_dtype(dtype) else str(dtype)
        return out

    assert list(empty.columns) == list(expected) and kinds(empty) == expected and len(empty) == 0
    k1, k2 = cache.key_for({"model": "1"}), cache.key_for({"model": "2"})
    cache.put(k1, response(text="First line of answer\nmore", cost_usd=None, agent=None))
    clock.now = T0 + 5
    cache.put(k2, response(task_head="Explain X"))
    cache.get(k1)
    cache.get(k1)
    frame = cache.entries()
    assert kinds(frame) == expected
    assert list(frame.index) == [k2, k1]                           # newest first, full keys in the index
    assert list(frame["key"]) == [k2[:12], k1[:12]]
    first = frame.loc[k1]
    assert (first["hits"], first["answer"], first["task"]) == (2, "First line of answer", "Review this function")
    assert math.isnan(first["cost_usd"]) and pd.isna(first["agent"])
    assert first["created"] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert frame.loc[k2, "expires"] == pd.Timestamp(T0 + 5 + 7 * 24 * 3600, unit="s", tz="UTC")
    assert frame.loc[k2, "cost_usd"] == 0.0123 and frame.loc[k2, "task"] == "Explain X"


# --------------------------------------------------------------------------- threads and fork

def test_threads_share_one_instance(cache):
    keys = [cache.key_for({"model": f"m{i}"}) for i in range(40)]
    errors: list[BaseException] = []

    def worker(offset: int):
        try:
            for i in range(200):
                k = keys[(i + offset) % len(keys)]
                if cache.get(k) is None:
                    cache.put(k, response(text=f"answer for {k}"))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(cache.get(k).text == f"answer for {k}" for k in keys)
    assert cache.verify() == []



def test_concurrent_hits_are_all_counted_and_the_hit_log_stays_bounded(settings):
    """Hits take no lock (each appends to a log folded into per-key counts): no hit may be
    lost to a race between appending and folding, in stats() or in the database."""
    threads_n, per_thread = 6, 3 * MAX_LOGGED_HITS
    with ResponseCache(settings) as c:
        keys = [c.key_for({"model": f"m{i}"}) for i in range(5)]
        for k in keys:
            c.put(k, response())
        longest: list[int] = []

        def worker(offset: int) -> None:
            for i in range(per_thread):
                assert c.get(keys[(i + offset) % len(keys)]) is not None
            longest.append(len(c._hit_log))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(longest) == threads_n and max(longest) <= MAX_LOGGED_HITS + threads_n
        assert c.stats()["hits"] == threads_n * per_thread
    per_key = raw_query(settings.cache_path, "SELECT hits FROM entries")
    assert sum(hits for (hits,) in per_key) == threads_n * per_thread
    assert len(per_key) == len(keys)

def _child_uses_inherited_cache(c: ResponseCache, key: str, queue) -> None:
    fresh = c.stats()["hits"]                     # counters are per process
    got = c.get(key)
    ok = c.put(c.key_for({"model": "from-child"}), response(text="child"))   # flushes only the child's hit
    queue.put((got.text if got else None, ok, fresh))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_connections_reopened_after_fork(cache):
    key = cache.key_for(BASE_REQUEST)
    cache.put(key, response())
    assert cache.get(key) is not None             # one hit pending in the parent, not yet flushed
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_uses_inherited_cache, args=(cache, key, queue))
    proc.start()
    try:
        assert queue.get(timeout=20) == ("The answer is 42.\nSecond line.", True, 0)
    finally:
        proc.join(20)
        queue.close()
        queue.join_thread()
    assert proc.exitcode == 0
    assert cache.get(cache.key_for({"model": "from-child"})).text == "child"
    assert cache.get(key) is not None                       # the parent's connection still works
    assert cache.entries().loc[key, "hits"] == 3            # parent 2 + child 1: none counted twice


def test_deferred_get_never_writes_but_the_next_write_removes_a_tampered_row(settings):
    import sqlite3 as _sqlite3

    with ResponseCache(settings) as cache:
        good, bad = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
        for key in (good, bad):
            cache.put(key, CachedResponse(text="t", stop_reason="end_turn", usage=Usage(), model="m", cost_usd=0.0))
        raw = _sqlite3.connect(settings.cache_path)
        raw.execute("UPDATE entries SET payload = CAST(payload || x'00' AS BLOB) WHERE key = ?", (bad,))
        raw.commit()
        assert cache.get(bad, defer_writes=True) is None and cache.stats()["integrity_failures"] == 1
        assert raw.execute("SELECT COUNT(*) FROM entries WHERE key = ?", (bad,)).fetchone()[0] == 1
        cache.put(cache.key_for({"model": "c"}), CachedResponse(text="t", stop_reason="end_turn", usage=Usage(), model="m", cost_usd=0.0))
        assert raw.execute("SELECT COUNT(*) FROM entries WHERE key = ?", (bad,)).fetchone()[0] == 0
        assert cache.get(good, defer_writes=True).text == "t"
        raw.close()


def test_a_row_rewritten_with_other_sql_types_is_judged_by_its_bytes_never_a_crash(settings):
    import sqlite3 as _sqlite3

    with ResponseCache(settings) as cache:
        same, changed = cache.key_for({"model": "a"}), cache.key_for({"model": "b"})
        for key in (same, changed):
            cache.put(key, CachedResponse(text="t", stop_reason="end_turn", usage=Usage(), model="m", cost_usd=0.0))
        raw = _sqlite3.connect(settings.cache_path)
        # the binary payload is not UTF-8: as TEXT it would break a plain fetch
        raw.execute("UPDATE entries SET payload = CAST(payload AS TEXT), sig = CAST(sig AS TEXT) WHERE key = ?", (same,))
        raw.execute("UPDATE entries SET payload = 42 WHERE key = ?", (changed,))
        raw.commit()
        raw.close()
        assert cache.verify() == [changed]
        assert cache.get(same).text == "t"                  # the signed bytes are unchanged
        assert cache.get(changed) is None
        assert cache.stats()["integrity_failures"] == 1
        assert list(cache.entries().index) == [same]
