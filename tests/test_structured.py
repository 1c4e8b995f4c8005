"""Structured output through the Orchestrator (schema=): native output_config, the forced-tool
fallback, and replies that do not fit, against FakeAnthropicServer with the real SDK."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from claude_force_nb.core.errors import InvalidSchemaError
from claude_force_nb.core.pricing import UnknownModelWarning
from claude_force_nb.core.schemas import SCHEMA_TOOL_NAME
from claude_force_nb.testing import Fault


def message_bodies(server):
    return [r.body for r in server.requests if r.path.endswith("/v1/messages")]


class Review(BaseModel):
    title: str
    score: float
    tags: list[str]


def test_a_field_list_is_sent_as_output_config_and_data_is_the_validated_dict(orch, server):
    res = orch.run_sync("assistant", "rate this film", schema="title, score float, tags list[str]")
    assert res.ok and set(res.data) == {"title", "score", "tags"}
    assert isinstance(res.data["score"], float) and all(isinstance(t, str) for t in res.data["tags"])
    assert json.loads(res.text) == res.data
    (body,) = message_bodies(server)
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema" and fmt["schema"]["required"] == ["title", "score", "tags"]
    assert "tools" not in body and "tool_choice" not in body


def test_a_pydantic_model_gives_an_instance_and_a_cache_hit_gives_it_again(orch, server):
    first = orch.run_sync("assistant", "review it", schema=Review)
    again = orch.run_sync("assistant", "review it", schema=Review)
    assert isinstance(first.data, Review) and again.cached and again.data == first.data
    assert len(message_bodies(server)) == 1


def test_a_reply_that_does_not_fit_is_a_schema_mismatch_and_is_not_cached(orch, server):
    server.script(Fault(text='{"title": "x", "score": "high"}'), Fault(text="not json at all"))
    bad = orch.run_sync("assistant", "rate", schema="title, score float")
    assert not bad.ok and bad.error_type == "schema_mismatch" and bad.data is None
    assert bad.error.startswith("The reply does not fit the schema: score: ")
    worse = orch.run_sync("assistant", "rate", schema="title, score float")
    assert worse.error_type == "schema_mismatch" and worse.error.startswith("The reply is not JSON")
    good = orch.run_sync("assistant", "rate", schema="title, score float")
    assert good.ok and not good.cached and len(message_bodies(server)) == 3  # the misfits were never cached
    rows = orch.ledger.rows()
    assert [(r["ok"], r["error_type"]) for r in rows] == [(0, "schema_mismatch"), (0, "schema_mismatch"), (1, None)]


def test_a_model_without_native_structured_output_gets_a_forced_tool(orch, server):
    res = orch.run_sync("assistant", "rate", schema=Review, model="claude-3-haiku-20240307")
    assert res.ok and isinstance(res.data, Review) and json.loads(res.text) == res.data.model_dump()
    (body,) = message_bodies(server)
    assert "output_config" not in body
    assert [t["name"] for t in body["tools"]] == [SCHEMA_TOOL_NAME]
    assert body["tool_choice"] == {"type": "tool", "name": SCHEMA_TOOL_NAME}
    assert res.steps == ()  # the forced tool is the answer, not a tool call


def test_a_400_refusing_output_config_is_asked_again_with_the_forced_tool(orch, server):
    server.add_model("claude-vintage-1", structured_outputs=False)
    with pytest.warns(UnknownModelWarning):
        res = orch.run_sync("assistant", "rate", schema="title, score float", model="claude-vintage-1")
    assert res.ok and set(res.data) == {"title", "score"}
    first, second = message_bodies(server)
    assert "output_config" in first and "output_config" not in second
    assert second["tool_choice"]["name"] == SCHEMA_TOOL_NAME
    assert [r["error_type"] for r in orch.ledger.rows()] == ["invalid_request_error", None]
    assert len({r["run_id"] for r in orch.ledger.rows()}) == 1


def test_schema_with_tools_answers_after_the_tool_calls(orch, server):
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value-{key}"

    server.script(Fault(tool_calls=[("lookup", {"key": "a"})]))
    res = orch.run_sync("assistant", "look up a", tools=[lookup], schema="title, score float")
    assert res.ok and set(res.data) == {"title", "score"} and len(res.steps) == 1
    assert all("output_config" in body for body in message_bodies(server))


def test_an_invalid_schema_is_refused_before_sending(orch, server):
    with pytest.raises(InvalidSchemaError, match=r"^Invalid schema string 'title, score floaty'"):
        orch.run_sync("assistant", "rate", schema="title, score floaty")
    assert message_bodies(server) == []
