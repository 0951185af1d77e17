"""The broker transport (tasks/broker.py) on a real Redis: a taken message is held until its ack
and handed back when its taker dies (a worker restarting after a Redis restart:
tests/e2e/test_broker_restart.py; Flower's events: tests/e2e/test_task_events.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tasks import broker as pingtree_broker
from tasks.app import app
from tests.helpers import redeliver, unacked_tags

pytestmark = pytest.mark.integration

QUEUE = "pingtree-test-held"     # no worker listens here
INDEX = "unacked_index"

# What a worker does with acks late: take the message, and die (kill -9) before the ack.
TAKE_AND_DIE = f"""
import os
import tasks
from tasks.app import app
with app.connection_for_write() as conn:
    message = conn.SimpleQueue({QUEUE!r}).get(timeout=10)
    print(message.delivery_tag, flush=True)
    os._exit(9)
"""


def test_every_celery_connection_uses_the_pingtree_transport(broker):
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, pingtree_broker.Transport)
        assert isinstance(conn.default_channel.qos, pingtree_broker.QoS)


def test_a_message_taken_by_a_worker_that_dies_is_held_and_handed_back_then_acked_for_good(broker):
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue(QUEUE)
        queue.put({"lead_id": "lead-1"})
        died = subprocess.run([sys.executable, "-c", TAKE_AND_DIE], capture_output=True, text=True,
                              timeout=60)
        assert died.returncode == 9, died.stderr
        tag = died.stdout.strip()
        # Held: its payload in the unacked hash and its time in the index, off the queue.
        assert tag in unacked_tags()
        assert broker.zscore(INDEX, tag) is not None
        assert broker.llen(QUEUE) == 0
        assert redeliver({tag}) == 1                 # what the visibility timeout does
        message = queue.get(timeout=5)
        assert message.payload == {"lead_id": "lead-1"}
        message.ack()
        assert not unacked_tags() and broker.zcard(INDEX) == 0
        queue.close()

