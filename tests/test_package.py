"""Public surface, pricing, settings, limits and the retry rules."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys

import anthropic
import httpx2
import pytest

import claude_force_nb
from claude_force_nb.core.errors import (
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    IncompleteResponseError,
    InsecurePathError,
)
from claude_force_nb.engine.limits import BudgetGuard, RateLimiter
from claude_force_nb.core.pricing import PriceTable, UnknownModelWarning, cost_of
from claude_force_nb.core.results import Usage
from claude_force_nb.engine.retry import CircuitBreaker, is_retryable, server_wait_hint
from claude_force_nb.core.settings import Settings, ensure_private_dir

from .conftest import ROOT


def test_all_is_sorted_and_every_name_resolves():
    names = claude_force_nb.__all__
    assert names == sorted(names, key=str.casefold) or names == sorted(names)
    for name in names:
        assert getattr(claude_force_nb, name) is not None
    for name in ("Orchestrator", "Settings", "AgentResult", "Usage", "AgentRegistry", "ResponseCache", "Ledger", "reports"):
        assert name in names


def test_importing_the_package_loads_neither_the_sdk_nor_pandas():
    code = "import sys, claude_force_nb; print('anthropic' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- pricing -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "model,usage,expected",
    [
        ("claude-sonnet-4-6", Usage(1_000_000, 0), 3.0),
        ("claude-sonnet-4-6", Usage(0, 1_000_000), 15.0),
        ("claude-sonnet-4-6", Usage(1000, 500, 100, 0, 2000), 0.011475),
        ("claude-opus-4-6", Usage(10, 20, 30, 40, 50), 0.0011625),
        ("claude-haiku-4-5-20251001", Usage(1234, 567), 0.004069),
        ("claude-opus-4-5-20251101", Usage(0, 0, 0, 1_000_000, 0), 10.0),
    ],
)
def test_cost_is_exact(model, usage, expected):
    assert cost_of(model, usage) == expected


def test_batch_is_half_price():
    assert cost_of("claude-sonnet-4-6", Usage(1000, 500), batch=True) == 0.00525


def test_unknown_model_is_none_with_one_warning():
    table = PriceTable.load()
    with pytest.warns(UnknownModelWarning, match="claude-nope"):
        assert table.cost("claude-nope", Usage(1, 1)) is None
    assert table.cost("claude-nope", Usage(1, 1)) is None  # no second warning (warnings are errors here)


def test_user_prices_override_and_add(tmp_path):
    override = tmp_path / "prices.json"
    override.write_text('{"models": {"claude-haiku-4-5": {"input": 2, "output": 10, "cache_write_5m": 2.5, '
                        '"cache_write_1h": 4, "cache_read": 0.2}, "my-proxy-model": {"input": 1, "output": 1, '
                        '"cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1}}}')
    table = PriceTable.load(override)
    assert table.cost("claude-haiku-4-5", Usage(1_000_000, 0)) == 2.0
    assert table.cost("my-proxy-model", Usage(500_000, 500_000)) == 1.0
    assert table.cost("claude-sonnet-4-6", Usage(1_000_000, 0)) == 3.0


def test_bad_price_file_names_the_problem(tmp_path):
    override = tmp_path / "prices.json"
    override.write_text('{"models": {"m": {"input": 1}}}')
    with pytest.raises(ConfigurationError, match="lacks output"):
        PriceTable.load(override)


def test_usage_from_api_splits_cache_writes():
    u = Usage.from_api({"input_tokens": 5, "output_tokens": 6, "cache_creation_input_tokens": 30,
                        "cache_read_input_tokens": 7, "cache_creation": {"ephemeral_5m_input_tokens": 10,
                                                                         "ephemeral_1h_input_tokens": 20}})
    assert u == Usage(5, 6, 10, 20, 7) and u.total_input_tokens == 42
    assert Usage.from_api({"input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 9}).cache_write_5m_tokens == 9


# -- settings ------------------------------------------------------------------------------------

def test_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("CLAUDE_FORCE_MODEL", "claude-haiku-4-5")
    monkeypatch.setenv("CLAUDE_FORCE_OFFLINE", "1")
    monkeypatch.setenv("CLAUDE_FORCE_BUDGET_USD", "2.5")
    s = Settings.from_env(max_concurrent=3)
    assert (s.api_key, s.default_model, s.offline, s.budget_usd, s.max_concurrent) == ("k", "claude-haiku-4-5", True, 2.5, 3)
    assert s.cache_path == tmp_path / "cf-home" / "cache.sqlite3" and s.key_path.parent.name == "secrets"
    assert "k'" not in repr(s) and "api_key" not in repr(s)


def test_bad_budget_env_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CLAUDE_FORCE_BUDGET_USD", "lots")
    with pytest.raises(ConfigurationError, match="CLAUDE_FORCE_BUDGET_USD='lots' is not a number"):
        Settings.from_env()


def test_private_dir_created_0700_and_world_writable_refused(tmp_path):
    d = ensure_private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(InsecurePathError, match="chmod 700"):
        ensure_private_dir(open_dir)


# -- limits and retry rules ---------------------------------------------------------------------

def test_rate_limiter_waits_for_the_window():
    now = [0.0]
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=1000, clock=lambda: now[0])
    assert limiter._delay(100, now[0]) == 0
    limiter._events.extend([(0.0, 100), (10.0, 100)])
    limiter._tokens_in_window = 200
    assert limiter._delay(100, 20.0) == 40.0  # third request waits until the first leaves
    assert limiter._delay(900, 61.0) == 0.0   # the 0 s event left the window
    assert limiter._delay(950, 61.0) == 9.0   # tokens: wait for the 10 s event to leave
    waited = asyncio.run(RateLimiter(requests_per_minute=None).acquire(5))
    assert waited == 0.0


def test_budget_guard_counts_in_flight_reservations():
    guard = BudgetGuard(1.0)
    first = guard.reserve(0.6, "m")
    with pytest.raises(BudgetExceededError, match="\\$0.4000 is left"):
        guard.reserve(0.5, "m")
    guard.settle(first, 0.1)
    assert guard.spent_usd == 0.1 and guard.reserve(0.5, "m") == 0.5


def _status_error(status: int, headers: dict[str, str] | None = None, etype: str | None = None):
    request = httpx2.Request("POST", "http://x/v1/messages")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    body = {"type": "error", "error": {"type": etype or "api_error", "message": "m"}}
    return anthropic.APIStatusError("m", response=response, body=body)


@pytest.mark.parametrize("status,expected", [(400, False), (401, False), (403, False), (404, False), (413, False),
                                             (422, False), (408, True), (409, True), (429, True), (500, True),
                                             (529, True)])
def test_retry_rule_by_status(status, expected):
    assert is_retryable(_status_error(status)) is expected


def test_retry_rule_for_streams_transport_and_hints():
    assert is_retryable(_status_error(200, etype="overloaded_error"))
    assert not is_retryable(_status_error(200, etype="invalid_request_error"))
    assert is_retryable(httpx2.RemoteProtocolError("peer closed"))
    assert is_retryable(IncompleteResponseError("cut"))
    assert not is_retryable(ValueError("bug"))
    assert not is_retryable(_status_error(529, {"x-should-retry": "false"}))
    assert server_wait_hint(_status_error(429, {"retry-after-ms": "250"})) == 0.25
    assert server_wait_hint(_status_error(429, {"retry-after": "3"})) == 3.0


def test_circuit_breaker_states():
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, reset_s=10, clock=lambda: now[0])
    breaker.record(ok=False)
    breaker.before_call()
    breaker.record(ok=False)
    with pytest.raises(CircuitOpenError, match="failed 2 times in a row"):
        breaker.before_call()
    now[0] = 10.0
    breaker.before_call()  # half-open: one probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    breaker.record(ok=True)
    assert breaker.state == "closed"
