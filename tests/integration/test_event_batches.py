"""A worker's batch of task events (tasks/app.py BatchPublishingDispatcher) goes out as the same
message kombu publishes, on a real Redis; one whose publish fails is kept for the next flush."""
from __future__ import annotations

import base64
import json
import time

import pytest
import redis

from tasks.app import BatchPublishingDispatcher, app

pytestmark = pytest.mark.integration


def _dispatcher(conn):
    dispatcher = app.events.Dispatcher(conn, hostname="test@events", enabled=True, buffer_group=["task"])
    assert isinstance(dispatcher, BatchPublishingDispatcher)
    return dispatcher


def _listen(broker):
    """Events published on this test's Redis db (a pub/sub topic is the server's, shared by every
    db: kombu names it "/<db>.celeryev/..."; other test processes publish theirs meanwhile)."""
    pubsub = broker.pubsub()
    pubsub.psubscribe(f"/{broker.connection_pool.connection_kwargs['db']}.celeryev*")
    pubsub.get_message(timeout=1)                           # the subscription's confirmation
    return pubsub


def _heard(pubsub, count: int) -> list[dict]:
    """The next ``count`` messages of this test's dispatcher on the events topic, decoded; the
    per-message ids and the events' times and clocks left out."""
    found, until = [], time.monotonic() + 10
    while len(found) < count and time.monotonic() < until:
        raw = pubsub.get_message(timeout=0.5)
        if raw and raw["type"] == "pmessage":
            message = json.loads(raw["data"])
            if message["headers"].get("hostname") != "test@events":
                continue                                    # a worker another test left running
            events = json.loads(base64.b64decode(message["body"]))
            for event in events:
                del event["timestamp"], event["clock"]
            message["properties"].pop("delivery_tag")
            found.append({**message, "body": events, "topic": raw["channel"]})
    return found


def _batch(dispatcher, lead_id: str) -> None:
    dispatcher.send("task-received", uuid=f"task-{lead_id}", name="pingtree.validate_lead",
                    args=repr((lead_id,)), kwargs="{}")
    dispatcher.send("task-succeeded", uuid=f"task-{lead_id}", result="None", runtime=0.001)
    dispatcher.flush()


def test_a_batch_of_task_events_is_the_message_kombu_publishes(broker):
    pubsub = _listen(broker)
    with app.connection_for_write() as conn:
        dispatcher = _dispatcher(conn)
        _batch(dispatcher, "lead-1")                        # the first batch: kombu (it declares)
        assert dispatcher._declared
        _batch(dispatcher, "lead-1")                        # then the dispatcher's own PUBLISH
    by_kombu, by_hand = _heard(pubsub, 2)
    assert by_hand == by_kombu
    assert [e["type"] for e in by_hand["body"]] == ["task-received", "task-succeeded"]
    assert by_hand["body"][0]["args"] == "('lead-1',)"
    pubsub.close()


def test_a_batch_whose_publish_fails_is_kept_and_goes_out_at_the_next_flush(broker, monkeypatch):
    pubsub = _listen(broker)
    with app.connection_for_write() as conn:
        dispatcher = _dispatcher(conn)
        _batch(dispatcher, "lead-2")
        with dispatcher.producer.channel.conn_or_acquire() as client:
            def down(*args, **kwargs):
                raise redis.exceptions.ConnectionError("down")
            monkeypatch.setattr(client, "publish", down)
            _batch(dispatcher, "lead-3")                    # its publish and kombu's both fail
            assert dispatcher._outbound_buffer              # kombu holds it
            monkeypatch.undo()
            dispatcher.flush()
    heard = _heard(pubsub, 2)
    assert [m["body"][0]["args"] for m in heard] == ["('lead-2',)", "('lead-3',)"]
    pubsub.close()
