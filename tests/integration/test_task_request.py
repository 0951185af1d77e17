"""The worker's request for pingtree tasks (tasks/app.py DecodedOnceRequest), on messages taken
from a real Redis: it hands the tracer the body the strategy decoded, the same arguments, keyword
arguments and chord/callback parts the tracer would decode from the bytes itself."""
from __future__ import annotations

import pytest
from celery.worker.request import Request
from kombu import Queue
from kombu.serialization import loads

from tasks.app import DecodedOnceRequest, app

pytestmark = pytest.mark.integration

QUEUE = "pingtree-test-request"     # no worker listens here


def _taken(**options):
    with app.connection_for_write() as conn:
        app.send_task("pingtree.walk_waterfall", queue=Queue(QUEUE, routing_key=QUEUE),
                      connection=conn, **options)
        queue = conn.SimpleQueue(QUEUE)
        message = queue.get(timeout=10)
        message.ack()
        queue.close()
        return message


def test_every_pingtree_task_is_run_through_the_decoded_once_request(broker):
    for name in ("pingtree.validate_lead", "pingtree.ping_shard", "pingtree.award_auction"):
        assert app.tasks[name].Request is DecodedOnceRequest


def test_the_request_carries_the_body_the_tracer_would_decode(broker):
    message = _taken(args=("auction-1",), kwargs={"step": 2},
                     link=app.signature("pingtree.award_auction", args=("auction-1",)))
    task = app.tasks["pingtree.walk_waterfall"]
    assert "args" not in message.payload                      # what the strategy reads first
    ours = DecodedOnceRequest(message, app=app, task=task, hostname="test@request")
    celerys = Request(message, app=app, task=task, hostname="test@request")
    args, kwargs, embed = ours.body
    assert (args, kwargs, embed) == tuple(loads(message.body, message.content_type,
                                                message.content_encoding, accept={"application/json"}))
    assert args == ["auction-1"] and kwargs == {"step": 2}
    assert embed["callbacks"][0]["task"] == "pingtree.award_auction"
    assert ours.content_type is None and celerys.content_type == "application/json"
    assert ours.request_dict == celerys.request_dict
    assert (ours.args, ours.kwargs) == (celerys.args, celerys.kwargs)
