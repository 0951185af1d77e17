"""A worker's batch of task events (tasks/app.py BatchPublishingDispatcher) goes out as the same
message kombu publishes, on a real Redis; one whose publish fails is kept for the next flush; and
a task event is buffered as the same event Celery's dispatcher builds."""
from __future__ import annotations

import base64
import importlib
import json
import os
import time

import pytest
import redis
from celery.events.dispatcher import EventDispatcher
from celery.utils.time import utcoffset

from tasks.app import BatchPublishingDispatcher, app

pytestmark = pytest.mark.integration
APP_MODULE = importlib.import_module("tasks.app")        # `tasks.app` is also the Celery app's name


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


def _celerys(conn, **kwargs):
    """Celery's own dispatcher, buffering task events as a worker's does."""
    return EventDispatcher(conn, hostname="test@events", enabled=True, app=app, **kwargs)


def _sent_by_both(conn, monkeypatch, send) -> tuple[list[dict], list[dict]]:
    """The task events ``send(dispatcher)`` buffers in pingtree's dispatcher and in Celery's,
    from the same clock value; the time of each left out (Celery's Event reads its own clock)."""
    monkeypatch.setattr(APP_MODULE, "_now", lambda: 1764480000.25)
    both = []
    for dispatcher in (_dispatcher(conn), _celerys(conn, buffer_group=["task"])):
        dispatcher.clock.value = 41
        send(dispatcher)
        both.append(list(dispatcher._group_buffer["task"]))
    for event in both[0]:
        assert event["timestamp"] == 1764480000.25
    for event in both[1]:
        event["timestamp"] = 1764480000.25
    return both[0], both[1]


def test_a_buffered_task_event_is_the_event_celery_builds_field_for_field(broker, monkeypatch):
    def send(dispatcher):
        dispatcher.send("task-received", uuid="t-1", name="pingtree.validate_lead", args="('l',)",
                        kwargs="{}", root_id="t-0", parent_id=None, retries=0, eta=None, expires=None)
        dispatcher.send("task-started", uuid="t-1")
        dispatcher.send("task-succeeded", uuid="t-1", result="None", runtime=0.5)
        dispatcher.send("task-failed", uuid="t-2", exception="ValueError()", traceback="...")
    with app.connection_for_write() as conn:
        ours, celerys = _sent_by_both(conn, monkeypatch, send)
    assert [list(e.items()) for e in ours] == [list(e.items()) for e in celerys]     # keys in order
    assert [e["type"] for e in ours] == ["task-received", "task-started", "task-succeeded", "task-failed"]
    assert [e["clock"] for e in ours] == [42, 43, 44, 45]
    assert ours[0]["utcoffset"] == utcoffset() and ours[0]["pid"] == os.getpid()


def test_task_events_disabled_by_remote_control_are_not_sent(broker):
    with app.connection_for_write() as conn:
        dispatcher = _dispatcher(conn)
        dispatcher.groups = {"worker"}                  # `celery control disable_events`
        dispatcher.send("task-started", uuid="t-1")
        assert not dispatcher._group_buffer["task"]
        dispatcher.groups.add("task")                   # `celery control enable_events`
        dispatcher.send("task-started", uuid="t-1")
        assert [e["uuid"] for e in dispatcher._group_buffer["task"]] == ["t-1"]


def test_an_events_offset_is_that_of_its_own_minute_across_a_clock_change(broker, monkeypatch):
    """New York's clocks go forward at 07:00 UTC on 8 March 2026: events at 06:59:59 and at
    07:00:00 say 5 and 4 hours (Celery's utcoffset: hours west of UTC), as Celery's would."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        with app.connection_for_write() as conn:
            dispatcher = _dispatcher(conn)
            for now in (1772953199.5, 1772953200.0, 1772953260.0):
                monkeypatch.setattr(APP_MODULE, "_now", lambda now=now: now)
                dispatcher.send("task-started", uuid=f"t-{now}")
        offsets = [e["utcoffset"] for e in dispatcher._group_buffer["task"]]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert offsets == [5.0, 4.0, 4.0]


def test_a_batch_is_written_as_json_dumps_writes_it(broker):
    pubsub = _listen(broker)
    with app.connection_for_write() as conn:
        dispatcher = _dispatcher(conn)
        _batch(dispatcher, "lead-4")                        # kombu's
        _batch(dispatcher, "lead-5")                        # the dispatcher's own
    texts = []
    until = time.monotonic() + 10
    while len(texts) < 2 and time.monotonic() < until:
        raw = pubsub.get_message(timeout=0.5)
        if raw and raw["type"] == "pmessage":
            if json.loads(raw["data"])["headers"]["hostname"] == "test@events":
                texts.append(raw["data"].decode())
    assert [json.dumps(json.loads(text)) for text in texts] == texts
    pubsub.close()
