"""store/batches.py: the batches of a home in batches.sqlite3, shared by kernels."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from claude_force_nb.core.errors import ConfigurationError, UnknownBatchError
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.batches import BATCHES_FILE, MIGRATIONS, BatchRequest, BatchStore


@pytest.fixture
def settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=b"batch-store-test-secret")


def requests(*ids: str, agent: str = "assistant", model: str = "claude-haiku-4-5") -> list[BatchRequest]:
    return [BatchRequest(cid, agent, model, f"task {cid}", run_id="run-1") for cid in ids]


def test_a_batch_and_its_requests_are_kept_next_to_the_ledger(settings):
    with BatchStore(settings) as store:
        record = store.add("msgbatch_1", requests("a", "b"), created=1000.0)
        assert store.path == settings.data_dir / BATCHES_FILE == settings.ledger_path.parent / BATCHES_FILE
    assert (record.id, record.created, record.agent, record.model, record.state) == (
        "msgbatch_1", 1000.0, "assistant", "claude-haiku-4-5", "in_progress")
    assert (record.requests, record.processing, record.succeeded, record.cost_usd) == (2, 2, 0, 0.0)
    assert record.pending and not record.cancel_requested
    with BatchStore(settings) as again:                       # another kernel, or after a restart
        assert again.requests("msgbatch_1") == {r.custom_id: r for r in requests("a", "b")}
        assert again.pending(["a", "b", "c"]) == {"a": "msgbatch_1", "b": "msgbatch_1"}
        conn = sqlite3.connect(again.path)
        assert [row[0] for row in conn.execute("SELECT name FROM _migrations")] == [m.__name__ for m in MIGRATIONS]
        conn.close()


def test_counts_claims_and_collection(settings):
    with BatchStore(settings) as store:
        store.add("msgbatch_1", requests("a", "b", "c"), created=1.0)
        store.add("msgbatch_2", requests("d", agent="sql-expert", model="claude-sonnet-4-6") + requests("e"),
                  created=2.0)
        store.update("msgbatch_1", "ended", {"succeeded": 2, "errored": 1}, ended=5.0)
        assert store.claim("msgbatch_1", {"a": 0.25, "b": None}) == {"a", "b"}
        assert store.claim("msgbatch_1", {"a": 0.25, "c": 0.5}) == {"c"}       # a is never claimed twice
        assert store.pending(["a", "b", "c", "d"]) == {"d": "msgbatch_2"}
        store.finish("msgbatch_1")
        first = store.get("msgbatch_1")
        assert (first.state, first.succeeded, first.errored, first.processing, first.ended) == ("ended", 2, 1, 0, 5.0)
        assert first.collected and first.cost_usd == 0.75
        store.cancel_requested("msgbatch_2", "canceling")
        second = store.get("msgbatch_2")
        assert second.cancel_requested and second.state == "canceling" and second.pending
        assert (second.agent, second.model) == ("assistant, sql-expert", "claude-haiku-4-5, claude-sonnet-4-6")
        assert [b.id for b in store.batches()] == ["msgbatch_2", "msgbatch_1"]
        assert store.batches()[1].to_dict()["cost_usd"] == 0.75
        with pytest.raises(UnknownBatchError, match="`%agent batches`"):
            store.get("msgbatch_nope")


def test_two_kernels_claiming_one_batch_each_get_a_disjoint_share(settings):
    ids = [f"r{i}" for i in range(400)]
    with BatchStore(settings) as store:
        store.add("msgbatch_1", requests(*ids))
    got: list[set[str]] = []

    def collect() -> None:
        with BatchStore(settings) as mine:
            claimed: set[str] = set()
            for start in range(0, len(ids), 50):
                claimed |= mine.claim("msgbatch_1", dict.fromkeys(ids[start:start + 50], 0.01))
            got.append(claimed)

    threads = [threading.Thread(target=collect) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not (got[0] & got[1]) and got[0] | got[1] == set(ids)
    with BatchStore(settings) as store:
        assert store.get("msgbatch_1").cost_usd == pytest.approx(4.0)


def test_an_unreadable_file_is_one_clear_error(settings):
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / BATCHES_FILE).write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigurationError, match="batch list .* move it aside"):
        BatchStore(settings)
