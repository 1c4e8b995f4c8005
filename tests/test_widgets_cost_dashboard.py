"""CostDashboard, driven headless against a real ledger."""

from __future__ import annotations

import sys

from claude_force_nb.notebook import widgets
from claude_force_nb.store.ledger import Ledger
from claude_force_nb.views import reports

from .widget_support import filled, open_app  # noqa: F401  (fixtures)


def test_dashboard_totals_match_the_costs_total_row(filled, open_app):
    filled.run_sync("assistant", "What is a p-value?", model="claude-haiku-4-5")  # a cache hit
    dashboard = open_app(widgets.CostDashboard, filled)
    total = reports.costs(ledger=filled.ledger).loc[reports.TOTAL]
    assert dashboard.totals == {
        "cost_usd": total["cost_usd"], "saved_usd": total["saved_usd"], "calls": 4, "cached_calls": 1,
        "hit_rate": 0.25, "unpriced": 0,
    }
    value = dashboard.totals_html.value
    assert f"Spent <b>${total['cost_usd']:,.4f}</b>" in value and f"saved <b>${total['saved_usd']:,.4f}</b>" in value
    assert "<b>4</b> calls" in value and "hit rate <b>25.0%</b>" in value
    assert list(dashboard.costs.index) == ["assistant", "sql-expert", reports.TOTAL]
    dashboard.by.value = "model"
    assert list(dashboard.costs.index) == ["claude-haiku-4-5-20251001", "claude-sonnet-4-6", reports.TOTAL]
    table = dashboard.table.outputs[0]["data"]["text/html"]
    assert "claude-sonnet-4-6" in table and "font-weight: bold" in table
    dashboard.by.value = "day"
    assert dashboard.costs.index.name == "day" and len(dashboard.costs) == 2
    assert dashboard.plot.outputs[0]["data"]["image/png"].startswith("iVBORw0KGgo")  # base64 of a PNG


def test_dashboard_refresh_picks_up_new_calls(orch, open_app):
    dashboard = open_app(widgets.CostDashboard, orch)
    assert dashboard.totals["calls"] == 0 and "Spent <b>$0.0000</b>" in dashboard.totals_html.value
    orch.run_sync("assistant", "Count me")
    dashboard.refresh_button.click()
    assert dashboard.totals["calls"] == 1 and dashboard.totals["cost_usd"] > 0


def test_dashboard_without_matplotlib_says_how_to_get_charts(orch, open_app, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    dashboard = open_app(widgets.CostDashboard, orch)
    assert dashboard.plot.outputs == (
        {"output_type": "display_data", "data": {"text/plain": "pip install 'claude-force-nb[plot]' for charts"},
         "metadata": {}},
    )


def test_dashboard_shows_the_ledger_it_is_given_without_an_orchestrator(filled, make_settings, open_app):
    ledger = Ledger(make_settings())
    dashboard = open_app(widgets.CostDashboard, ledger=ledger)
    assert dashboard.ledger is ledger and dashboard._orchestrator is None  # none was built
    assert dashboard.totals["calls"] == 3 and list(dashboard.costs.index) == ["assistant", "sql-expert", reports.TOTAL]
    dashboard.close()
    assert dashboard._orchestrator is None
    ledger.close()
