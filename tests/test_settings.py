"""Settings: the environment, paths, and private directories."""

from __future__ import annotations

import os
import stat

import pytest

from claude_force_nb.core.errors import ConfigurationError, InsecurePathError
from claude_force_nb.core.settings import Settings, ensure_private_dir


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
