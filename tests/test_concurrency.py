"""Several real processes sharing one home: persistence, mixed load, a writer killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from claude_force_nb.core.results import Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.cache import CachedResponse, ResponseCache
from claude_force_nb.store.ledger import Ledger

from .test_cache import write_schema1_cache

pytestmark = pytest.mark.timeout(60)

# Shared by every child: open the home given as argv[1] (the key file is created there by
# whichever process gets there first), and helpers to build deterministic responses.
PRELUDE = textwrap.dedent(
    """
    import json, os, random, sys, time
    from pathlib import Path
    from claude_force_nb.store.cache import CachedResponse, ResponseCache
    from claude_force_nb.store.ledger import Ledger
    from claude_force_nb.core.results import AgentResult, Usage
    from claude_force_nb.core.settings import Settings

    home = Path(sys.argv[1])
    settings = Settings(data_dir=home, secrets_dir=home / "secrets")

    def request(name):
        return {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": name}], "max_tokens": 64}

    def answer(text, n=0):
        return CachedResponse(text=text, stop_reason="end_turn", usage=Usage(n, 2 * n), model="claude-haiku-4-5-x",
                              cost_usd=n / 1000, agent="worker", task_head=text[:20], request_id=f"req_{n}")
    """
)

PUT_ONE = PRELUDE + textwrap.dedent(
    """
    with ResponseCache(settings) as cache:
        ok = cache.put(cache.key_for(request("persist")), CachedResponse(
            text="Persisted across processes ✓\\nline 2", stop_reason="max_tokens",
            usage=Usage(1, 2, 3, 4, 5), model="claude-sonnet-4-6-20260101", cost_usd=0.25, agent="python-expert",
            task_head="persist", request_id="req_persist"))
    print(json.dumps(ok))
    """
)

GET_ONE = PRELUDE + textwrap.dedent(
    """
    with ResponseCache(settings) as cache:
        got = cache.get(cache.key_for(request("persist")))
    print(json.dumps(None if got is None else {**got._asdict(), "usage": got.usage.to_dict()}))
    """
)

MIXED = PRELUDE + textwrap.dedent(
    """
    worker, ops = int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(worker)
    final = {}
    hits = misses = 0
    cache = ResponseCache(settings)
    ledger = Ledger(settings)
    for i in range(ops):
        roll = rng.random()
        if roll < 0.35:                                   # own keys: only this worker writes them
            name = f"w{worker}-{i % 60}"
            text = f"{name} written at op {i}"
            assert cache.put(cache.key_for(request(name)), answer(text, i)), name
            final[name] = text
        elif roll < 0.50:                                 # shared keys: every worker writes them
            name = f"shared-{i % 10}"
            assert cache.put(cache.key_for(request(name)), answer(f"{name} by {worker}", i)), name
        elif roll < 0.99:                                 # reads of anyone's keys
            name = f"w{rng.randrange(4)}-{rng.randrange(60)}" if roll < 0.8 else f"shared-{rng.randrange(10)}"
            got = cache.get(cache.key_for(request(name)))
            if got is None:
                misses += 1
            else:
                hits += 1
                assert got.text.startswith(name), (name, got.text)
        else:
            assert cache.verify() == []
        ledger.record(AgentResult(agent=f"worker{worker}", model="m", cached=roll >= 0.5, cost_usd=0.001), task=str(i))
    stats = cache.stats()
    assert stats["integrity_failures"] == 0, stats
    cache.close()
    ledger.close()
    print(json.dumps({"final": final, "hits": hits, "misses": misses}))
    """
)

OPEN_FRESH = PRELUDE + textwrap.dedent(
    """
    with ResponseCache(settings) as cache, Ledger(settings) as ledger:
        key = cache.key_for(request("init race"))
        assert cache.put(key, answer("init race by " + sys.argv[2]))
        ledger.record(AgentResult(agent="init", model="m"))
    print(key)
    """
)

UPGRADE = PRELUDE + textwrap.dedent(
    """
    import logging
    logging.basicConfig(level=logging.WARNING)        # the upgrade's warnings, to stderr
    keys = json.loads(Path(sys.argv[2]).read_text())
    with ResponseCache(settings) as cache:             # all race to upgrade the schema 1 file
        got = {key: getattr(cache.get(key), "text", None) for key in keys}
        assert cache.put(cache.key_for(request("after upgrade " + sys.argv[3])), answer("mine"))
        stats = cache.stats()
    print(json.dumps({"got": got, "failures": stats["integrity_failures"]}))
    """
)

WRITER = PRELUDE + textwrap.dedent(
    """
    tag, stop_file = sys.argv[2], Path(sys.argv[3])
    cache = ResponseCache(settings)
    i = 0
    extra = None
    while extra is None or extra > 0:                 # until told to stop, then 100 more puts
        text = f"{tag}-{i} " + "payload " * random.randrange(50, 400)
        assert cache.put(cache.key_for(request(f"{tag}-{i}")), answer(text, i))
        i += 1
        if i == 50:
            print("ready", flush=True)
        if extra is not None:
            extra -= 1
        elif i % 20 == 0 and stop_file.exists():
            extra = 100
    cache.close()
    print("done", i, flush=True)
    """
)


# Keeps the ledger and the cache open, writes one row and one entry, waits for argv[2] to
# exist, writes again, and says what warnings it showed.
HOLDER = PRELUDE + textwrap.dedent(
    """
    import warnings
    shown = []
    warnings.showwarning = lambda message, *_: shown.append(str(message))
    go = Path(sys.argv[2])
    cache, ledger = ResponseCache(settings), Ledger(settings)

    def write(name):
        ledger.record(AgentResult(agent="holder", model="m"), task=name)
        assert cache.put(cache.key_for(request(name)), answer(name))

    write("holder before")
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    write("holder after")
    cache.close()
    ledger.close()
    print(json.dumps(shown))
    """
)

NEWCOMER = PRELUDE + textwrap.dedent(
    """
    import warnings
    warnings.simplefilter("error")                    # a disk-error warning here would be a failure
    with ResponseCache(settings) as cache, Ledger(settings) as ledger:
        ledger.record(AgentResult(agent="newcomer", model="m"), task="newcomer")
        assert cache.put(cache.key_for(request("newcomer")), answer("newcomer"))
        print(json.dumps(ledger.status()["persistent"] and cache.stats()["persistent"]))
    """
)


@pytest.fixture
def settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets")


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CLAUDE_FORCE_CACHE_SECRET", None)
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen[str], timeout: float = 45) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def request(name: str) -> dict:
    return {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": name}], "max_tokens": 64}


def quick_check(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()


def test_response_persists_across_processes(settings):
    assert json.loads(finish(spawn(PUT_ONE, settings.data_dir))) is True
    got = json.loads(finish(spawn(GET_ONE, settings.data_dir)))
    created = got.pop("created")
    assert got == {
        "text": "Persisted across processes ✓\nline 2", "stop_reason": "max_tokens",
        "usage": {"input_tokens": 1, "output_tokens": 2, "cache_write_5m_tokens": 3,
                  "cache_write_1h_tokens": 4, "cache_read_tokens": 5},
        "model": "claude-sonnet-4-6-20260101", "cost_usd": 0.25, "agent": "python-expert",
        "task_head": "persist", "request_id": "req_persist", "expires": created + settings.cache_ttl_s,
    }
    assert time.time() - 120 < created <= time.time()
    # and this process (a third one) reads it through the same key file
    with ResponseCache(settings) as cache:
        assert cache.get(cache.key_for(request("persist"))).text.startswith("Persisted")


def test_initialisation_race(settings):
    """Six processes create the home, key file, cache schema and ledger migrations at once."""
    procs = [spawn(OPEN_FRESH, settings.data_dir, n) for n in range(6)]
    keys = {finish(p).strip() for p in procs}
    assert len(keys) == 1                         # every process ended up with the same key file
    with ResponseCache(settings) as cache, Ledger(settings) as ledger:
        assert cache.get(keys.pop()).text.startswith("init race by ")
        assert cache.stats()["entries"] == 1
        assert len(ledger.rows(agent="init")) == 6


def test_processes_opening_a_schema1_cache_at_once_upgrade_it_once(settings, tmp_path):
    keys = write_schema1_cache(settings, tmp_path, {f"old {i}": f"old answer {i}" for i in range(50)}, now=time.time())
    (tmp_path / "keys.json").write_text(json.dumps(list(keys)))
    procs = [spawn(UPGRADE, settings.data_dir, tmp_path / "keys.json", n) for n in range(4)]
    outputs = [p.communicate(timeout=45) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert all(json.loads(out) == {"got": keys, "failures": 0} for out, _ in outputs)
    assert sum(err.count("Upgrading the response cache") for _, err in outputs) == 1   # once, by one of them
    assert quick_check(settings.cache_path) == "ok"
    with ResponseCache(settings) as cache:
        assert cache.verify() == []
        assert cache.stats()["entries"] == 50 + 4
        assert all(cache.get(cache.key_for(request(f"after upgrade {n}"))).text == "mine" for n in range(4))


def test_four_processes_mixed_load(settings):
    workers, ops = 4, 500
    procs = [spawn(MIXED, settings.data_dir, n, ops) for n in range(workers)]   # all race to initialise
    reports = [json.loads(finish(p)) for p in procs]
    assert quick_check(settings.cache_path) == "ok"
    with ResponseCache(settings) as cache:
        assert cache.verify() == []
        for report in reports:
            for name, text in report["final"].items():
                got = cache.get(cache.key_for(request(name)))
                assert got is not None and got.text == text, name
        shared = [cache.get(cache.key_for(request(f"shared-{j}"))) for j in range(10)]
        assert all(s is None or s.text.startswith(f"shared-{j} by ") for j, s in enumerate(shared))
        stats = cache.stats()
        own = sum(len(r["final"]) for r in reports)
        assert stats["entries"] == own + sum(s is not None for s in shared)
        assert stats["integrity_failures"] == 0
    assert sum(r["hits"] + r["misses"] for r in reports) > 0
    with Ledger(settings) as ledger:
        rows = ledger.rows()
        assert len(rows) == workers * ops
        assert {r["agent"]: 0 for r in rows} == {f"worker{n}": 0 for n in range(workers)}
        assert all(sum(r["agent"] == f"worker{n}" for r in rows) == ops for n in range(workers))
        assert len({r["session_id"] for r in rows}) == workers
    assert quick_check(settings.ledger_path) == "ok"


def test_writer_killed_mid_run(settings, tmp_path):
    never, stop = tmp_path / "never", tmp_path / "stop"
    victim = spawn(WRITER, settings.data_dir, "victim", never)          # writes until killed
    survivor = spawn(WRITER, settings.data_dir, "survivor", stop)
    try:
        assert victim.stdout.readline().strip() == "ready"
        assert survivor.stdout.readline().strip() == "ready"          # both are in their write loops now
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    finally:                                                          # the survivor writes 100 more after this...
        stop.touch()
        if victim.poll() is None:
            victim.kill()
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    done, count = finish(survivor).split()                            # ...and finishes normally:
    assert done == "done" and int(count) >= 150                       # the dead writer's locks were released
    assert quick_check(settings.cache_path) == "ok"
    with ResponseCache(settings) as cache:
        assert cache.verify() == []
        conn = sqlite3.connect(settings.cache_path)
        try:
            keys = [k for (k,) in conn.execute("SELECT key FROM entries")]
        finally:
            conn.close()
        survivors = [cache.key_for(request(f"survivor-{i}")) for i in range(int(count))]
        victims = [cache.key_for(request(f"victim-{i}")) for i in range(50)]   # written before "ready"
        assert set(survivors + victims) <= set(keys) and len(keys) >= len(survivors) + len(victims)
        for key in keys:
            got = cache.get(key)
            assert got is not None and got.stop_reason == "end_turn"
        assert cache.stats()["entries"] == len(keys)
        assert cache.put(cache.key_for(request("after")), CachedResponse(
            text="after the crash", stop_reason="end_turn", usage=Usage(), model="m", cost_usd=None))


def test_databases_deleted_under_one_kernel_serve_the_next_kernel_and_then_both(settings, tmp_path):
    """Only the database files are deleted (their -wal/-shm stay, held open by the first
    kernel): a kernel started then must not read the new files through them (SQLite says
    "disk I/O error"), and the first kernel moves to the new files at its next write."""
    go = tmp_path / "go"
    holder = spawn(HOLDER, settings.data_dir, go)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for path in (settings.ledger_path, settings.cache_path):
            os.unlink(path)
            assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
        assert json.loads(finish(spawn(NEWCOMER, settings.data_dir))) is True
    finally:
        go.touch()
    shown = json.loads(finish(holder))
    assert len(shown) == 2 and all("was replaced while in use" in w for w in shown), shown
    assert quick_check(settings.ledger_path) == quick_check(settings.cache_path) == "ok"
    with Ledger(settings) as ledger, ResponseCache(settings) as cache:
        assert [r["task_head"] for r in ledger.rows()] == ["newcomer", "holder after"]
        assert [cache.get(cache.key_for(request(name))) is not None
                for name in ("holder before", "newcomer", "holder after")] == [False, True, True]
