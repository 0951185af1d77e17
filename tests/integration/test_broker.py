"""The broker transport (tasks/broker.py) on a real Redis: a taken message is held until its ack
and handed back when its taker dies (a worker restarting after a Redis restart:
tests/e2e/test_broker_restart.py; Flower's events: tests/e2e/test_task_events.py)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from kombu.transport import redis as kombu_redis

from config.settings import settings
from pipeline.devtools.bench.delay import DelayProxy
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


def _take_and_die() -> str:
    died = subprocess.run([sys.executable, "-c", TAKE_AND_DIE], capture_output=True, text=True,
                          timeout=60)
    assert died.returncode == 9, died.stderr
    return died.stdout.strip()


def test_a_taken_messages_unacked_entry_is_the_one_kombu_writes(broker):
    """The entry is built around the text BRPOP returned (tasks/broker.py, 4): the same bytes as
    kombu's dumps([message, exchange, routing_key]), handed back as the same message."""
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue(QUEUE)
        queue.put({"lead_id": "lead-\u00e9", "n": [1, None, 2.5]})
        text = broker.lindex(QUEUE, 0).decode()
        tag = _take_and_die()
        entry = broker.hget("unacked", tag).decode()
        assert entry == kombu_redis.dumps([json.loads(text), QUEUE, QUEUE])
        assert redeliver({tag}) == 1
        message = queue.get(timeout=5)
        assert message.payload == {"lead_id": "lead-\u00e9", "n": [1, None, 2.5]}
        message.ack()
        queue.close()


def test_a_message_in_another_json_spelling_is_held_and_handed_back_as_it_came(broker):
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue(QUEUE)
        queue.put({"lead_id": "lead-2"})
        text = broker.lpop(QUEUE).decode()
        compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
        broker.lpush(QUEUE, compact)                # another producer's spelling of the same message
        tag = _take_and_die()
        assert json.loads(broker.hget("unacked", tag)) == [json.loads(text), QUEUE, QUEUE]
        assert redeliver({tag}) == 1
        message = queue.get(timeout=5)
        assert message.payload == {"lead_id": "lead-2"}
        message.ack()
        queue.close()


def _through(proxy: DelayProxy) -> str:
    return proxy.url_for(settings.redis_url)


@pytest.fixture
def slow_redis():
    """The test Redis 0.5 s of round trip away (a proxy holding each chunk 0.25 s each way)."""
    parts = urlsplit(settings.redis_url)
    target = (None, parts.path) if parts.scheme == "unix" else (parts.hostname, parts.port or 6379)
    proxy = DelayProxy(*target, one_way_ms=250).start()
    yield proxy
    proxy.stop()


def test_the_late_ack_bookkeeping_holds_neither_the_task_nor_the_worker(broker, slow_redis):
    with app.connection_for_write(_through(slow_redis)) as conn:
        queue = conn.SimpleQueue(QUEUE)
        queue.put({"lead_id": "lead-1"})
        qos = conn.default_channel.qos
        took = []
        append = qos.append

        def timed(message, tag):
            started = time.monotonic()
            append(message, tag)
            took.append(time.monotonic() - started)
        qos.append = timed
        message = queue.get(timeout=10)
        assert took[0] < 0.25                        # the task starts: no round trip (0.5 s) waited
        time.sleep(0.6)                              # the task runs; the entry's replies come in
        assert message.delivery_tag in unacked_tags()
        started = time.monotonic()
        message.ack()
        assert time.monotonic() - started < 0.25     # nor at its ack
        qos.settle()                                 # the replies owed: Redis ran the ack
        assert not unacked_tags() and broker.zcard(INDEX) == 0
        queue.close()


def test_bookkeeping_recorded_before_a_requeue_and_after_its_connection_died(broker):
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue(QUEUE)
        for n in (1, 2):
            queue.put({"lead_id": f"lead-{n}"})
        qos = conn.default_channel.qos
        first = queue.get(timeout=5)
        first.requeue()                              # restore_by_tag reads the owed replies first
        assert broker.llen(QUEUE) == 2 and not unacked_tags()
        first = queue.get(timeout=5)
        first.ack()                                  # its replies owed, on a connection that dies
        qos._book[1]._sock.shutdown(socket.SHUT_RDWR)
        second = queue.get(timeout=5)                # recorded on a fresh connection
        qos.settle()
        assert unacked_tags() == {second.delivery_tag}
        assert broker.zscore(INDEX, second.delivery_tag) is not None
        assert {first.payload["lead_id"], second.payload["lead_id"]} == {"lead-1", "lead-2"}
        second.ack()
        qos.settle()
        assert not unacked_tags() and broker.zcard(INDEX) == 0 and broker.llen(QUEUE) == 0
        queue.close()
