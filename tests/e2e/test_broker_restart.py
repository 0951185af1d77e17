"""Workers survive a Redis restart (a private redis-server, killed and started again empty)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline import submit_lead
from pipeline.adapters import db
from pipeline.devtools.servers import RedisServer
from pipeline.devtools.stack import Stack
from pipeline.service import intake, lifecycle
from tests.helpers import load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 3, "max_cycles": 3,
           "rerun_interval_s": 1, "duplicate_window_h": 0, "stuck_after_s": 5}
WORKER = ("celery -A tasks worker -Q validate,score,ping,award,deliver,rerun -n restart@%h"
          " -P threads -c 8 -l INFO --without-gossip --without-mingle --without-heartbeat")


@pytest.fixture
def private_broker(tmp_path):
    server = RedisServer()
    server.start()
    stack = Stack(["worker"], overrides={"worker": WORKER}, env={"PINGTREE_REDIS_URL": server.url},
                  log_dir=tmp_path)
    stack.start()
    yield server, stack, Path(tmp_path) / "worker.log"
    stack.stop()
    server.stop()


def sender(url: str):
    """Send nudges to the private broker (the test process's own app points elsewhere)."""
    from tasks.app import app

    def send(nudges):
        with app.connection_for_write(url) as conn:
            for nudge in nudges:
                app.send_task(nudge.task, args=nudge.args, countdown=nudge.countdown,
                              connection=conn, ignore_result=True)
    return send


def terminal(lead_ids: list[str]) -> bool:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM leads WHERE status IN ('sold', 'unsold', 'rejected')"
                    " AND id::text = ANY(%s)", (lead_ids,))
        return cur.fetchone()["n"] == len(lead_ids)


def test_workers_survive_a_redis_restart_and_in_flight_leads_sell_once(
        clean_db, buyers, private_broker, monkeypatch):
    server, stack, log = private_broker
    send = sender(server.url)
    monkeypatch.setattr(intake, "dispatch", send)
    buyers.set_fleet({"buyers": [{"id": "slow", "accept_rate": 1, "bid": 25.0, "latency_ms": 1200}]})
    load_tree(buyers.tree(network=NETWORK))
    lead_ids = [submit_lead(make_lead("solar", seed=90 + i)) for i in range(3)]
    for lead_id in lead_ids:        # in flight: pings and posts held unacked by the worker
        wait_for(lead_id, ("auctioning", "delivering"), timeout=20)
    server.restart()                                   # SIGKILL, then up again, empty
    time.sleep(5)                                      # the worker notices and reconnects
    assert stack.dead() == [], log.read_text()[-3000:]
    assert "Unrecoverable error" not in log.read_text()
    # What beat does: re-drive what the emptied Redis lost.
    until = time.monotonic() + 60
    while time.monotonic() < until and not terminal(lead_ids):
        send(lifecycle.sweep_stuck())
        send(lifecycle.rerun_held())
        time.sleep(2)
    with db.transaction() as cur:
        cur.execute("SELECT lead_id::text, buyer_id FROM sales WHERE lead_id::text = ANY(%s)", (lead_ids,))
        sales = cur.fetchall()
    assert sorted(s["lead_id"] for s in sales) == sorted(lead_ids)
    accepted = [p for p in buyers.posts() if p["lead_id"] in lead_ids and p["accepted"]]
    assert sorted(p["lead_id"] for p in accepted) == sorted(lead_ids)   # one accepted post each
    # And the same worker takes new work from the restarted Redis.
    after = submit_lead(make_lead("solar", seed=99))
    assert wait_for(after, ("sold",), timeout=30)["sale"]["buyer_id"] == "slow"
    assert stack.dead() == []
