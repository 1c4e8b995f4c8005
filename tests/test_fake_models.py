"""Tests for claude_force_nb.testing.models: GET /v1/models (paginated), GET /v1/models/{id}, and aliases that
resolve to dated ids, through the REAL anthropic SDK (``client.models.list()`` / ``retrieve()``)."""

from __future__ import annotations

import asyncio
import json

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer

from .fake_support import HAIKU, MODEL, _module_server, client, msgs, parse_sse, raw_request, server  # noqa: F401 (fixtures)

DATED_HAIKU = "claude-haiku-4-5-20251001"


@pytest.fixture
def strict(server):
    """A client that validates every response against the SDK's types."""
    with anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0, _strict_response_validation=True) as c:
        yield c


def test_list_is_newest_first_and_pages_like_the_api(server, strict):
    everything = list(strict.models.list(limit=1000))
    ids = [m.id for m in everything]
    assert len(ids) == len(set(ids)) == 19
    assert [m.created_at for m in everything] == sorted((m.created_at for m in everything), reverse=True)
    assert {MODEL, DATED_HAIKU, "claude-opus-4-6"} <= set(ids) and HAIKU not in ids  # aliases are not listed
    assert {m.lifecycle for m in everything} == {"active", "deprecated"}

    first = strict.models.list(limit=7)
    assert [m.id for m in first.data] == ids[:7] and first.has_more is True
    assert (first.first_id, first.last_id) == (ids[0], ids[6])
    assert [m.id for m in strict.models.list(limit=7)] == ids  # auto-paging follows after_id to the end
    last = strict.models.list(limit=7, after_id=ids[13])
    assert [m.id for m in last.data] == ids[14:] and last.has_more is False
    before = strict.models.list(limit=3, before_id=ids[5])
    assert [m.id for m in before.data] == ids[2:5] and before.has_more is True
    assert [r.path for r in server.requests][-1] == f"/v1/models?before_id={ids[5]}&limit=3"


def test_lifecycle_filter(server, strict):
    retired = [m.id for m in strict.models.list(lifecycle=["retired"])]
    assert "claude-3-5-haiku-20241022" in retired and "claude-sonnet-4-5-20250929" in retired
    assert MODEL not in retired
    both = {m.lifecycle for m in strict.models.list(lifecycle=["active", "retired"], limit=100)}
    assert both == {"active", "retired"}


def test_retrieve_resolves_an_alias_to_the_dated_model(server, strict):
    info = strict.models.retrieve(HAIKU)
    assert (info.id, info.display_name, info.type, info.lifecycle) == (DATED_HAIKU, "Claude Haiku 4.5", "model",
                                                                       "active")
    assert info.max_tokens == 64_000 and info.capabilities.structured_outputs.supported is True
    assert strict.models.retrieve(DATED_HAIKU) == info
    assert strict.models.retrieve(MODEL).id == MODEL  # a 4.6 model has one undated id
    opus = strict.models.retrieve("claude-opus-4-5")
    assert (opus.id, opus.lifecycle, opus.retires_at.year) == ("claude-opus-4-5-20251101", "deprecated", 2027)


def test_unknown_ids_and_bad_pages_are_refused(server, client):
    with pytest.raises(anthropic.NotFoundError) as ei:
        client.models.retrieve("claude-imaginary-9")
    assert (ei.value.type, ei.value.api_message) == ("not_found_error", "model: claude-imaginary-9")
    with pytest.raises(anthropic.NotFoundError, match="Model not found: claude-nope"):
        client.models.list(after_id="claude-nope")
    status, _, payload = raw_request(server, "GET", "/v1/models?limit=0", headers={"x-api-key": "k"})
    assert status == 400 and "limit" in json.loads(payload)["error"]["message"]
    status, _, _ = raw_request(server, "GET", "/v1/models?lifecycle[]=gone", headers={"x-api-key": "k"})
    assert status == 400
    status, _, _ = raw_request(server, "GET", "/v1/models")
    assert status == 401


def test_a_message_to_an_alias_names_the_dated_model(server, client):
    reply = client.messages.create(model=HAIKU, max_tokens=50, messages=msgs("which model?"))
    assert reply.model == DATED_HAIKU
    assert reply.content[0].text.startswith(f"**Offline answer** from `{HAIKU}`.")  # the text is what was asked
    with client.messages.stream(model=HAIKU, max_tokens=50, messages=msgs("which model?")) as stream:
        assert stream.get_final_message().model == DATED_HAIKU
    assert client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x")).model == MODEL
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": {
        "model": HAIKU, "max_tokens": 50, "messages": msgs("batch")}}, {"custom_id": "b", "params": {
            "model": "claude-nope", "max_tokens": 50, "messages": msgs("batch")}}])
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["a"].message.model == DATED_HAIKU
    assert (results["b"].error.error.type, results["b"].error.error.message) == ("not_found_error", "model: claude-nope")


def test_count_tokens_knows_the_models_too(server, client):
    assert client.messages.count_tokens(model=HAIKU, messages=msgs("abcd" * 5)).input_tokens == 5
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-nope", messages=msgs("x"))


def test_add_model_serves_a_new_id_and_its_aliases(server, strict):
    added = server.add_model("claude-imaginary-9-20270101", aliases=("claude-imaginary-9",), max_tokens=1000)
    assert added.id == "claude-imaginary-9-20270101"
    reply = strict.messages.create(model="claude-imaginary-9", max_tokens=1000, messages=msgs("new"))
    assert reply.model == "claude-imaginary-9-20270101"
    assert strict.models.list(limit=1).data[0].id == "claude-imaginary-9-20270101"  # released today: newest
    assert strict.models.retrieve("claude-imaginary-9").display_name == "claude-imaginary-9-20270101"
    with pytest.raises(anthropic.BadRequestError, match="1001 > 1000"):
        strict.messages.create(model="claude-imaginary-9", max_tokens=1001, messages=msgs("new"))


def test_async_models_list_and_retrieve():
    async def main():
        with FakeAnthropicServer() as srv:
            async with anthropic.AsyncAnthropic(api_key="k", base_url=srv.url, max_retries=0,
                                                _strict_response_validation=True) as c:
                ids = [m.id async for m in c.models.list(limit=5)]
                info = await c.models.retrieve("claude-opus-4-6")
                return ids, info

    ids, info = asyncio.run(main())
    assert len(ids) == 19 and ids[0] == "claude-mythos-5-2"
    assert (info.id, info.max_tokens, info.line) == ("claude-opus-4-6", 128_000, "opus")
