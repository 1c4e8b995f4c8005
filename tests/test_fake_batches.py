"""Tests for claude_force_nb.testing.batches: the Message Batches state machine through the REAL SDK."""

from __future__ import annotations

from datetime import UTC, datetime

import anthropic
import pytest

from claude_force_nb.testing import FakeAnthropicServer, ManualClock

from .fake_support import HAIKU, MODEL, _module_server, client, msgs, server  # noqa: F401 (fixtures)


def test_batch_lifecycle(server, client):
    params = {"model": MODEL, "max_tokens": 100, "messages": msgs("batch question")}
    batch = client.messages.batches.create(requests=[
        {"custom_id": "good", "params": params},
        {"custom_id": "bad", "params": {"model": MODEL, "messages": msgs("no max_tokens")}},
        {"custom_id": "refused", "params": {**params, "messages": msgs("[[fake:refuse]]")}},
    ])
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "ended"
    assert batch.results_url == f"/v1/messages/batches/{batch.id}/results"
    assert batch.request_counts.succeeded == 2 and batch.request_counts.errored == 1
    assert batch.request_counts.processing == 0
    assert batch.expires_at > batch.created_at and batch.ended_at is not None

    got = client.messages.batches.retrieve(batch.id)
    assert got.id == batch.id and got.processing_status == "ended"

    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert set(results) == {"good", "bad", "refused"}
    assert results["good"].type == "succeeded"
    direct = client.messages.create(**params)
    assert results["good"].message.content[0].text == direct.content[0].text
    assert results["good"].message.usage.service_tier == "batch"
    assert results["refused"].message.stop_reason == "refusal"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"

    second = client.messages.batches.create(requests=[{"custom_id": "x", "params": params}])
    page = client.messages.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more is True
    assert [b.id for b in client.messages.batches.list(limit=1).iter_pages()
            for b in b.data][:2] == [second.id, batch.id]
    assert [b.id for b in client.messages.batches.list(limit=10)][:2] == [second.id, batch.id]

    # cancelling an ended batch leaves it ended
    assert client.messages.batches.cancel(batch.id).processing_status == "ended"
    deleted = client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert batch.id not in [b.id for b in client.messages.batches.list(limit=100)]


def test_batch_in_progress_cancel(server, client):
    server.batch_delay_s = 60.0
    params = {"model": HAIKU, "max_tokens": 100, "messages": msgs("slow batch")}
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": params},
                                                     {"custom_id": "b", "params": params}])
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 2
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)

    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.canceled == 2 and ended.request_counts.succeeded == 0
    assert {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)} == {
        "a": "canceled", "b": "canceled"}
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_batch_ends_after_delay_on_the_server_clock():
    clock = ManualClock()
    with FakeAnthropicServer(clock=clock, batch_delay_s=30.0) as srv, \
            anthropic.Anthropic(api_key="k", base_url=srv.url, max_retries=0) as client:
        batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": {
            "model": MODEL, "max_tokens": 10, "messages": msgs("later")}}])
        assert batch.processing_status == "in_progress"
        assert batch.created_at == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
        assert batch.expires_at == datetime(2027, 1, 16, 8, 0, tzinfo=UTC)
        clock.advance(29.5)
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
        clock.advance(0.5)
        done = client.messages.batches.retrieve(batch.id)
        assert done.processing_status == "ended" and done.request_counts.succeeded == 1
        assert done.ended_at == datetime(2027, 1, 15, 8, 0, 30, tzinfo=UTC)
        assert [r.result.type for r in client.messages.batches.results(batch.id)] == ["succeeded"]


def test_batch_create_validation(server, client):
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[])
    params = {"model": MODEL, "max_tokens": 10, "messages": msgs("dup")}
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[{"custom_id": "a", "params": params},
                                                 {"custom_id": "a", "params": params}])


def test_batch_results_come_in_a_seeded_shuffled_order_and_counts_move_while_in_progress():
    clock = ManualClock()
    with FakeAnthropicServer(clock=clock, batch_delay_s=40.0) as srv, \
            anthropic.Anthropic(api_key="k", base_url=srv.url, max_retries=0) as client:
        ids = [f"r{i:02d}" for i in range(20)]
        requests = [{"custom_id": cid, "params": {"model": MODEL, "max_tokens": 50,
                                                  "messages": msgs(f"q {cid}" + (" [[fake:error=400]]" if i % 5 == 0
                                                                                 else ""))}}
                    for i, cid in enumerate(ids)]
        batch = client.messages.batches.create(requests=requests)
        assert srv.batches.submitted == [ids]
        seen = []
        for _ in range(5):
            counts = client.messages.batches.retrieve(batch.id).request_counts
            seen.append((counts.processing, counts.succeeded + counts.errored))
            clock.advance(10.0)
        assert seen == [(20, 0), (15, 5), (10, 10), (5, 15), (0, 20)]
        rows = list(client.messages.batches.results(batch.id))
        order = [r.custom_id for r in rows]
        assert sorted(order) == ids and order != ids
        assert sum(r.result.type == "errored" for r in rows) == 4
        again = client.messages.batches.create(requests=requests)
        clock.advance(40.0)
        assert [r.custom_id for r in client.messages.batches.results(again.id)] != order  # seeded per batch
        assert [len(s) for s in srv.batches.submitted] == [20, 20]


def test_a_cancelled_batch_keeps_the_answers_finished_before_the_cancel():
    clock = ManualClock()
    with FakeAnthropicServer(clock=clock, batch_delay_s=40.0) as srv, \
            anthropic.Anthropic(api_key="k", base_url=srv.url, max_retries=0) as client:
        params = {"model": MODEL, "max_tokens": 50, "messages": msgs("cancel me")}
        batch = client.messages.batches.create(requests=[{"custom_id": f"r{i}", "params": params} for i in range(4)])
        clock.advance(20.0)
        client.messages.batches.cancel(batch.id)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended"
        assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (2, 2)
        kinds = sorted(r.result.type for r in client.messages.batches.results(batch.id))
        assert kinds == ["canceled", "canceled", "succeeded", "succeeded"]
