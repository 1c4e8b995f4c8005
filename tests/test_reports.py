"""reports.*: exact totals against hand-built ledgers, dtypes, empty ledgers, the cache, styling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import pytest

from claude_force_nb import reports
from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.cache import CachedResponse, ResponseCache
from claude_force_nb.store.ledger import COLUMNS, Ledger

DAY1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY2 = DAY1 + 86_400


@pytest.fixture
def ledger(tmp_path):
    with Ledger(path=tmp_path / "ledger.sqlite3") as led:
        yield led


@dataclass(frozen=True)
class PacedResult(AgentResult):
    """A result carrying what the call met on the way (the fields the engine sets)."""

    rate_limited: int = 0
    overloaded: int = 0
    waited_s: float = 0.0


def add(ledger, ts, agent, model, *, cost=0.0, saved=0.0, cached=False, ok=True, latency=1.0, out=100,
        attempts=1, inp=1000, read=0, rate_limited=0, overloaded=0, paced=0.0):
    result = PacedResult(agent=agent, model=model, text="x" if ok else "", usage=Usage(inp, out, 0, 0, read),
                         cost_usd=cost, saved_usd=saved, cached=cached, latency_s=latency,
                         error=None if ok else "boom", error_type=None if ok else "api_error", attempts=attempts,
                         rate_limited=rate_limited, overloaded=overloaded, waited_s=paced)
    ledger.record(result, task=f"{agent} task", ts=ts)


@pytest.fixture
def filled(ledger):
    add(ledger, DAY1 + 10, "coder", "claude-haiku-4-5", cost=0.0105, latency=2.0, out=200)
    add(ledger, DAY1 + 20, "coder", "claude-haiku-4-5", cost=0.0, saved=0.0105, cached=True, latency=0.01)
    add(ledger, DAY1 + 30, "writer", "claude-sonnet-4-6", cost=0.0333, latency=4.0, out=400, read=500,
        attempts=2, rate_limited=1, paced=0.75)
    add(ledger, DAY2 + 40, "writer", "claude-sonnet-4-6", cost=0.0, ok=False, latency=0.5, attempts=3, out=0,
        rate_limited=1, overloaded=2, paced=1.5)
    add(ledger, DAY2 + 50, "coder", "claude-imaginary-9", cost=None, latency=1.0, out=50)
    return ledger


def test_runs_has_proper_dtypes(filled):
    frame = reports.runs(ledger=filled)
    assert len(frame) == 5
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert frame["agent"].dtype == "category" and frame["model"].dtype == "category"
    assert frame["cached"].dtype == bool and frame["ok"].dtype == bool and frame["cost_usd"].dtype == float
    assert frame["ts"].iloc[0] == pd.Timestamp("2026-01-01 00:00:10", tz="UTC")
    assert math.isnan(frame["cost_usd"].iloc[4])


def kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {name: "str" if pd.api.types.is_string_dtype(dtype) else str(dtype) for name, dtype in frame.dtypes.items()}


def test_runs_columns_and_dtypes_follow_the_ledgers_column_list(ledger):
    expected = {name: "str" for name in COLUMNS if name != "id"}
    expected.update({name: "int64" for name in ("input_tokens", "output_tokens", "cache_write_5m_tokens",
                                                "cache_write_1h_tokens", "cache_read_tokens", "attempts",
                                                "rate_limited", "overloaded")})
    expected.update({name: "bool" for name in ("cached", "ok", "offline", "batch")})
    expected.update({"ts": "datetime64[ns, UTC]", "agent": "category", "model": "category",
                     "cost_usd": "float64", "saved_usd": "float64", "latency_s": "float64", "waited_s": "float64"})
    assert list(reports.RUN_COLUMNS) == [name for name in COLUMNS if name != "id"]     # one schema: the ledger's
    empty = reports.runs(ledger=ledger)
    assert list(empty.columns) == [name for name in COLUMNS if name != "id"] and kinds(empty) == expected
    assert empty.empty and empty.index.name == "id"
    add(ledger, 1_700_000_000.25, "coder", "claude-haiku-4-5", cached=True)
    add(ledger, 1_700_000_001.0, "coder", "claude-haiku-4-5", ok=False, cost=None)
    frame = reports.runs(ledger=ledger)
    assert kinds(frame) == expected and list(frame.index) == [1, 2]
    assert frame["ts"].iloc[0] == pd.Timestamp(1_700_000_000.25, unit="s", tz="UTC")
    assert list(frame["ok"]) == [True, False] and list(frame["cached"]) == [True, False]
    assert list(frame["error_type"].isna()) == [True, False] and math.isnan(frame["cost_usd"].iloc[1])


def test_runs_filters(filled):
    assert len(reports.runs(agent="coder", ledger=filled)) == 3
    assert len(reports.runs(model="claude-sonnet-4-6", ledger=filled)) == 2
    assert len(reports.runs(since="2026-01-02", ledger=filled)) == 2
    assert list(reports.runs(agent="writer", ledger=filled).index) == [3, 4]


def test_costs_by_agent_are_exact(filled):
    table = reports.costs(by="agent", ledger=filled)
    assert list(table.index) == ["coder", "writer", "TOTAL"]
    assert table.loc["coder", "calls"] == 3 and table.loc["coder", "cached_calls"] == 1
    assert table.loc["coder", "hit_rate"] == pytest.approx(1 / 3)
    assert table.loc["coder", "cost_usd"] == 0.0105 and table.loc["coder", "saved_usd"] == 0.0105
    assert table.loc["coder", "unpriced"] == 1
    assert table.loc["writer", "cost_usd"] == 0.0333 and table.loc["writer", "cache_read_tokens"] == 500
    assert table.loc["TOTAL", "calls"] == 5 and table.loc["TOTAL", "cost_usd"] == 0.0438
    assert table.loc["TOTAL", "output_tokens"] == 200 + 100 + 400 + 0 + 50
    assert table.loc["TOTAL", "input_tokens"] == 5000


def test_costs_by_day_and_model(filled):
    by_day = reports.costs(by="day", ledger=filled)
    assert list(by_day.index) == ["2026-01-01", "2026-01-02", "TOTAL"]
    assert by_day.loc["2026-01-01", "cost_usd"] == 0.0438 and by_day.loc["2026-01-02", "cost_usd"] == 0.0
    by_model = reports.costs(by="model", ledger=filled)
    assert by_model.loc["claude-haiku-4-5", "calls"] == 2 and by_model.loc["claude-imaginary-9", "unpriced"] == 1


def test_stats_latency_errors_retries(filled):
    table = reports.stats(by="agent", ledger=filled)
    assert table.loc["writer", "errors"] == 1 and table.loc["writer", "error_rate"] == 0.5
    assert table.loc["writer", "retries"] == 1 + 2
    assert table.loc["coder", "latency_p50_s"] == 1.0 and table.loc["coder", "latency_max_s"] == 2.0
    assert table.loc["coder", "tokens_per_s"] == pytest.approx((200 + 50) / (2.0 + 1.0))  # live calls only
    assert table.loc["writer", "tokens_per_s"] == pytest.approx(400 / 4.0)


def test_stats_count_the_429s_and_529s_calls_met_and_the_mean_time_they_waited(filled):
    table = reports.stats(by="agent", ledger=filled)
    columns = list(table.columns)
    assert columns[columns.index("retries"):] == ["retries", "rate_limited", "overloaded", "mean_wait_s"]
    assert table.loc["writer", ["rate_limited", "overloaded"]].tolist() == [2, 2]
    assert table.loc["writer", "mean_wait_s"] == (0.75 + 1.5) / 2
    assert table.loc["coder", ["rate_limited", "overloaded", "mean_wait_s"]].tolist() == [0, 0, 0.0]
    assert {str(table[c].dtype) for c in ("rate_limited", "overloaded")} == {"int64"} and table["mean_wait_s"].dtype == float
    by_day = reports.stats(by="day", ledger=filled)
    assert by_day.loc["2026-01-02", ["rate_limited", "overloaded", "mean_wait_s"]].tolist() == [1, 2, 1.5 / 2]
    assert "1.12" in reports.styled(table).to_html()


def test_empty_ledger_gives_empty_typed_frames(ledger):
    runs = reports.runs(ledger=ledger)
    assert runs.empty and str(runs["ts"].dtype) == "datetime64[ns, UTC]" and runs["cost_usd"].dtype == float
    costs = reports.costs(ledger=ledger)
    assert list(costs.index) == ["TOTAL"] and costs.loc["TOTAL", "calls"] == 0 and costs.loc["TOTAL", "cost_usd"] == 0
    assert reports.stats(ledger=ledger).empty


def test_bad_grouping_names_the_choices(ledger):
    with pytest.raises(ValueError, match="use one of agent, model, day, session"):
        reports.costs(by="week", ledger=ledger)


def test_styled_formats_money_percent_and_bold_total(filled):
    html = reports.styled(reports.costs(ledger=filled)).to_html()
    assert "$0.0438" in html and "33.3%" in html and "font-weight: bold" in html


CACHE_KINDS = {
    "key": "str", "agent": "str", "model": "str", "created": "datetime64[ns, UTC]",
    "expires": "datetime64[ns, UTC]", "size": "int64", "hits": "int64", "cost_usd": "float64",
    "task": "str", "answer": "str", "age": "timedelta64[ns]", "ttl_left": "timedelta64[ns]",
}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cached(text: str, **kw) -> CachedResponse:
    fields = dict(text=text, stop_reason="end_turn", usage=Usage(11, 22), model="claude-sonnet-4-6-20260101",
                  cost_usd=0.0123, agent="code-reviewer", task_head="Review this function")
    return CachedResponse(**{**fields, **kw})


def test_cache_contents_is_a_typed_frame_of_the_entries(tmp_path):
    t0 = 1_000_000.0
    clock = Clock(t0)
    home = tmp_path / "home"
    settings = Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=b"reports-test-secret")
    with ResponseCache(settings, clock=clock) as cache:
        empty = reports.cache_contents(cache=cache)
        assert list(empty.columns) == list(CACHE_KINDS) and kinds(empty) == CACHE_KINDS and len(empty) == 0
        k1, k2 = cache.key_for({"model": "1"}), cache.key_for({"model": "2"})
        cache.put(k1, cached("First line of answer\nmore", cost_usd=None, agent=None))
        clock.now = t0 + 5
        cache.put(k2, cached("The answer", task_head="Explain X"))
        cache.get(k1)
        cache.get(k1)
        frame = reports.cache_contents(cache=cache)
    assert kinds(frame) == CACHE_KINDS
    assert list(frame.index) == [k2, k1] and frame.index.name == "cache_key"     # newest first, full keys
    assert list(frame["key"]) == [k2[:12], k1[:12]]
    first = frame.loc[k1]
    assert (first["hits"], first["answer"], first["task"]) == (2, "First line of answer", "Review this function")
    assert math.isnan(first["cost_usd"]) and pd.isna(first["agent"])
    assert first["created"] == pd.Timestamp(t0, unit="s", tz="UTC")
    assert frame.loc[k2, "expires"] == pd.Timestamp(t0 + 5 + 7 * 24 * 3600, unit="s", tz="UTC")
    assert frame.loc[k2, "cost_usd"] == 0.0123 and frame.loc[k2, "task"] == "Explain X"
    assert (frame["ttl_left"] == frame["expires"] - frame["created"] - frame["age"]).all()


def test_cache_contents_opens_and_closes_the_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_FORCE_CACHE_SECRET", "reports-test-secret")
    with ResponseCache(Settings.from_env()) as cache:
        key = cache.key_for({"model": "m"})
        cache.put(key, cached("hello"))
    frame = reports.cache_contents()
    assert list(frame.index) == [key] and frame.loc[key, "answer"] == "hello"
