"""Tests for claude_force_nb.testing.answers: the deterministic answer, token counts, prompt cache and directives,
driven by the REAL anthropic SDK over HTTP."""

from __future__ import annotations

import math

import anthropic

from claude_force_nb.testing import FakeAnthropicServer, Fault, RecordedRequest

from .fake_support import HAIKU, MODEL, _module_server, client, expected_tokens, msgs, server  # noqa: F401 (fixtures)


def test_create_is_deterministic_and_counts_usage(server, client):
    question = "What is the capital of France?"
    m1 = client.messages.create(model=MODEL, max_tokens=512, messages=msgs(question))
    m2 = client.messages.create(model=MODEL, max_tokens=512, messages=msgs(question))

    text = m1.content[0].text
    assert m1.type == "message" and m1.role == "assistant" and m1.model == MODEL
    assert m1.id.startswith("msg_") and m1.id != m2.id
    assert text == m2.content[0].text
    assert text.startswith(f"**Offline answer** from `{MODEL}`.")
    assert f'"{question}"' in text
    assert m1.stop_reason == "end_turn" and m1.stop_sequence is None
    assert m1.usage.input_tokens == expected_tokens(question) == 8
    assert m1.usage.output_tokens == len(text.split())
    assert m1.usage.cache_creation_input_tokens == 0
    assert m1.usage.cache_read_input_tokens == 0
    assert m1.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert m1.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert m1.usage.service_tier == "standard"
    assert m1._request_id.startswith("req_") and m1._request_id != m2._request_id

    assert server.request_count == 2
    rec = server.requests[0]
    assert isinstance(rec, RecordedRequest)
    assert (rec.method, rec.path) == ("POST", "/v1/messages")
    assert rec.body == {"model": MODEL, "max_tokens": 512, "messages": msgs(question)}
    assert rec.headers["authorization"] == "Bearer test-key"
    assert "anthropic-version" in rec.headers


def test_answer_depends_on_request_and_is_pure_across_servers(server, client):
    a = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("alpha"))
    b = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("beta"))
    h = client.messages.create(model=HAIKU, max_tokens=512, messages=msgs("alpha"))
    assert a.content[0].text != b.content[0].text
    assert h.content[0].text.startswith(f"**Offline answer** from `{HAIKU}`.")
    with FakeAnthropicServer() as other:
        with anthropic.Anthropic(api_key="k2", base_url=other.url, max_retries=0) as c2:
            again = c2.messages.create(model=MODEL, max_tokens=512, messages=msgs("alpha"))
    assert again.content[0].text == a.content[0].text


def test_system_and_block_content_count_towards_input_tokens(server, client):
    system = "You are terse." * 3
    content = [{"type": "text", "text": "first part"}, {"type": "text", "text": "second part!"}]
    m = client.messages.create(model=MODEL, max_tokens=512, system=system,
                               messages=[{"role": "user", "content": content}])
    assert m.usage.input_tokens == expected_tokens(system, "first part", "second part!")
    assert '"first part second part!"' in m.content[0].text


def test_stop_sequences(server, client):
    full = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("stop here")).content[0].text
    m = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("stop here"),
                               stop_sequences=["nope-not-there", "You asked"])
    assert m.stop_reason == "stop_sequence"
    assert m.stop_sequence == "You asked"
    assert m.content[0].text == full[: full.index("You asked")] == f"**Offline answer** from `{MODEL}`. "
    assert m.usage.output_tokens == 4


def test_max_tokens_truncation(server, client):
    full = client.messages.create(model=MODEL, max_tokens=512, messages=msgs("long one")).content[0].text
    m = client.messages.create(model=MODEL, max_tokens=5, messages=msgs("long one"))
    assert m.stop_reason == "max_tokens"
    assert m.content[0].text == " ".join(full.split()[:5])
    assert m.usage.output_tokens == 5
    zero = client.messages.create(model=MODEL, max_tokens=0, messages=msgs("long one"))
    assert zero.content == [] and zero.stop_reason == "max_tokens" and zero.usage.output_tokens == 0


