"""Settings: every knob in one frozen dataclass, read from the environment.

Paths follow XDG unless ``CLAUDE_FORCE_HOME`` is set, in which case everything lives
below it (tests always set it to a tmp dir). The cache secret key file is kept in a
separate ``secrets/`` directory so it never sits next to the data it signs.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, InsecurePathError

__all__ = ["DEFAULT_MODEL", "Settings", "ensure_private_dir"]

DEFAULT_MODEL = "claude-sonnet-4-6"
APP = "claude-force-nb"


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number: set it to e.g. 5.0 or unset it.") from None


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
        raise ConfigurationError(f"{path} exists but is not a directory: remove it or point CLAUDE_FORCE_HOME elsewhere.")
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
    """Configuration for the orchestrator, cache and ledger. Immutable; derive with ``replace``."""

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

    cache_enabled: bool = True
    cache_ttl_s: float = 7 * 24 * 3600.0
    cache_max_bytes: int = 512 * 1024 * 1024
    cache_max_entry_bytes: int = 5 * 1024 * 1024
    cache_exclude: frozenset[str] = frozenset()

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
        if (budget := _env_float("CLAUDE_FORCE_BUDGET_USD")) is not None:
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
