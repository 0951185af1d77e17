"""A worker app for tests/integration/test_flat_path.py: the pingtree app with one probe task of
the stage tasks' kind (STAGE_RETRY, ignored result), on a queue of its own. Started with
PINGTREE_TEST_CELERY_STRATEGY=1, the probe goes through Celery's default strategy instead of the
flat path (tasks/flat.py): the same task, for comparison.

The probe records, in Redis, which path ran it and what it saw as its request, and then does what
its ``mode`` says: "ok"; "hold" (runs until the key ``flat-test:release`` exists); "down:N" (raises
DatabaseDown on its first N runs, which STAGE_RETRY retries); "fail" (raises ValueError).
"""
from __future__ import annotations

import json
import os
import sys
import time

from celery import current_task
from kombu import Queue

from pipeline.adapters.db import DatabaseDown
from tasks import app
from tasks.app import STAGE_RETRY

QUEUE = "pingtree-test-flat"
NAME = "pingtree.test_flat_probe"
RECORDS = "flat-test:records"
RELEASE = "flat-test:release"

app.amqp.queues.add(Queue(QUEUE, routing_key=QUEUE))     # the app knows it; no stage uses it
_options = {"Strategy": "celery.worker.strategy:default"} if os.environ.get(
    "PINGTREE_TEST_CELERY_STRATEGY") == "1" else {}


def _redis():
    import redis

    from config.settings import settings
    return redis.Redis.from_url(settings.redis_url)


def _path() -> str:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(os.path.join("tasks", "flat.py")):
            return "flat"
        frame = frame.f_back
    return "celery"


def _seen(request) -> dict:
    fields = {k: v for k, v in vars(request).items() if not k.startswith("_")}
    return json.loads(json.dumps(fields, default=repr))


@app.task(name=NAME, **STAGE_RETRY, **_options)
def probe(mode: str, tag: str) -> None:
    client = _redis()
    request = current_task.request
    runs = client.incr(f"flat-test:runs:{tag}")
    parent = app.current_worker_task                  # what tasks/dispatch.py reads as the parent
    current = parent is not None and parent.name == NAME and parent.request is request
    client.rpush(RECORDS, json.dumps({"tag": tag, "mode": mode, "path": _path(), "pid": os.getpid(),
                                      "run": runs, "request": _seen(request), "current": current}))
    if mode == "hold":
        while not client.exists(RELEASE):
            time.sleep(0.02)
    elif mode.startswith("down:") and runs <= int(mode.split(":")[1]):
        raise DatabaseDown("test: PostgreSQL down")
    elif mode == "fail":
        raise ValueError("test: the probe failed")
