"""A started worker settles its start-up heap (tasks/signals.py, pipeline/adapters/heap.py): a
worker of a stage that reads ZIPs (validate, ping) loads the USPS records before it takes its
first lead, and every worker leaves what it holds at start-up out of the garbage collector's
full passes; a worker of another stage does not carry the records."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tasks.app import app
from tests.helpers import WORKER_LOG

pytestmark = pytest.mark.integration


def settled_count(queue: str) -> int:
    """Start a worker on ``queue``, wait until it answers, stop it: the count it logged."""
    name = f"heaptest-{uuid.uuid4().hex[:8]}@localhost"
    WORKER_LOG.parent.mkdir(parents=True, exist_ok=True)
    log_path = WORKER_LOG.parent / f"heap-{queue}-{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", queue, "-n", name, "-P",
             "solo", "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--without-deadline-close"], env=os.environ, stdout=log, stderr=subprocess.STDOUT)
        try:
            until = time.monotonic() + 90
            while not app.control.ping(destination=[name], timeout=0.5):
                assert proc.poll() is None, f"the worker died; see {log_path}"
                assert time.monotonic() < until, "the worker did not answer within 90 s"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    found = [line["count"] for line in lines if line["message"].startswith("start-up heap settled")]
    assert len(found) == 1, lines
    return found[0]


def test_a_validate_worker_loads_the_zip_records_and_freezes_them_with_its_start_up_heap(broker):
    # Celery, kombu and pipeline/ alone are ~70,000 objects; the records and their index ~210,000.
    assert settled_count("validate") > 200_000


def test_a_deliver_worker_freezes_its_start_up_heap_without_the_zip_records(broker):
    assert 30_000 < settled_count("deliver") < 150_000
