"""Settings: every knob in one frozen dataclass, read from the environment.

Paths follow XDG unless ``CLAUDE_FORCE_HOME`` is set, in which case everything lives
below it (tests always set it to a tmp dir). The cache secret key file is kept in a
separate ``secrets/`` directory so it never sits next to the data it signs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, InsecurePathError
from .options import MAX_OUTPUT_TOKENS, flag_problem, max_steps_problem, max_tokens_problem, model_problem

__all__ = ["DEFAULT_MODEL", "Settings", "budget_problem", "ensure_private_dir", "setting_problem"]

DEFAULT_MODEL = "claude-sonnet-4-6"
APP = "claude-force-nb"


def _env_budget(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number: set it to e.g. 5.0 or unset it.") from None
    if budget_problem(value) is not None:
        raise ConfigurationError(
            f"{name}={raw!r} is not a budget: set it to an amount in USD of 0 or more, or unset it."
        )
    return value


# -- the one rule each setting follows ----------------------------------------------------
# Each check returns why a value cannot be used, with the fix, or None. Settings put
# "Settings." in front; the notebook's %config traits put "AgentMagics." (same rules).

Check = Callable[[object], str | None]


def _whole(name: str, low: int, *, optional: bool = False) -> Check:
    unset = ", or None for no limit" if optional else ""

    def problem(value: object) -> str | None:
        if optional and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name}={value!r} is not a whole number: use one of {low} or more{unset}."
        if value < low:
            return f"{name}={value!r} is out of range: use a whole number of {low} or more{unset}."
        return None

    return problem


def _seconds(name: str, *, zero: bool) -> Check:
    least = "0 or more" if zero else "more than 0"

    def problem(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name}={value!r} is not a number: use a number of seconds, {least}."
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            return f"{name}={value!r} is out of range: use a finite number of seconds, {least}."
        return None

    return problem


def budget_problem(value: object) -> str | None:
    """Why ``value`` cannot be a budget in USD, with the fix; None if it can (None: no budget)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"budget_usd={value!r} is not a number: use an amount in USD such as 5.0, or None for no budget."
    if not math.isfinite(value) or value < 0:
        return f"budget_usd={value!r} is not a budget: use an amount in USD of 0 or more, or None for no budget."
    return None


def _text(name: str, *, optional: bool) -> Check:
    def problem(value: object) -> str | None:
        if (optional and value is None) or isinstance(value, str):
            return None
        return f"{name} must be text{' or None' if optional else ''}, not {type(value).__name__}."

    return problem


def _max_tokens(value: object) -> str | None:
    if value is None:
        return f"max_tokens=None is not a whole number: use one from 1 to {MAX_OUTPUT_TOKENS:,}."
    return max_tokens_problem(value)


def _model(value: object) -> str | None:
    if value in (None, "") or model_problem(value) is not None:
        return f"default_model={value!r} is not a model id: use an id such as 'claude-sonnet-4-6'."
    return None


def _path(name: str) -> Check:
    def problem(value: object) -> str | None:
        if isinstance(value, (str, os.PathLike)) and str(value):
            return None
        return f"{name}={value!r} is not a path: pass a pathlib.Path or a str."

    return problem


def _secret(value: object) -> str | None:
    if value is None or (isinstance(value, bytes) and value):
        return None
    return "cache_secret must be non-empty bytes, or None to use the key file."


def _names(value: object) -> str | None:
    if isinstance(value, frozenset) and all(isinstance(n, str) for n in value):
        return None
    return f"cache_exclude={value!r} is not a set of agent names: pass e.g. frozenset({{'code-reviewer'}})."


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _redis_url(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.startswith(REDIS_SCHEMES) and len(value) > 8):
        return None
    shown = value.split("@")[-1] if isinstance(value, str) else value   # never echo a password
    return (f"redis_url={shown!r} is not a Redis URL: use redis://host:6379/0, rediss://host:6380/0 (TLS) "
            "or unix:///path/to/redis.sock, or None for no team tier.")


