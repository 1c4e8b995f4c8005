"""Tests for claude_force_nb.testing.limits: per-minute token buckets, 429s and the
anthropic-ratelimit-* headers, seen through the REAL anthropic SDK on a ManualClock."""

from __future__ import annotations

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, Fault, ManualClock
from claude_force_nb.testing.limits import rfc3339

from .fake_support import MODEL, msgs, raw_request

PROMPT = "hello"  # 2 input tokens


def ratelimit_headers(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("anthropic-ratelimit-") or k == "retry-after"}


def bucket(name: str, limit: int, remaining: int, reset: str) -> dict[str, str]:
    prefix = f"anthropic-ratelimit-{name}-"
    return {prefix + "limit": str(limit), prefix + "remaining": str(remaining), prefix + "reset": reset}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_requests_bucket_refills_continuously_and_429_says_when(clock):
    with FakeAnthropicServer(clock=clock, requests_per_minute=2) as server, \
            anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        first = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        assert ratelimit_headers(first.headers) == bucket("requests", 2, 1, "2027-01-15T08:00:30Z")
        second = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        assert ratelimit_headers(second.headers) == bucket("requests", 2, 0, "2027-01-15T08:01:00Z")

        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        err = refused.value
        assert (err.status_code, err.type) == (429, "rate_limit_error")
        assert err.api_message == ("This request would exceed your rate limit of 2 requests per minute. Wait for "
                                   "the time in the retry-after header; the anthropic-ratelimit-* headers show "
                                   "current usage.")
        assert err.body["request_id"] == err.request_id
        assert ratelimit_headers(err.response.headers) == {
            **bucket("requests", 2, 0, "2027-01-15T08:01:00Z"), "retry-after": "30"}

        clock.advance(29.5)  # 0.98 of a request: still short, by half a second
        with pytest.raises(anthropic.RateLimitError) as again:
            client.messages.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        assert again.value.response.headers["retry-after"] == "1"
        clock.advance(0.5)
        third = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        assert third.parse().stop_reason == "end_turn"
        assert ratelimit_headers(third.headers) == bucket("requests", 2, 0, "2027-01-15T08:01:30Z")

        assert server.counters["rate_limited"] == 2
        assert server.request_count == 5


def test_input_tokens_exclude_cache_reads_and_output_tokens_are_the_answer(clock):
    big = "Cacheable system prompt. " * 200  # 1250 tokens, cacheable
    system = [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]
    with FakeAnthropicServer(clock=clock, input_tokens_per_minute=6000, output_tokens_per_minute=600) as server, \
            anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        write = client.messages.with_raw_response.create(model=MODEL, max_tokens=500, system=system,
                                                         messages=msgs("hi"))
        usage = write.parse().usage
        assert (usage.input_tokens, usage.cache_creation_input_tokens) == (1, 1250)
        out = usage.output_tokens
        assert ratelimit_headers(write.headers) == {
            # 1251 charged: refills at 100 per second, so full again in 12.51 s -> :13
            **bucket("input-tokens", 6000, 6000 - 1251, "2027-01-15T08:00:13Z"),
            **bucket("output-tokens", 600, 600 - out, rfc3339(clock() + out / 10)),
            **bucket("tokens", 600, 600 - out, rfc3339(clock() + out / 10)),  # the tighter of the two
        }

        read = client.messages.with_raw_response.create(model=MODEL, max_tokens=500, system=system,
                                                        messages=msgs("hi"))
        assert read.parse().usage.cache_read_input_tokens == 1250
        assert read.headers["anthropic-ratelimit-input-tokens-remaining"] == str(6000 - 1251 - 1)
        assert read.headers["anthropic-ratelimit-output-tokens-remaining"] == str(600 - 2 * out)


