"""store/cache/payload.py: CachedResponse round-trips exactly, through the format and the store."""

from __future__ import annotations

import math

import pytest

from claude_force_nb.core.results import Usage
from claude_force_nb.store.cache import CachedResponse
from claude_force_nb.store.cache.payload import HEADER, MAGIC, ForeignPayload, decode, encode

from .cache_fixtures import BASE_REQUEST, T0, _fresh_warnings, cache, clock, response, settings  # noqa: F401 (fixtures)


def test_put_get_round_trip_exact_fields(cache):
    key = cache.key_for(BASE_REQUEST)
    assert cache.put(key, response()) is True
    got = cache.get(key)
    assert got == CachedResponse(
        text="The answer is 42.\nSecond line.",
        stop_reason="end_turn",
        usage=Usage(11, 22, 3, 4, 5),
        model="claude-sonnet-4-6-20260101",
        cost_usd=0.0123,
        agent="code-reviewer",
        task_head="Review this function",
        request_id="req_011CABC",
        created=T0,
        expires=T0 + 7 * 24 * 3600,
    )
    assert cache.get(cache.key_for({**BASE_REQUEST, "max_tokens": 1})) is None


def test_unicode_and_unknown_cost_round_trip(cache):
    key = cache.key_for({"model": "m", "messages": [{"role": "user", "content": "héllo ✓"}]})
    assert cache.put(key, response(text="réponse ✓ 🚀", cost_usd=None, agent=None, request_id=None))
    got = cache.get(key)
    assert (got.text, got.cost_usd, got.agent, got.request_id) == ("réponse ✓ 🚀", None, None, None)
    key2 = cache.key_for({"model": "m2"})
    assert cache.put(key2, response(cost_usd=math.nan))          # NaN = unknown price
    assert cache.get(key2).cost_usd is None


@pytest.mark.parametrize(
    "text",
    ["", "\n", '["cfnb/1",null]\n{"text":"x"}\n', "tab\tand\r\nCRLF\u2028 and a lone surrogate \ud800", "é" * 3000],
    ids=["empty", "newline", "json-like", "controls", "long-unicode"],
)
def test_any_text_round_trips(cache, text):
    key = cache.key_for({"model": "m", "messages": [{"role": "user", "content": text[:50] or "x"}]})
    assert cache.put(key, response(text=text, task_head="line\twith tab"))
    got = cache.get(key)
    assert (got.text, got.task_head) == (text, "line\twith tab")
    assert cache.verify() == []


def test_empty_strings_and_none_stay_distinct(cache):
    key = cache.key_for({"model": "m", "messages": [{"role": "user", "content": "empty fields"}]})
    assert cache.put(key, response(agent="", request_id="", task_head=""))
    got = cache.get(key)
    assert (got.agent, got.request_id, got.task_head) == ("", "", "")
    assert got.usage == Usage(11, 22, 3, 4, 5) and got.cost_usd == 0.0123


def test_encode_decode_dates_the_response_and_builds_plain_dataclasses():
    payload = encode(response(task_head="t" * 300, cost_usd=math.inf), T0, None)
    assert payload[:4] == MAGIC
    got = decode(payload)
    assert got == response(task_head="t" * 200, cost_usd=None, created=T0, expires=None)
    assert type(got) is CachedResponse and type(got.usage) is Usage
    assert decode(encode(response(usage={"input_tokens": 7}), T0, T0 + 1)).usage == Usage(7, 0, 0, 0, 0)


def test_decode_is_strict():
    payload = encode(response(), T0, T0 + 60)
    with pytest.raises(ForeignPayload):
        decode(b"cfn1" + payload[4:])
    with pytest.raises(ValueError, match="header is truncated"):
        decode(payload[:HEADER.size - 1])
    with pytest.raises(ValueError, match="run past its end"):
        decode(payload[:HEADER.size + 5])
    with pytest.raises(UnicodeDecodeError):
        decode(payload[:HEADER.size] + b"\xff" + payload[HEADER.size:])


@pytest.mark.parametrize("field", ["text", "model", "stop_reason", "agent", "task_head", "request_id"])
def test_a_field_that_is_not_a_string_is_refused(field):
    with pytest.raises(TypeError, match=f"CachedResponse.{field} must be a string, not int"):
        encode(response(**{field: 42}), T0, None)
