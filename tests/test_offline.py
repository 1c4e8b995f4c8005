"""CLAUDE_FORCE_OFFLINE's in-process server: one per process, a real Anthropic-compatible API."""

from __future__ import annotations

import anthropic

from claude_force_nb.engine.offline import offline_base_url


def test_one_server_per_process_answers_the_real_sdk() -> None:
    url = offline_base_url()
    assert url.startswith("http://127.0.0.1:") and offline_base_url() == url
    with anthropic.Anthropic(api_key="offline", base_url=url, max_retries=0) as client:
        reply = client.messages.create(model="claude-haiku-4-5", max_tokens=50,
                                       messages=[{"role": "user", "content": "How do I reverse a list?"}])
    assert reply.stop_reason == "end_turn" and "Offline answer" in reply.content[0].text
