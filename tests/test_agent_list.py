"""The agent list DataFrame (views/agent_list.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_force_nb.core.agents import AgentRegistry
from claude_force_nb.views.agent_list import AGENT_COLUMNS, agent_list

from .test_agents import md, write


@pytest.fixture
def reg(tmp_path: Path):
    def make() -> AgentRegistry:
        return AgentRegistry(tmp_path / "proj", user_dir=tmp_path / "user-agents", include_builtin=False)

    return make


@pytest.fixture
def pagents(tmp_path: Path) -> Path:
    return tmp_path / "proj" / ".claude" / "agents"


@pytest.fixture
def udir(tmp_path: Path) -> Path:
    return tmp_path / "user-agents"


def test_frame_columns_and_values(reg, pagents: Path, udir: Path) -> None:
    b = write(pagents / "beta.md", md("Beta prompt.", description="B agent", model="haiku"))
    a = write(udir / "alpha.md", "Alpha!")
    df = agent_list(reg())
    assert list(df.columns) == list(AGENT_COLUMNS) == ["name", "source", "path", "model", "description", "chars"]
    assert df.to_dict("records") == [
        {"name": "alpha", "source": "user", "path": str(a.resolve()), "model": None, "description": "", "chars": 6},
        {
            "name": "beta",
            "source": "project",
            "path": str(b.resolve()),
            "model": "claude-haiku-4-5",
            "description": "B agent",
            "chars": 12,
        },
    ]
    assert str(df["chars"].dtype) == "int64"


def test_frame_of_empty_registry_has_the_columns(reg) -> None:
    df = agent_list(reg())
    assert list(df.columns) == list(AGENT_COLUMNS) and len(df) == 0
