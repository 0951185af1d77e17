"""The flat path for plain task messages (tasks/flat.py, every pingtree task's Strategy), with real
workers on a real Redis: a plain message runs flat, in a solo and a threads worker, and is acked
only after its task ends; a worker killed mid-task leaves the message to be delivered again; a
message with a countdown, a chord member and a retry go Celery's way; and what Flower and the task
see (events, their fields, the request, retries and failures) is what they see from a worker with
Celery's default strategy, run on the same task (tests/flat_tasks.py)."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from celery import chord

from tasks.app import app
from tests import flat_tasks
from tests.helpers import WORKER_LOG, redeliver, unacked_tags

pytestmark = pytest.mark.integration


class Worker:
    """A worker of tests/flat_tasks.py on its own queue; Celery's strategy with ``celery=True``."""

    def __init__(self, pool: str, celery: bool = False):
        self.name = f"flattest-{uuid.uuid4().hex[:8]}@localhost"
        env = {**os.environ, "PINGTREE_TEST_CELERY_STRATEGY": "1" if celery else "0"}
        argv = [sys.executable, "-m", "celery", "-A", "tests.flat_tasks", "worker", "-Q", flat_tasks.QUEUE,
                "-n", self.name, "-P", pool, "-l", "INFO", "--without-gossip", "--without-mingle",
                "--without-heartbeat"] + (["-c", "4"] if pool == "threads" else [])
        WORKER_LOG.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(WORKER_LOG.parent / "flat-worker.log", "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        until = time.monotonic() + 90
        while not app.control.ping(destination=[self.name], timeout=0.5):
            assert self.proc.poll() is None, "the test worker died; see flat-worker.log"
            assert time.monotonic() < until, "the test worker did not answer within 90 s"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def start(broker):
    broker.delete(flat_tasks.RELEASE, flat_tasks.RECORDS)
    started: list[Worker] = []

    def start(pool: str = "solo", celery: bool = False) -> Worker:
        started.append(Worker(pool, celery))
        return started[-1]
    yield start
    broker.set(flat_tasks.RELEASE, 1)
    for worker in started:
        worker.stop()
    broker.delete(flat_tasks.RELEASE, flat_tasks.RECORDS)


def send(mode: str, tag: str, **options) -> str:
    return app.send_task(flat_tasks.NAME, args=(mode, tag), queue=flat_tasks.QUEUE,
                         ignore_result=True, **options).id


def records(broker, tag: str, count: int, timeout: float = 30) -> list[dict]:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        found = [r for r in map(json.loads, broker.lrange(flat_tasks.RECORDS, 0, -1)) if r["tag"] == tag]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{tag}: {count} runs expected, saw {found}")


def quiet(broker, timeout: float = 20) -> None:
    """Nothing queued on the probe's queue, nothing held unacked."""
    until = time.monotonic() + timeout
    while broker.llen(flat_tasks.QUEUE) or unacked_tags():
        assert time.monotonic() < until, (broker.llen(flat_tasks.QUEUE), unacked_tags())
        time.sleep(0.05)


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_plain_message_runs_flat_and_is_acked_only_after_its_task_ends(broker, start, pool):
    worker = start(pool)
    task_id = send("hold", f"held-{pool}")
    (run,) = records(broker, f"held-{pool}", 1)
    assert run["path"] == "flat" and run["current"]
    assert run["request"]["id"] == task_id and run["request"]["args"] == ["hold", f"held-{pool}"]
    assert len(unacked_tags()) == 1                     # running: taken, not acked
    inspect = app.control.inspect(destination=[worker.name], timeout=5)
    if pool == "threads":       # a solo worker runs the task in the thread that would answer
        (active,) = inspect.active()[worker.name]       # `celery inspect active`
        assert (active["id"], active["name"], active["args"]) == (task_id, flat_tasks.NAME,
                                                                 ["hold", f"held-{pool}"])
        assert active["acknowledged"] is False and active["time_start"] > 0
    broker.set(flat_tasks.RELEASE, 1)
    quiet(broker)                                       # ended: acked
    assert inspect.active()[worker.name] == []
    assert inspect.stats()[worker.name]["total"] == {flat_tasks.NAME: 1}


def test_a_worker_killed_mid_task_leaves_its_message_to_be_delivered_again(broker, start):
    worker = start("solo")
    task_id = send("hold", "killed")
    records(broker, "killed", 1)
    held = unacked_tags()
    assert len(held) == 1
    worker.proc.send_signal(signal.SIGKILL)             # no goodbye, no ack
    worker.proc.wait(10)
    assert unacked_tags() == held
    assert redeliver(held) == 1                         # what Redis does after the visibility timeout
    broker.set(flat_tasks.RELEASE, 1)
    start("solo")
    first, again = records(broker, "killed", 2)
    assert first["request"]["id"] == again["request"]["id"] == task_id
    assert again["path"] == "flat" and again["run"] == 2
    quiet(broker)


def test_a_countdown_a_chord_member_a_retry_and_a_rate_limit_go_celerys_way(broker, start):
    worker = start("threads")
    send("ok", "plain")
    send("ok", "later", countdown=0.2)
    send("down:1", "retried")
    header = [app.signature(flat_tasks.NAME, args=("ok", f"member-{i}"), queue=flat_tasks.QUEUE,
                            immutable=True) for i in range(2)]
    chord(header)(app.signature(flat_tasks.NAME, args=("ok", "chord-body"), queue=flat_tasks.QUEUE,
                                immutable=True))
    assert records(broker, "plain", 1)[0]["path"] == "flat"
    assert records(broker, "later", 1)[0]["path"] == "celery"
    assert [r["path"] for r in records(broker, "member-0", 1) + records(broker, "member-1", 1)] == [
        "celery", "celery"]
    first, retry = records(broker, "retried", 2)
    assert (first["path"], retry["path"]) == ("flat", "celery")        # the retry has an eta
    assert retry["request"]["retries"] == 1 and retry["request"]["id"] == first["request"]["id"]
    records(broker, "chord-body", 1)
    quiet(broker)
    # `celery control rate_limit` at run time: the task's messages are Celery's from then on.
    assert app.control.rate_limit(flat_tasks.NAME, "1000/s", destination=[worker.name], reply=True)
    send("ok", "limited")
    assert records(broker, "limited", 1)[0]["path"] == "celery"
    quiet(broker)


VARYING = {"uuid", "timestamp", "clock", "local_received", "pid", "hostname", "runtime", "root_id",
           "utcoffset"}


def _events(pubsub, ids: set[str], types_wanted: int, timeout: float = 20) -> dict[str, list[dict]]:
    """The task events heard for ``ids``, by task id, in order, until ``types_wanted`` in all."""
    found: dict[str, list[dict]] = {i: [] for i in ids}
    until = time.monotonic() + timeout
    while sum(map(len, found.values())) < types_wanted and time.monotonic() < until:
        raw = pubsub.get_message(timeout=0.2)
        if raw and raw["type"] == "pmessage":
            for event in json.loads(base64.b64decode(json.loads(raw["data"])["body"])):
                if isinstance(event, dict) and event.get("uuid") in found:
                    found[event["uuid"]].append(event)
    return found


def _run_all(broker, start, celery: bool, pool: str) -> tuple[dict, dict]:
    """Run an ok, a retried and a failing probe; their events and what each run saw."""
    pubsub = broker.pubsub()        # this db's events topic (the server's topics are shared)
    pubsub.psubscribe(f"/{broker.connection_pool.connection_kwargs['db']}.celeryev*")
    pubsub.get_message(timeout=1)
    worker = start(pool, celery)
    way = "celery" if celery else "flat"
    ids = {mode: send(mode, f"{way}-{pool}-{mode}") for mode in ("ok", "down:1", "fail")}
    # received+started+succeeded; received+started+retried, received+started+succeeded; +failed
    heard = _events(pubsub, set(ids.values()), 3 + 6 + 3)
    runs = {mode: records(broker, f"{way}-{pool}-{mode}", 2 if mode == "down:1" else 1) for mode in ids}
    quiet(broker)
    worker.stop()
    pubsub.close()
    events = {}
    for mode, task_id in ids.items():
        events[mode] = []
        for event in heard[task_id]:
            assert event["hostname"] == worker.name and event["timestamp"] > 0 and event["clock"] > 0
            fields = {k: v for k, v in event.items() if k not in VARYING}
            if fields.get("parent_id") == task_id:     # a retry's message: sent by the task
                fields["parent_id"] = "the task"
            if fields.get("eta"):                       # a retry's: when it was sent + back-off
                fields["eta"] = "set"
            if "args" in fields:
                fields["args"] = fields["args"].replace(way, "WAY")
            if "traceback" in fields:               # the frames of the tracer differ; its end not
                fields["traceback"] = fields["traceback"].strip().splitlines()[-1]
            events[mode].append(fields)
        # In a threads worker a retry's message may be taken before its task-retried is sent.
        events[mode].sort(key=lambda e: json.dumps(e, sort_keys=True))
    seen = {mode: [_request_view(r["request"], way) for r in found] for mode, found in runs.items()}
    return events, seen


def _request_view(request: dict, way: str) -> dict:
    ids = ("id", "correlation_id", "root_id", "hostname", "reply_to", "origin", "argsrepr", "eta")
    view = {k: v for k, v in request.items() if k not in ids}
    view["parent_id"] = "the task" if request["parent_id"] == request["id"] else request["parent_id"]
    view["args"] = [a.replace(way, "WAY") for a in view["args"]]
    view["headers"] = None if view.get("headers") is None else sorted(view["headers"])
    view["properties"] = sorted(view["properties"])
    view["delivery_info"] = {k: v for k, v in request["delivery_info"].items() if k != "redelivered"}
    return view


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_events_request_retries_and_failures_are_those_of_celerys_strategy(broker, start, pool):
    celerys_events, celerys_requests = _run_all(broker, start, celery=True, pool=pool)
    flat_events, flat_requests = _run_all(broker, start, celery=False, pool=pool)
    assert flat_events == celerys_events
    types = {mode: sorted(e["type"] for e in events) for mode, events in flat_events.items()}
    assert types == {
        "ok": ["task-received", "task-started", "task-succeeded"],
        "down:1": ["task-received", "task-received", "task-retried", "task-started", "task-started",
                   "task-succeeded"],
        "fail": ["task-failed", "task-received", "task-started"]}
    (received,) = [e for e in flat_events["ok"] if e["type"] == "task-received"]
    assert received["name"] == flat_tasks.NAME and received["args"] == f"('ok', 'WAY-{pool}-ok')"
    (failed,) = [e for e in flat_events["fail"] if e["type"] == "task-failed"]
    assert "ValueError" in failed["exception"]
    assert flat_requests == celerys_requests