_SETTING_CHECKS: dict[str, Check] = {
    "api_key": _text("api_key", optional=True),
    "base_url": _text("base_url", optional=True),
    "offline": flag_problem("offline"),
    "data_dir": _path("data_dir"),
    "secrets_dir": _path("secrets_dir"),
    "cache_secret": _secret,
    "default_model": _model,
    "max_tokens": _max_tokens,
    "max_concurrent": _whole("max_concurrent", 1),
    "timeout_s": _seconds("timeout_s", zero=False),
    "connect_timeout_s": _seconds("connect_timeout_s", zero=False),
    "max_attempts": _whole("max_attempts", 1),
    "retry_base_wait_s": _seconds("retry_base_wait_s", zero=True),
    "retry_max_wait_s": _seconds("retry_max_wait_s", zero=True),
    "stream": flag_problem("stream"),
    "circuit_failures": _whole("circuit_failures", 1),
    "circuit_reset_s": _seconds("circuit_reset_s", zero=True),
    "requests_per_minute": _whole("requests_per_minute", 1, optional=True),
    "tokens_per_minute": _whole("tokens_per_minute", 1, optional=True),
    "budget_usd": budget_problem,
    "max_task_chars": _whole("max_task_chars", 1),
    "max_steps": lambda value: (
        max_steps_problem(value) or (None if value is not None else "max_steps=None: use e.g. 10.")
    ),
    "tool_timeout_s": _seconds("tool_timeout_s", zero=False),
    "thread_history_tokens": _whole("thread_history_tokens", 0),
    "cache_enabled": flag_problem("cache_enabled"),
    "cache_ttl_s": _seconds("cache_ttl_s", zero=False),
    "cache_max_bytes": _whole("cache_max_bytes", 1),
    "cache_max_entry_bytes": _whole("cache_max_entry_bytes", 1),
    "cache_exclude": _names,
    "redis_url": _redis_url,
    "redis_timeout_s": _seconds("redis_timeout_s", zero=False),
    "redis_retry_s": _seconds("redis_retry_s", zero=True),
    "redis_stream_maxlen": _whole("redis_stream_maxlen", 1),
    "team_user": _text("team_user", optional=True),
}


def setting_problem(name: str, value: object) -> str | None:
    """Why ``value`` cannot be the setting ``name``, with the fix (None: it can, or it has no rule)."""
    check = _SETTING_CHECKS.get(name)
    return None if check is None else check(value)


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


