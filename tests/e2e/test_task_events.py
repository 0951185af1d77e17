"""What Flower is fed: every task of a lead shows received, started and succeeded, by its ids."""
from __future__ import annotations

import threading
import time

import pytest

from pipeline import submit_lead
from pipeline.adapters import db
from tasks.app import app
from tests.helpers import make_lead, one_taker, wait_for

pytestmark = pytest.mark.integration

LEAD_TASKS = {"pingtree.validate_lead", "pingtree.score_lead", "pingtree.ping_shard",
              "pingtree.deliver_post"}


class Watcher:
    """Flower's way in: an event receiver on the broker, folding the events into Celery's State."""

    def __init__(self):
        self.state = app.events.State()
        self.types: dict[str, list[str]] = {}
        self.ready, self.heard = threading.Event(), threading.Event()
        self.error: Exception | None = None

    def on_event(self, event: dict) -> None:
        if event["type"] == "pingtree-probe":
            self.heard.set()
            return
        self.state.event(event)
        if "uuid" in event:
            self.types.setdefault(event["uuid"], []).append(event["type"])

    def run(self) -> None:
        with app.connection() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": self.on_event})
            self.receiver = receiver
            receiver.on_consume_ready = lambda *_, **__: self.ready.set()
            for _ in receiver.consume(limit=None, timeout=None, safety_interval=0.2):
                pass

    def __enter__(self):
        self.thread = threading.Thread(target=self._run_recording_errors, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        # Subscribed once it hears an event of its own (Redis subscribes on the first read).
        with app.events.default_dispatcher() as dispatcher:
            until = time.monotonic() + 10
            while not self.heard.wait(0.1):
                assert time.monotonic() < until and self.error is None, self.error
                dispatcher.send("pingtree-probe")
        return self

    def _run_recording_errors(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self.error = exc
            raise

    def __exit__(self, *exc):
        self.receiver.should_stop = True
        self.thread.join(5)


def test_every_task_of_a_lead_shows_received_started_and_succeeded_by_its_ids(clean_db, workers,
                                                                             buyers):
    one_taker(buyers)
    with Watcher() as watcher:
        lead_id = submit_lead(make_lead("solar"))
        wait_for(lead_id, ("sold",))
        with db.transaction() as cur:
            cur.execute("SELECT id FROM auctions WHERE lead_id=%s", (lead_id,))
            ids = {lead_id, *(str(r["id"]) for r in cur.fetchall())}
        until = time.monotonic() + 10
        while time.monotonic() < until:
            mine = {t.name: t for t in watcher.state.tasks.values()
                    if t.args and any(i in t.args for i in ids)}
            if set(mine) >= LEAD_TASKS and all(t.state == "SUCCESS" for t in mine.values()):
                break
            time.sleep(0.1)
    assert set(mine) >= LEAD_TASKS, (sorted(mine), watcher.error)
    for name, task in mine.items():
        assert task.state == "SUCCESS", (name, task.state)
        assert task.received and task.started and task.succeeded, name
        assert task.worker is not None and task.worker.hostname, name
        assert {"task-received", "task-started", "task-succeeded"} <= set(watcher.types[task.uuid]), name
