"""reports.*: exact totals against hand-built ledgers, dtypes, empty ledgers, styling."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from claude_force_nb import reports
from claude_force_nb.store.ledger import Ledger
from claude_force_nb.core.results import AgentResult, Usage

DAY1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY2 = DAY1 + 86_400


@pytest.fixture
def ledger(tmp_path):
    with Ledger(path=tmp_path / "ledger.sqlite3") as led:
        yield led


def add(ledger, ts, agent, model, *, cost=0.0, saved=0.0, cached=False, ok=True, latency=1.0, out=100,
        attempts=1, inp=1000, read=0):
    result = AgentResult(agent=agent, model=model, text="x" if ok else "", usage=Usage(inp, out, 0, 0, read),
                         cost_usd=cost, saved_usd=saved, cached=cached, latency_s=latency,
                         error=None if ok else "boom", error_type=None if ok else "api_error", attempts=attempts)
    ledger.record(result, task=f"{agent} task", ts=ts)


@pytest.fixture
def filled(ledger):
    add(ledger, DAY1 + 10, "coder", "claude-haiku-4-5", cost=0.0105, latency=2.0, out=200)
    add(ledger, DAY1 + 20, "coder", "claude-haiku-4-5", cost=0.0, saved=0.0105, cached=True, latency=0.01)
    add(ledger, DAY1 + 30, "writer", "claude-sonnet-4-6", cost=0.0333, latency=4.0, out=400, read=500)
    add(ledger, DAY2 + 40, "writer", "claude-sonnet-4-6", cost=0.0, ok=False, latency=0.5, attempts=3, out=0)
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


def test_runs_filters(filled):
    assert len(reports.runs(agent="coder", ledger=filled)) == 3
    assert len(reports.runs(model="claude-sonnet-4-6", ledger=filled)) == 2
    assert len(reports.runs(since="2026-01-02", ledger=filled)) == 2


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
    assert table.loc["writer", "retries"] == 2
    assert table.loc["coder", "latency_p50_s"] == 1.0 and table.loc["coder", "latency_max_s"] == 2.0
    assert table.loc["coder", "tokens_per_s"] == pytest.approx((200 + 50) / (2.0 + 1.0))  # live calls only
    assert table.loc["writer", "tokens_per_s"] == pytest.approx(400 / 4.0)


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