def _default_dirs() -> tuple[Path, Path]:
    """(data_dir, secrets_dir) for this user."""
    home = os.environ.get("CLAUDE_FORCE_HOME")
    if home:
        root = Path(home).expanduser()
        return root, root / "secrets"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return cache / APP, config / APP


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check an existing one is safe to keep data in.

    Refused: a symlink to a directory owned by another user, or a directory that group
    or others may write (anyone could then plant cache rows or swap files).
    """
    path = Path(path)
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path
    real = path.resolve()
    st = real.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigurationError(
            f"{path} exists but is not a directory: remove it or point CLAUDE_FORCE_HOME elsewhere."
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecurePathError(
            f"{path} (resolves to {real}) belongs to another user: point CLAUDE_FORCE_HOME at a directory you own."
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecurePathError(
            f"{real} is writable by group or others: run `chmod 700 {real}` or choose another CLAUDE_FORCE_HOME."
        )
    return path


@dataclass(frozen=True)
class Settings:
    """Configuration for the orchestrator, cache and ledger. Immutable; derive with ``replace``.

    Every value is checked when the Settings are made (``replace`` included): a bad one is
    refused with a ConfigurationError that names the setting and the fix.
    """

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    offline: bool = False
    data_dir: Path = field(default_factory=lambda: _default_dirs()[0])
    secrets_dir: Path = field(default_factory=lambda: _default_dirs()[1])
    cache_secret: bytes | None = field(default=None, repr=False)

    default_model: str = DEFAULT_MODEL
    max_tokens: int = 1024
    max_concurrent: int = 8
    timeout_s: float = 120.0          # per attempt
    stream_idle_timeout_s: float = 120.0  # longest gap between two stream events (pings are no progress)
    stream_deadline_s: float | None = None  # one streamed attempt at most; None: timeout_s + max_tokens / 10 s
    connect_timeout_s: float = 5.0
    max_attempts: int = 4             # first try + 3 retries
    retry_base_wait_s: float = 0.5    # first backoff step without a server hint (then x2, jittered)
    retry_max_wait_s: float = 20.0    # cap on any single wait, retry-after included
    stream: bool = True
    circuit_failures: int = 5         # consecutive failed calls that open the breaker
    circuit_reset_s: float = 30.0
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    budget_usd: float | None = None
    max_task_chars: int = 200_000
    max_steps: int = 10               # model turns of one tool loop at most
    tool_timeout_s: float = 60.0      # one tool call at most (a Tool's own timeout_s wins)
    thread_history_tokens: int = 8_000  # estimated tokens of thread history resent with a call

    cache_enabled: bool = True
    cache_ttl_s: float = 7 * 24 * 3600.0
    cache_max_bytes: int = 512 * 1024 * 1024
    cache_max_entry_bytes: int = 5 * 1024 * 1024
    cache_exclude: frozenset[str] = frozenset()

    # The team tier (store.redis_tier, store.team_ledger): off while redis_url is None.
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_timeout_s: float = 0.05     # one Redis lookup at most; then the tier's circuit opens
    redis_retry_s: float = 5.0        # an open circuit tries Redis again after this long
    redis_stream_maxlen: int = 1_000_000  # team ledger stream length, approximately (XADD MAXLEN ~)
    team_user: str | None = None      # the user named in team ledger rows; None: the login name

    def __post_init__(self) -> None:
        if isinstance(self.cache_exclude, (set, list, tuple)):  # any collection of names will do
            object.__setattr__(self, "cache_exclude", frozenset(self.cache_exclude))
        for f in dataclasses.fields(self):
            if (message := setting_problem(f.name, getattr(self, f.name))) is not None:
                raise ConfigurationError(f"Settings.{message}")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from the environment (ANTHROPIC_*, CLAUDE_FORCE_*), then ``overrides``."""
        values: dict[str, Any] = {
            "api_key": os.environ.get("ANTHROPIC_API_KEY") or None,
            "base_url": os.environ.get("ANTHROPIC_BASE_URL") or None,
            "offline": _truthy(os.environ.get("CLAUDE_FORCE_OFFLINE")),
        }
        secret = os.environ.get("CLAUDE_FORCE_CACHE_SECRET")
        if secret:
            values["cache_secret"] = secret.encode()
        if model := os.environ.get("CLAUDE_FORCE_MODEL"):
            values["default_model"] = model
        if redis_url := os.environ.get("CLAUDE_FORCE_REDIS_URL"):
            values["redis_url"] = redis_url
        if team_user := os.environ.get("CLAUDE_FORCE_USER"):
            values["team_user"] = team_user
        if (budget := _env_budget("CLAUDE_FORCE_BUDGET_USD")) is not None:
            values["budget_usd"] = budget
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def cache_path(self) -> Path:
        return Path(self.data_dir) / "cache.sqlite3"

    @property
    def ledger_path(self) -> Path:
        return Path(self.data_dir) / "ledger.sqlite3"

    @property
    def key_path(self) -> Path:
        return Path(self.secrets_dir) / "cache.key"

    @property
    def prices_path(self) -> Path:
        """A user's prices.json that overrides or adds models."""
        return Path(self.data_dir) / "prices.json"
