"""Public surface, pricing and settings (limits and retry rules: test_limits.py, test_retry.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

import claude_force_nb
from claude_force_nb.core.errors import (
    ConfigurationError,
    InsecurePathError,
)
from claude_force_nb.core.pricing import PriceTable, UnknownModelWarning, cost_of
from claude_force_nb.core.results import Usage
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
