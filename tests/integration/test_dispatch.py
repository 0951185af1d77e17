"""The nudge publisher (tasks/dispatch.py) on a real Redis: it writes the very message Celery's
send_task writes, takes over from the second nudge of a name, and hands a failed publish to
send_task. (The pipeline's tasks run from its messages: tests/e2e; Flower reads their events:
tests/e2e/test_task_events.py.)"""
from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis
from celery import signals
from celery._state import pop_current_task, push_current_task
from kombu import Queue

from config import queues
from pipeline.service.nudges import Nudge
from tasks import dispatch
from tasks.app import app

pytestmark = pytest.mark.integration

PRIVATE = "pingtree-test-dispatch"     # no worker listens here


def _taken(broker) -> dict:
    message = json.loads(broker.rpop(PRIVATE))
    headers, properties = message["headers"], message["properties"]
    ids = {"id": headers.pop("id"), "root_id": headers.pop("root_id"),
           "correlation_id": properties.pop("correlation_id")}
    assert properties.pop("delivery_tag")
    assert ids["correlation_id"] == ids["id"]
    return {"message": message, **ids}


def _celery_and_ours(broker, name: str, args: tuple) -> tuple[dict, dict]:
    app.send_task(name, args=args, queue=Queue(PRIVATE, routing_key=PRIVATE), ignore_result=True)
    assert dispatch._publish(PRIVATE, name, args)
    return _taken(broker), _taken(broker)


@pytest.fixture
def finalized(broker):
    app.finalize(auto=True)         # every task registered, as in a worker: its options count
    broker.delete(PRIVATE)
    yield
    broker.delete(PRIVATE)


@pytest.mark.parametrize("name", sorted(queues.ROUTES))
def test_a_nudge_is_the_message_celery_sends(finalized, broker, name):
    args = (str(uuid.uuid4()), 2)
    celery, ours = _celery_and_ours(broker, name, args)
    assert ours["message"] == celery["message"]
    assert ours["root_id"] == ours["id"] != celery["id"]
    assert json.loads(base64.b64decode(ours["message"]["body"]))[0] == list(args)


def test_a_nudge_from_a_running_task_names_its_parent_and_root(finalized, broker):
    task = app.tasks["pingtree.validate_lead"]
    task.push_request(id="parent-task", root_id="root-task", called_directly=False,
                      ignore_result=True)
    push_current_task(task)                  # as Celery's tracer does around a task's run
    try:
        celery, ours = _celery_and_ours(broker, "pingtree.score_lead", ("lead-1",))
    finally:
        pop_current_task()
        task.pop_request()
    assert ours["message"] == celery["message"]
    assert ours["message"]["headers"]["parent_id"] == "parent-task"
    assert ours["root_id"] == celery["root_id"] == "root-task"


def test_every_stage_route_is_published_plainly(finalized):
    assert {name: dispatch._plain_queue(name) for name in queues.ROUTES} == {
        name: route["queue"] for name, route in queues.ROUTES.items()}


def test_the_first_nudge_of_a_name_goes_through_celery_then_the_publisher(broker, monkeypatch):
    through_celery = []
    monkeypatch.setattr(dispatch, "_queues", {})
    monkeypatch.setattr(app, "send_task", lambda name, **kw: through_celery.append(name))
    published = []
    monkeypatch.setattr(dispatch, "_publish", lambda queue, name, args: published.append(queue) or True)
    nudge = Nudge("pingtree.rerun_held", ("lead-1",))
    dispatch.send([nudge, nudge, Nudge("pingtree.rerun_held", ("lead-1",), countdown=5)])
    assert through_celery == ["pingtree.rerun_held", "pingtree.rerun_held"]   # first; countdown
    assert published == ["rerun"]
    dispatch.send([Nudge("pingtree.rerun_held", (object(),))])                 # not an id
    assert through_celery[-1] == "pingtree.rerun_held" and published == ["rerun"]


def test_a_failed_publish_goes_through_send_task_and_the_next_one_reconnects(finalized, broker,
                                                                            monkeypatch):
    through_celery = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: through_celery.append(kw["args"]))
    monkeypatch.setitem(dispatch._queues, "pingtree.rerun_held", PRIVATE)
    assert dispatch.publish("pingtree.rerun_held", ("lead-0",))
    held = dispatch._publisher
    client = dispatch._client()

    def refused(*_, **__):
        raise redis.ConnectionError("Connection refused")
    monkeypatch.setattr(client, "lpush", refused)
    dispatch.send([Nudge("pingtree.rerun_held", ("lead-1",))])
    assert through_celery == [("lead-1",)]
    assert dispatch._publisher is None                   # the connection is dropped
    dispatch.send([Nudge("pingtree.rerun_held", ("lead-2",))])
    assert through_celery == [("lead-1",)] and dispatch._publisher not in (None, held)
    taken = [json.loads(m)["headers"]["argsrepr"] for m in broker.lrange(PRIVATE, 0, -1)]
    assert taken == ["('lead-2',)", "('lead-0',)"]


def test_publish_signals_carry_the_message(finalized, broker):
    seen = []

    def before(sender=None, headers=None, body=None, routing_key=None, **_):
        seen.append(("before", sender, headers["id"], body[0], routing_key))

    def after(sender=None, headers=None, body=None, routing_key=None, **_):
        seen.append(("after", sender, headers["id"], body[0], routing_key))
    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        assert dispatch._publish(PRIVATE, "pingtree.score_lead", ("lead-1",))
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    task_id = _taken(broker)["id"]
    assert seen == [("before", "pingtree.score_lead", task_id, ["lead-1"], PRIVATE),
                    ("after", "pingtree.score_lead", task_id, ["lead-1"], PRIVATE)]
