"""Shared fixtures: every test runs with a private home, no real credentials, and a
real FakeAnthropicServer on 127.0.0.1 when it asks for one."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.core.settings import Settings
from claude_force_nb.engine.orchestrator import Orchestrator
from claude_force_nb.testing import FakeAnthropicServer

from .kernels import Kernel, write_kernelspec

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "sk-ant-test-NEVER-LOGGED-7f3a9c"

ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_PROFILE",
    "CLAUDE_FORCE_OFFLINE",
    "CLAUDE_FORCE_CACHE_SECRET",
    "CLAUDE_FORCE_MODEL",
    "CLAUDE_FORCE_BUDGET_USD",
    "CLAUDE_FORCE_REDIS_URL",
    "CLAUDE_FORCE_USER",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
)


def pytest_report_header(config: pytest.Config) -> str:
    return f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CLAUDE_FORCE_HOME and HOME in tmp; no inherited API credentials; cwd a tmp project."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "cf-home"
    monkeypatch.setenv("CLAUDE_FORCE_HOME", str(home))
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "anthropic-config"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return home


@pytest.fixture
def server() -> FakeAnthropicServer:
    with FakeAnthropicServer() as srv:
        yield srv


@pytest.fixture
def make_settings(tmp_path: Path, server: FakeAnthropicServer):
    """Settings pointing at the fake server, with fast retries; override any field."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = dict(
            api_key=TEST_KEY,
            base_url=server.url,
            data_dir=tmp_path / "cf-home",
            secrets_dir=tmp_path / "cf-home" / "secrets",
            cache_secret=b"test-secret-0123456789abcdef0123",
            retry_base_wait_s=0.01,
            retry_max_wait_s=0.5,
            timeout_s=10.0,
        )
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def make_orch(make_settings, tmp_path: Path):
    """Orchestrators on the fake server; closed after the test."""
    made: list[Orchestrator] = []

    def make(**overrides: object) -> Orchestrator:
        orch = Orchestrator(
            make_settings(**overrides),
            registry=AgentRegistry(tmp_path / "project", user_dir=tmp_path / "user-agents"),
        )
        made.append(orch)
        return orch

    yield make
    for orch in made:
        orch.close()


@pytest.fixture
def orch(make_orch) -> Orchestrator:
    return make_orch()


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeAnthropicServer):
    """A real ipykernel (this interpreter) with the extension loaded, talking to ``server``."""
    jupyter_path = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("CLAUDE_FORCE_CACHE_SECRET", "kernel-test-secret")
    k = Kernel(write_kernelspec(jupyter_path), cwd=os.getcwd())
    assert k.run("%load_ext claude_force_nb").ok
    yield k
    k.shutdown()


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in the main thread, as in a terminal or a kernel. A test
    run started in the background by a shell without job control inherits SIGINT ignored,
    and Python then leaves it ignored."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