def test_usage_text_and_stop_reason_override(server, client):
    override = {"cache_read_input_tokens": 2000, "cache_creation_input_tokens": 100,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 100},
                "output_tokens": 7}
    server.script(Fault(usage=override, text="Scripted text here.", stop_reason="max_tokens"))
    m = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("usage"))
    assert m.content[0].text == "Scripted text here."
    assert m.stop_reason == "max_tokens"
    assert m.usage.cache_read_input_tokens == 2000
    assert m.usage.cache_creation_input_tokens == 100
    assert m.usage.cache_creation.ephemeral_1h_input_tokens == 100
    assert m.usage.output_tokens == 7
    assert m.usage.input_tokens == expected_tokens("usage")

    server.script(Fault(usage=override))
    with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("usage")) as s:
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens == 2000
    assert final.usage.cache_creation_input_tokens == 100
    assert final.usage.cache_creation.ephemeral_1h_input_tokens == 100
    assert final.usage.output_tokens == 7


def test_prompt_cache_write_then_read(server, client):
    big = "Cacheable system prompt. " * 200  # 5000 chars -> 1250 tokens
    assert len(big) == 5000
    system = [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs("hi"))
    second = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs("hello again"))
    assert first.usage.cache_creation_input_tokens == 1250
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 1250
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == 1  # ceil(5002/4) - 1250 = 1
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == expected_tokens(big, "hello again") - 1250

    # another model has its own cache; a stream reports the read in message_start
    other = client.messages.create(model=HAIKU, max_tokens=50, system=system, messages=msgs("hi"))
    assert other.usage.cache_creation_input_tokens == 1250
    with client.messages.stream(model=HAIKU, max_tokens=50, system=system, messages=msgs("hi")) as s:
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens == 1250 and final.usage.cache_creation_input_tokens == 0


def test_prompt_cache_1h_ttl_and_minimum_length(server, client):
    big = "One hour cached prompt! " * 250  # 6000 chars -> 1500 tokens
    system = [{"type": "text", "text": "prefix block. "},
              {"type": "text", "text": big, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    m = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs("q"))
    prefix_tokens = math.ceil((len("prefix block. ") + len(big)) / 4)
    assert m.usage.cache_creation_input_tokens == prefix_tokens
    assert m.usage.cache_creation.ephemeral_1h_input_tokens == prefix_tokens
    assert m.usage.cache_creation.ephemeral_5m_input_tokens == 0

    small = [{"type": "text", "text": "x" * 4000, "cache_control": {"type": "ephemeral"}}]  # 1000 tokens < 1024
    for _ in range(2):
        s = client.messages.create(model=MODEL, max_tokens=50, system=small, messages=msgs("q"))
        assert s.usage.cache_creation_input_tokens == 0 and s.usage.cache_read_input_tokens == 0
        assert s.usage.input_tokens == expected_tokens("x" * 4000, "q")


def test_refuse_directive(server, client):
    m = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("do it [[fake:refuse]]"))
    assert m.stop_reason == "refusal"
    assert m.content[0].text and m.usage.output_tokens == len(m.content[0].text.split())
    with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("[[fake:refuse]]")) as s:
        final = s.get_final_message()
    assert final.stop_reason == "refusal" and final.content[0].text == m.content[0].text


def test_empty_directive(server, client):
    m = client.messages.create(model=MODEL, max_tokens=50, messages=msgs("[[fake:empty]] nothing"))
    assert m.content == [] and m.stop_reason == "end_turn" and m.usage.output_tokens == 0
    with client.messages.stream(model=MODEL, max_tokens=50, messages=msgs("[[fake:empty]]")) as s:
        assert list(s.text_stream) == []
        final = s.get_final_message()
    assert final.content == [] and final.stop_reason == "end_turn"


def test_count_tokens_matches_create_usage(server, client):
    system = "Be brief and exact."
    question = "How many tokens is this sentence?"
    counted = client.messages.count_tokens(model=MODEL, system=system, messages=msgs(question))
    assert counted.input_tokens == expected_tokens(system, question)
    m = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=msgs(question))
    assert m.usage.input_tokens == counted.input_tokens
    assert server.request_count == 1  # count_tokens is not a /v1/messages request
    assert [r.path for r in server.requests] == ["/v1/messages/count_tokens", "/v1/messages"]
