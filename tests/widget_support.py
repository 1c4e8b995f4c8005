"""Fixtures shared by the widget app tests (tests/test_widgets_*.py).

ipywidgets 8 creates widgets without a kernel (they get a DummyComm), so the apps are
driven exactly as a user would: set ``.value``, ``button.click()``, wait on the Future.
"""

from __future__ import annotations

import pytest

TIMEOUT = 15


def markdown(output: dict) -> str:
    return output["data"]["text/markdown"]


def sent_task(request) -> str:
    return request.body["messages"][0]["content"]


@pytest.fixture
def open_app():
    """``open_app(widgets.CacheBrowser, orch)``: an app opened for the test, closed after it."""
    made: list = []

    def open_(cls, *args, **kwargs):
        app = cls(*args, **kwargs)
        made.append(app)
        return app

    yield open_
    for app in made:
        app.close()


@pytest.fixture
def filled(orch):
    """An orchestrator whose cache and ledger hold three answers (two agents, two models)."""
    orch.run_many_sync([
        ("assistant", "What is a p-value?", {"model": "claude-haiku-4-5"}),
        ("sql-expert", "Index for a join on customer_id", {"model": "claude-haiku-4-5"}),
        ("assistant", "Explain bootstrapping", {"model": "claude-sonnet-4-6"}),
    ])
    return orch
