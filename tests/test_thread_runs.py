"""Runs in a conversation thread (thread=): history sent before the task, the exchange kept,
across Orchestrators on one home; against FakeAnthropicServer with the real SDK."""

from __future__ import annotations

import pytest

from claude_force_nb.core.errors import InvalidInputError
from claude_force_nb.testing import Fault


def message_bodies(server):
    return [r.body for r in server.requests if r.path.endswith("/v1/messages")]


def texts(messages):
    """(role, text) of each message, whatever its content shape."""
    out = []
    for m in messages:
        content = m["content"]
        out.append((m["role"], content if isinstance(content, str) else "".join(b.get("text", "") for b in content)))
    return out


def test_a_thread_of_three_turns_survives_a_new_orchestrator(make_orch, server):
    first = make_orch()
    answers = [first.run_sync("assistant", f"question {n}", thread="sales").text for n in (1, 2)]
    first.close()

    second = make_orch()  # a new kernel on the same home
    third = second.run_sync("assistant", "question 3", thread="sales", notebook="analysis.ipynb")
    assert third.ok
    body = message_bodies(server)[-1]
    assert texts(body["messages"]) == [("user", "question 1"), ("assistant", answers[0]),
                                       ("user", "question 2"), ("assistant", answers[1]),
                                       ("user", "question 3")]
    assert body["messages"][3]["content"][-1]["cache_control"] == {"type": "ephemeral"}  # history marked
    turns = second.threads.turns("sales")
    assert [(t.user, t.assistant) for t in turns] == [("question 1", answers[0]), ("question 2", answers[1]),
                                                       ("question 3", third.text)]
    assert second.threads.latest(notebook="analysis.ipynb") == "sales"


def test_a_rerun_cell_replaces_its_turn_and_is_asked_in_its_own_context(orch, server):
    orch.run_sync("assistant", "first", thread="t", cell_id="c1")
    orch.run_sync("assistant", "second", thread="t", cell_id="c2")
    orch.run_sync("assistant", "second, reworded", thread="t", cell_id="c2")
    assert [t.user for t in orch.threads.turns("t")] == ["first", "second, reworded"]
    last = message_bodies(server)[-1]
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "user"]  # not its own old turn


def test_a_failed_run_does_not_join_the_thread(orch, server):
    server.script(Fault(status=400))
    res = orch.run_sync("assistant", "fails", thread="t")
    assert not res.ok
    assert orch.threads.names() == []


def test_the_history_budget_is_a_setting(make_orch, server):
    orch = make_orch(thread_history_tokens=0)
    orch.run_sync("assistant", "one", thread="t")
    orch.run_sync("assistant", "two", thread="t")
    assert texts(message_bodies(server)[-1]["messages"]) == [("user", "two")]
    assert len(orch.threads.turns("t")) == 2


def test_a_thread_run_with_tools_keeps_the_question_and_the_final_answer(orch, server):
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value-{key}"

    server.script_tools(("lookup", {"key": "a"}))
    res = orch.run_sync("assistant", "look up a", thread="t", tools=[lookup])
    (turn,) = orch.threads.turns("t")
    assert (turn.user, turn.assistant) == ("look up a", res.text) and "value-a" in res.text


def test_a_bad_thread_name_is_refused_before_sending(orch, server):
    with pytest.raises(InvalidInputError, match="cannot name a thread"):
        orch.run_sync("assistant", "hi", thread="my thread!")
    assert message_bodies(server) == []
