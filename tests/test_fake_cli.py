"""Tests for ``python -m claude_force_nb.testing`` (claude_force_nb/testing/__main__.py): a real
process, its URL on stdout, its flags seen through the REAL anthropic SDK."""

from __future__ import annotations

import subprocess
import sys

import anthropic
import pytest

from .fake_support import MODEL, msgs


def serve(*flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "claude_force_nb.testing", *flags],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> int:
    proc.stdin.close()  # the server exits when its stdin closes
    return proc.wait(timeout=30)


def test_serves_with_rate_limits_and_overload_until_stdin_closes():
    proc = serve("--rpm", "2", "--otpm", "1000", "--overload", "0.5", "--overload-status", "429")
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with anthropic.Anthropic(api_key="k", base_url=url, max_retries=0) as client:
            first = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=msgs("hi"))
            assert first.parse().stop_reason == "end_turn"
            assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
            assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
            assert first.headers["anthropic-ratelimit-output-tokens-limit"] == "1000"
            with pytest.raises(anthropic.RateLimitError) as overloaded:  # every 2nd request
                client.messages.create(model=MODEL, max_tokens=50, messages=msgs("hi"))
            assert overloaded.value.type == "rate_limit_error" and "retry-after" not in overloaded.value.response.headers
            client.messages.create(model=MODEL, max_tokens=50, messages=msgs("hi"))
            with pytest.raises(anthropic.RateLimitError):  # overloaded again
                client.messages.create(model=MODEL, max_tokens=50, messages=msgs("hi"))
            with pytest.raises(anthropic.RateLimitError) as limited:  # 2 per minute were used
                client.messages.create(model=MODEL, max_tokens=50, messages=msgs("hi"))
            assert limited.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
            assert int(limited.value.response.headers["retry-after"]) in range(1, 31)
    finally:
        assert stop(proc) == 0


def test_help_lists_the_flags():
    out = subprocess.run([sys.executable, "-m", "claude_force_nb.testing", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--latency", "--chunk-delay", "--rpm", "--tpm", "--itpm", "--otpm", "--overload",
                 "--overload-status", "--overload-for", "--model"):
        assert flag in out


def test_model_flag_serves_more_models():
    proc = serve("--model", "claude-imaginary-9", "--model", "claude-house-1")
    try:
        url = proc.stdout.readline().strip()
        with anthropic.Anthropic(api_key="k", base_url=url, max_retries=0) as client:
            reply = client.messages.create(model="claude-imaginary-9", max_tokens=50, messages=msgs("hi"))
            assert reply.model == "claude-imaginary-9"
            assert client.models.retrieve("claude-house-1").id == "claude-house-1"
            with pytest.raises(anthropic.NotFoundError):
                client.messages.create(model="claude-imaginary-10", max_tokens=50, messages=msgs("hi"))
    finally:
        assert stop(proc) == 0
