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


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(max_concurrent=0), "Settings.max_concurrent=0 is out of range: use a whole number of 1 or more."),
        (dict(max_concurrent=-1), "Settings.max_concurrent=-1 is out of range: use a whole number of 1 or more."),
        (dict(max_concurrent=2.5), "Settings.max_concurrent=2.5 is not a whole number: use one of 1 or more."),
        (dict(budget_usd=float("nan")), "Settings.budget_usd=nan is not a budget: use an amount in USD of 0 or more, "
                                        "or None for no budget."),
        (dict(budget_usd=-5), "Settings.budget_usd=-5 is not a budget"),
        (dict(budget_usd=float("inf")), "Settings.budget_usd=inf is not a budget"),
        (dict(timeout_s=0), "Settings.timeout_s=0 is out of range: use a finite number of seconds, more than 0."),
        (dict(retry_max_wait_s=float("nan")), "Settings.retry_max_wait_s=nan is out of range"),
        (dict(requests_per_minute=0), "Settings.requests_per_minute=0 is out of range: use a whole number of 1 or "
                                      "more, or None for no limit."),
        (dict(max_attempts=0), "Settings.max_attempts=0 is out of range"),
        (dict(max_tokens=None), "Settings.max_tokens=None is not a whole number: use one from 1 to 128,000."),
        (dict(max_tokens=0), "Settings.max_tokens=0 is out of range: use a whole number from 1 to 128,000."),
        (dict(default_model=""), "Settings.default_model='' is not a model id: use an id such as 'claude-sonnet-4-6'."),
        (dict(stream="yes"), "Settings.stream='yes' is not True or False: pass a bool."),
        (dict(cache_secret=b""), "Settings.cache_secret must be non-empty bytes, or None to use the key file."),
        (dict(cache_exclude="code-reviewer"), "Settings.cache_exclude='code-reviewer' is not a set of agent names"),
    ],
)
def test_every_setting_is_checked_when_made_and_replaced(changes, message):
    with pytest.raises(ConfigurationError) as made:
        Settings(**changes)
    assert str(made.value).startswith(message) and "\n" not in str(made.value)
    with pytest.raises(ConfigurationError) as replaced:
        Settings().replace(**changes)
    assert str(replaced.value) == str(made.value)


def test_good_edge_values_are_kept():
    s = Settings(max_concurrent=1, budget_usd=0, retry_base_wait_s=0, requests_per_minute=None,
                 cache_exclude={"code-reviewer"})  # type: ignore[arg-type]
    assert (s.max_concurrent, s.budget_usd, s.cache_exclude) == (1, 0, frozenset({"code-reviewer"}))
    assert type(s.cache_exclude) is frozenset  # a set given is kept immutable, like the rest of Settings


@pytest.mark.parametrize("raw", ["nan", "-5", "inf"])
def test_a_budget_from_the_environment_that_is_not_an_amount_is_refused(monkeypatch, raw):
    monkeypatch.setenv("CLAUDE_FORCE_BUDGET_USD", raw)
    with pytest.raises(ConfigurationError, match=rf"^CLAUDE_FORCE_BUDGET_USD='{raw}' is not a budget: set it to an "
                                                  r"amount in USD of 0 or more, or unset it\.$"):
        Settings.from_env()