def test_a_short_token_bucket_refuses_and_charges_nothing(clock):
    with FakeAnthropicServer(clock=clock, tokens_per_minute=60, requests_per_minute=100) as server, \
            anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        answer = client.messages.create(model=MODEL, max_tokens=500, messages=msgs(PROMPT))
        assert (answer.usage.input_tokens, answer.usage.output_tokens) == (2, 48)  # 50 of 60 tokens
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.create(model=MODEL, max_tokens=500, messages=msgs(PROMPT))
        headers = refused.value.response.headers
        assert headers["anthropic-ratelimit-tokens-remaining"] == "10"
        assert headers["anthropic-ratelimit-requests-remaining"] == "99"  # the refused one was not charged
        assert headers["retry-after"] == "40"  # 40 more tokens at one per second
        assert refused.value.api_message.startswith("This request would exceed your rate limit of 60 tokens per")
        clock.advance(40)
        assert client.messages.create(model=MODEL, max_tokens=500, messages=msgs(PROMPT)).stop_reason == "end_turn"


def test_a_request_bigger_than_the_bucket_is_told_to_shrink(clock):
    with FakeAnthropicServer(clock=clock, input_tokens_per_minute=10) as server, \
            anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.create(model=MODEL, max_tokens=50, messages=msgs("x" * 400))  # 100 tokens
    assert refused.value.api_message == ("This request needs 100 input tokens but your rate limit is 10 input "
                                         "tokens per minute. Send a smaller request.")
    assert refused.value.response.headers["retry-after"] == "1"  # the bucket is full: retrying cannot help


def test_streams_and_every_error_carry_the_headers_and_nothing_without_limits(clock):
    expected = bucket("requests", 5, 5, "2027-01-15T08:00:12Z")  # full again: reset is now
    with FakeAnthropicServer(clock=clock, requests_per_minute=5) as server, \
            anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        with client.messages.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT), stream=True) as stream:
            assert ratelimit_headers(stream.response.headers) == bucket("requests", 5, 4, "2027-01-15T08:00:12Z")
            assert [e.type for e in stream][-1] == "message_stop"
        clock.advance(12)

        server.script(Fault(status=529))
        with pytest.raises(anthropic.OverloadedError) as scripted:
            client.messages.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        assert ratelimit_headers(scripted.value.response.headers) == expected

        status, headers, _ = raw_request(server, "POST", "/v1/messages", {"model": MODEL, "messages": msgs("x")},
                                         {"x-api-key": "k"})
        assert status == 400 and ratelimit_headers(headers) == expected
        status, headers, _ = raw_request(server, "POST", "/v1/messages", {"model": MODEL})
        assert status == 401 and ratelimit_headers(headers) == expected
        # other routes are not rate limited
        status, headers, _ = raw_request(server, "GET", "/v1/messages/batches", headers={"x-api-key": "k"})
        assert status == 200 and ratelimit_headers(headers) == {}

        server.set_rate_limits()
        unlimited = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        assert ratelimit_headers(unlimited.headers) == {}


def test_set_rate_limits_starts_full_buckets(clock):
    with FakeAnthropicServer(clock=clock, requests_per_minute=1) as server, \
            anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        client.messages.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        server.set_rate_limits(requests_per_minute=3, output_tokens_per_minute=1000)
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=msgs(PROMPT))
        out = raw.parse().usage.output_tokens
        assert ratelimit_headers(raw.headers) == {
            **bucket("requests", 3, 2, "2027-01-15T08:00:20Z"),
            **bucket("output-tokens", 1000, 1000 - out, rfc3339(clock() + out * 0.06)),
            **bucket("tokens", 1000, 1000 - out, rfc3339(clock() + out * 0.06)),
        }


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="requests per minute limit must be positive"):
        FakeAnthropicServer(requests_per_minute=0)


def test_rfc3339_rounds_up_to_the_second():
    assert rfc3339(1_800_000_000.0) == "2027-01-15T08:00:00Z"
    assert rfc3339(1_800_000_000.001) == "2027-01-15T08:00:01Z"
