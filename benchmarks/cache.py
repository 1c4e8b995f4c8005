"""Cache hit/put latency: ResponseCache vs diskcache vs one-JSON-file-per-entry + HMAC.

Run: ``.venv/bin/python benchmarks/cache.py`` (about 30-60 s, a few hundred MB in a tmp dir).

- 10,000 entries of ~2 KB text. Puts are timed one by one; gets get a warm-up pass, then
  3 shuffled timed passes (30k samples). ``time.perf_counter_ns``; the timer's own
  overhead is subtracted.
- The three caches the targets compare (a, b, c) are timed in ROUNDS rounds: each round
  shuffles the keys and times one pass of each cache, the order rotated every round, and
  a target is checked on the median of the rounds' p50 ratios (the paired ratios), which
  cancels the slow drift of a shared VM.
- (a) ResponseCache.get: SQLite lookup + HMAC check (compare_digest) + expiry + parse of
  the binary payload into a CachedResponse.  (b) diskcache.Cache.get of the same payload bytes (default
  least-recently-stored policy, no signature).  (c) the original claude-force layout: one
  JSON file per entry, read + json.loads + re-canonicalise + HMAC verify.  (d, for context,
  no target) diskcache as the backend of a signed cache: the value is signature + payload
  (the envelope inside the value), and a get verifies and parses it exactly as (a) does.
- Open time of ResponseCache (constructor + first lookup) at 1k and 100k entries.

Prints PASS/MISS per target; exits non-zero only when something crashes.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import hmac
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from claude_force_nb.core.results import Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.cache import CachedResponse, ResponseCache, canonical_json, rowid_of
from claude_force_nb.store.cache.payload import decode, encode
from claude_force_nb.store.cache.table import LOOKUP

N = 10_000
PASSES = 3
ROUNDS = 6
OPEN_SIZES = (1_000, 100_000)
OPEN_REPEATS = 7
WORDS = "the quick brown fox jumps over lazy dogs while reviewing python code for subtle bugs".split()

TARGETS = {
    "hit p50 ours/diskcache": ("<=", 2.0),
    "hit p50 json/ours": (">=", 3.0),
    "open ms at 100k": ("<=", 50.0),
}


def timer_overhead_ns() -> int:
    samples = []
    for _ in range(20_000):
        t0 = time.perf_counter_ns()
        samples.append(time.perf_counter_ns() - t0)
    return int(statistics.median(samples))


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def make_text(rng: random.Random, size: int = 2000) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        w = rng.choice(WORDS)
        words.append(w)
        length += len(w) + 1
    return " ".join(words)[:size]


def make_response(rng: random.Random, i: int) -> CachedResponse:
    return CachedResponse(
        text=make_text(rng), stop_reason="end_turn", usage=Usage(1200 + i % 50, 400), model="claude-sonnet-4-6",
        cost_usd=0.0096, agent="code-reviewer", task_head=f"task {i}", request_id=f"req_{i:08d}",
    )


def settings_for(root: Path) -> Settings:
    home = root / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=os.urandom(32),
                    cache_max_bytes=4 * 1024**3)


def time_calls(fn, args_list, overhead: int) -> list[int]:
    out = []
    perf = time.perf_counter_ns
    for args in args_list:
        t0 = perf()
        fn(*args)
        out.append(max(0, perf() - t0 - overhead))
    return out


def time_rounds(gets: dict[str, object], keys: list[str], overhead: int, check) -> dict[str, list[list[int]]]:
    """Each get timed over every key in each of ROUNDS rounds (keys shuffled per round, the
    order of the gets rotated): per get, one list of samples per round."""
    for get in gets.values():             # warm-up pass (OS page cache, SQLite cache, mmap)
        for k in keys:
            check(get(k))
    rounds: dict[str, list[list[int]]] = {name: [] for name in gets}
    perf = time.perf_counter_ns
    rng = random.Random(7)
    names = list(gets)
    for r in range(ROUNDS):
        order = keys[:]
        rng.shuffle(order)
        for name in names[r % len(names):] + names[:r % len(names)]:
            get, samples = gets[name], []
            for k in order:
                t0 = perf()
                get(k)
                samples.append(max(0, perf() - t0 - overhead))
            rounds[name].append(samples)
    return rounds


def paired_p50_ratio(top: list[list[int]], bottom: list[list[int]]) -> float:
    """The median over rounds of p50(top) / p50(bottom) in the same round."""
    return statistics.median(pct(t, .5) / pct(b, .5) for t, b in zip(top, bottom))


def time_gets(get, keys: list[str], overhead: int, check) -> list[int]:
    for k in keys:                       # warm-up pass (OS page cache, SQLite cache, mmap)
        check(get(k))
    samples: list[int] = []
    perf = time.perf_counter_ns
    rng = random.Random(7)
    for _ in range(PASSES):
        order = keys[:]
        rng.shuffle(order)
        for k in order:
            t0 = perf()
            get(k)
            samples.append(max(0, perf() - t0 - overhead))
    for k in keys[:100]:
        check(get(k))
    return samples


class JsonFileCache:
    """The original claude-force layout: <key>.json per entry, HMAC over canonical JSON."""

    def __init__(self, root: Path, secret: bytes) -> None:
        self.root = root
        self.secret = secret
        root.mkdir(mode=0o700, parents=True)

    def set(self, key: str, response: dict) -> None:
        body = dict(response)
        body["signature"] = hmac.new(self.secret, canonical_json(body), hashlib.sha256).hexdigest()
        tmp = self.root / f".{key}.tmp"
        tmp.write_text(json.dumps(body, indent=2))
        os.replace(tmp, self.root / f"{key}.json")

    def get(self, key: str) -> dict | None:
        try:
            data = (self.root / f"{key}.json").read_bytes()
        except FileNotFoundError:
            return None
        body = json.loads(data)
        sig = body.pop("signature", "")
        expected = hmac.new(self.secret, canonical_json(body), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig):
            return None
        return body


def open_time(root: Path, entries: int, rng: random.Random) -> tuple[float, float, int]:
    """(median ms for constructor + first hit, median ms constructor only, db bytes)."""
    s = settings_for(root)
    with ResponseCache(s) as cache:
        keys = []
        batch: list[tuple[str, CachedResponse]] = []
        template = make_response(rng, 0)
        for i in range(entries):
            key = cache.key_for({"model": "m", "messages": [{"role": "user", "content": f"open {i}"}]})
            keys.append(key)
            batch.append((key, template))
            if len(batch) == 10_000:
                cache.put_many(batch)
                batch = []
        if batch:
            cache.put_many(batch)
    conn = sqlite3.connect(s.cache_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = s.cache_path.stat().st_size
    full, ctor = [], []
    probe = keys[len(keys) // 2]
    for _ in range(OPEN_REPEATS):
        gc.collect()
        t0 = time.perf_counter_ns()
        cache = ResponseCache(s)
        t1 = time.perf_counter_ns()
        hit = cache.get(probe)
        t2 = time.perf_counter_ns()
        cache.close()
        assert hit is not None
        ctor.append((t1 - t0) / 1e6)
        full.append((t2 - t0) / 1e6)
    return statistics.median(full), statistics.median(ctor), size


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="cfnb-bench-"))
    os.chmod(root, 0o700)
    try:
        import diskcache

        rng = random.Random(42)
        overhead = timer_overhead_ns()
        s = settings_for(root / "ours")
        ours = ResponseCache(s)
        responses = [make_response(rng, i) for i in range(N)]
        keys = [ours.key_for({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": f"task {i}"}],
                              "max_tokens": 1024}) for i in range(N)]
        payloads = [encode(r, time.time(), None) for r in responses]
        now = time.time()
        dicts = [{**r._asdict(), "usage": dataclasses.asdict(r.usage), "created": now, "expires": now + 7 * 86400}
                 for r in responses]
        print(f"# {N} entries, text {len(responses[0].text)} chars, payload ~{len(payloads[0])} B; "
              f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, diskcache {diskcache.__version__}; "
              f"timer overhead {overhead} ns subtracted")

        t_start = time.perf_counter()
        put_ours = time_calls(ours.put, list(zip(keys, responses)), overhead)
        dc = diskcache.Cache(str(root / "diskcache"))
        put_dc = time_calls(dc.set, list(zip(keys, payloads)), overhead)
        jf = JsonFileCache(root / "jsonfiles", os.urandom(32))
        put_json = time_calls(jf.set, list(zip(keys, dicts)), overhead)

        def must(x):
            assert x is not None

        dc_signed = diskcache.Cache(str(root / "diskcache-signed"))
        for key, payload in zip(keys, payloads):
            dc_signed.set(key, ours._signer.sign(key, payload) + payload)

        def signed_dc_get(key):
            value = dc_signed.get(key)
            if value is None:
                return None
            payload = value[32:]
            if not ours._signer.genuine(key, payload, value[:32]):
                return None
            response = decode(payload)
            return None if response.expires is not None and time.time() >= response.expires else response

        rounds = time_rounds({"ours": ours.get, "diskcache": dc.get, "json": jf.get}, keys, overhead, must)
        get_ours, get_dc, get_json = (sum(rounds[name], []) for name in ("ours", "diskcache", "json"))
        # where a hit's time goes: the same SQL lookup alone, then + the HMAC check
        conn = ours._file.pool.get()

        def lookup(key):
            return conn.execute(LOOKUP, (rowid_of(key),)).fetchone()

        def lookup_mac(key):
            payload, sig = conn.execute(LOOKUP, (rowid_of(key),)).fetchone()
            return ours._signer.genuine(key, payload, sig) or None

        get_sql = time_gets(lookup, keys, overhead, must)
        get_sql_mac = time_gets(lookup_mac, keys, overhead, must)
        get_dc_signed = time_gets(signed_dc_get, keys, overhead, must)
        assert ours.stats()["integrity_failures"] == 0
        ours.close()
        dc.close()
        dc_signed.close()
        t_rw = time.perf_counter() - t_start

        rows = [
            ("ResponseCache (SQLite + HMAC)", get_ours, put_ours),
            ("diskcache.Cache (no signature)", get_dc, put_dc),
            ("JSON file per entry + HMAC", get_json, put_json),
        ]
        print()
        print(f"{'cache':34} {'hit p50 µs':>11} {'hit p99 µs':>11} {'put p50 µs':>11} {'put p99 µs':>11}")
        for name, g, p in rows:
            print(f"{name:34} {pct(g, .5):11.1f} {pct(g, .99):11.1f} {pct(p, .5):11.1f} {pct(p, .99):11.1f}")
        print(f"{'  ours, SQL lookup only':34} {pct(get_sql, .5):11.1f} {pct(get_sql, .99):11.1f}")
        print(f"{'  ours, SQL lookup + HMAC check':34} {pct(get_sql_mac, .5):11.1f} {pct(get_sql_mac, .99):11.1f}")
        print(f"{'diskcache + the same check & parse':34} {pct(get_dc_signed, .5):11.1f} {pct(get_dc_signed, .99):11.1f}")

        print()
        opens = {}
        for n in OPEN_SIZES:
            full, ctor, size = open_time(root / f"open{n}", n, rng)
            opens[n] = full
            print(f"open ResponseCache with {n:>7,} entries ({size / 1e6:6.1f} MB): "
                  f"{full:6.2f} ms (constructor {ctor:.2f} ms + first hit)")
            # size tracking: the trigger-maintained totals row vs a SUM over the size column
            conn = sqlite3.connect(root / f"open{n}" / "home" / "cache.sqlite3")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()      # load the schema first
            t0 = time.perf_counter_ns()
            conn.execute("SELECT bytes FROM totals WHERE id = 1").fetchone()
            t1 = time.perf_counter_ns()
            conn.execute("SELECT SUM(size) FROM entries").fetchone()
            t2 = time.perf_counter_ns()
            conn.close()
            print(f"    total bytes: totals row {(t1 - t0) / 1e3:8.1f} µs   vs   SUM(size) scan {(t2 - t1) / 1e3:9.1f} µs")
            shutil.rmtree(root / f"open{n}")

        ratios = {
            "hit p50 ours/diskcache": paired_p50_ratio(rounds["ours"], rounds["diskcache"]),
            "hit p50 json/ours": paired_p50_ratio(rounds["json"], rounds["ours"]),
            "open ms at 100k": opens[100_000],
        }
        print()
        print(f"open time growth 1k -> 100k: x{opens[100_000] / opens[1_000]:.2f}")
        print(f"hit p50 ours / diskcache with the same signature check and parse (no target): "
              f"{pct(get_ours, .5) / pct(get_dc_signed, .5):.2f}")
        print(f"put p50 ours/diskcache: {pct(put_ours, .5) / pct(put_dc, .5):.2f}   "
              f"put p50 json/ours: {pct(put_json, .5) / pct(put_ours, .5):.2f}")
        for name, value in ratios.items():
            op, target = TARGETS[name]
            ok = value <= target if op == "<=" else value >= target
            print(f"{name:26} {value:8.2f}   target {op} {target:<5}  {'PASS' if ok else 'MISS'}")
        print(f"\n(read/write phase {t_rw:.1f} s, total {time.perf_counter() - t_start:.1f} s)")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
