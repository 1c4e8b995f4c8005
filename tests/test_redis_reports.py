"""Team reports and the %agent team subcommands, over a real redis-server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from claude_force_nb.core.errors import ConfigurationError
from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.ledger import Ledger
from claude_force_nb.views import reports

from .redis_support import redis_server  # noqa: F401
from .test_magics import ip  # noqa: F401

SECRET = b"team-secret-0123456789abcdef-xyz"


def _ledger(tmp_path, user: str, url: str | None) -> Ledger:
    home = tmp_path / user
    return Ledger(Settings(data_dir=home, secrets_dir=home / "s", cache_secret=SECRET, redis_url=url, team_user=user))


def _call(agent: str, model: str, cost: float, saved: float = 0.0, cached: bool = False) -> AgentResult:
    return AgentResult(agent=agent, model=model, text="x", usage=Usage(100, 10), cost_usd=cost, saved_usd=saved,
                       cached=cached, latency_s=0.1, stop_reason="end_turn")


@pytest.fixture
def team(tmp_path, redis_server):
    alice, bob = _ledger(tmp_path, "alice", redis_server.url), _ledger(tmp_path, "bob", redis_server.url)
    alice.record_many([(_call("writer", "claude-haiku-4-5", 0.5), "a1"), (_call("critic", "claude-sonnet-4-6", 1.5), "a2")])
    bob.record_many([(_call("writer", "claude-haiku-4-5", 0.0, saved=0.5, cached=True), "a1")])
    yield alice, bob
    alice.close(), bob.close()


def test_team_costs_by_user_agent_model_and_day(team):
    alice, _ = team
    by_user = reports.costs(by="user", scope="team", ledger=alice)
    assert by_user.loc["alice", "cost_usd"] == pytest.approx(2.0) and by_user.loc["bob", "saved_usd"] == pytest.approx(0.5)
    assert by_user.loc["TOTAL", "calls"] == 3 and by_user.loc["bob", "cached_calls"] == 1
    by_agent = reports.costs(by="agent", scope="team", ledger=alice)
    assert by_agent.loc["writer", "calls"] == 2 and by_agent.loc["writer", "hit_rate"] == pytest.approx(0.5)
    assert reports.costs(by="model", scope="team", ledger=alice).loc["claude-sonnet-4-6", "cost_usd"] == pytest.approx(1.5)
    assert reports.costs(by="day", scope="team", ledger=alice).loc["TOTAL", "cost_usd"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="user"):
        reports.costs(by="user", ledger=alice)                  # one person's ledger has no users


def test_team_runs_have_user_and_host_and_filter(team):
    alice, _ = team
    frame = reports.runs(scope="team", ledger=alice)
    assert list(frame["user"]) == ["alice", "alice", "bob"] and frame.index.name == "uid"
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]" and frame["host"].notna().all()
    assert list(reports.runs(scope="team", agent="critic", ledger=alice)["user"]) == ["alice"]
    with pytest.raises(ValueError, match="scope"):
        reports.runs(scope="everyone", ledger=alice)


def test_team_scope_without_redis_is_one_clear_line(tmp_path):
    solo = _ledger(tmp_path, "solo", None)
    with pytest.raises(ConfigurationError, match="CLAUDE_FORCE_REDIS_URL"):
        reports.runs(scope="team", ledger=solo)
    solo.close()


@pytest.fixture
def team_env(redis_server, monkeypatch):
    """The team tier for the shell the ``ip`` fixture starts (requested before it)."""
    monkeypatch.setenv("CLAUDE_FORCE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("CLAUDE_FORCE_USER", "gina")


def test_cache_stats_per_tier_team_costs_and_team_clear(team_env, ip, redis_server):
    with capture_output():
        ip.run_cell_magic("agent", "assistant", "to share")
    orch = ip.magics_manager.registry["AgentMagics"].orchestrator
    orch.cache.clear()                                      # gone locally: the next run is a Redis hit
    with capture_output():
        ip.run_cell_magic("agent", "assistant", "to share")
    with capture_output() as cap:
        stats = ip.run_line_magic("agent", "cache stats")
    assert stats["redis"]["hits"] == 1 and "Hits per tier: local 0, Redis 1" in cap.stdout
    costs = ip.run_line_magic("agent", "costs --team --by user")
    assert costs.loc["gina", "calls"] == 2 and costs.loc["gina", "cached_calls"] == 1
    with pytest.raises(UsageError, match="--team --yes"):
        ip.run_line_magic("agent", "cache clear --team")
    with capture_output() as cap:
        ip.run_line_magic("agent", "cache clear --team --yes")
    assert "Removed 1 team cache entries" in cap.stdout
    assert list(redis_server.client().scan_iter(match="cfnb:v1:*:v1:*")) == []
    assert ip.run_line_magic("agent", "costs --team").loc["TOTAL", "calls"] == 2   # the team ledger is kept


def test_the_dashboard_has_a_team_view(team):
    from claude_force_nb.notebook.widgets import CostDashboard

    alice, _bob = team
    board = CostDashboard(ledger=alice)
    assert board.scope.options == ("me", "team") and board.totals["calls"] == 2
    board.scope.value = "team"
    assert board.totals["calls"] == 3 and board.totals["cost_usd"] == 2.0 and board.totals["saved_usd"] == 0.5
    assert board.by.options == ("agent", "model", "day", "user")
    board.by.value = "user"
    assert board.costs is not None and list(board.costs.index) == ["alice", "bob", "TOTAL"]
    board.scope.value = "me"
    assert board.by.value == "agent" and board.totals["calls"] == 2
    board.close()


def test_the_dashboard_without_a_team_offers_only_this_home(tmp_path):
    from claude_force_nb.notebook.widgets import CostDashboard

    board = CostDashboard(ledger=_ledger(tmp_path, "solo", None))
    assert board.scope.options == ("me",)
    board.close()
