"""Faults lose nothing: lost messages and an emptied Redis are recovered by the sweep."""
from __future__ import annotations

import time

import pytest
import redis

from config.settings import settings
from pipeline import submit_lead
from pipeline.adapters import db
from pipeline.service import intake
from tests.helpers import load_tree, make_lead, redeliver, unacked_tags, wait_for, wait_until_quiet

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 1, "max_cycles": 2,
           "rerun_interval_s": 1, "duplicate_window_h": 0, "stuck_after_s": 5}


def all_sold(lead_ids: list[str]) -> bool:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM leads WHERE status='sold' AND id::text = ANY(%s)",
                    (lead_ids,))
        return cur.fetchone()["n"] == len(lead_ids)


def sweep_after(seconds: float) -> None:
    """What beat does every few seconds, once the lead has been idle long enough."""
    from tasks.app import app
    time.sleep(seconds)
    app.send_task("pingtree.sweep_stuck")


def test_a_lost_first_message_is_re_driven_by_the_sweep(clean_db, workers, buyers, monkeypatch):
    buyers.set_fleet({"buyers": [{"id": "b1", "accept_rate": 1, "bid": 22.0, "latency_ms": 2}]})
    load_tree(buyers.tree(network=NETWORK))
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)   # the broker lost it
    lead_id = submit_lead(make_lead("solar", seed=11))
    time.sleep(1)
    assert wait_for(lead_id, ("received",), timeout=1)["status"] == "received"
    sweep_after(5)
    view = wait_for(lead_id, ("sold",), timeout=15)
    assert view["sale"]["buyer_id"] == "b1"
    assert len(buyers.posts(lead_id)) == 1


def test_redis_emptied_mid_auction_loses_nothing_and_sells_once(clean_db, workers, buyers):
    from tasks.app import app
    buyers.set_fleet({"buyers": [
        {"id": "slow", "accept_rate": 1, "bid": 40.0, "latency_ms": 1500},
        {"id": "fast", "accept_rate": 1, "bid": 10.0, "latency_ms": 2}]})
    load_tree(buyers.tree(network={**NETWORK, "auction_timeout_s": 3}))
    lead_ids = [submit_lead(make_lead("solar", seed=20 + i)) for i in range(5)]
    in_flight = when_all_in_flight(lead_ids)
    redis.Redis.from_url(settings.redis_url).flushdb()   # a Redis restart with nothing on disk
    assert in_flight == set(lead_ids)
    # What beat does: sweep stuck leads and re-run held ones (a ping queued at the flush is
    # lost, its auction closes at the deadline with no answer and the lead is held).
    redrive_until_sold(app, lead_ids, 60)
    for lead_id in lead_ids:
        view = wait_for(lead_id, ("sold",), timeout=1)
        assert view["sale"]["buyer_id"] in ("slow", "fast")
    assert_sold_once(lead_ids, buyers)


def when_all_in_flight(lead_ids: list[str], timeout: float = 15) -> set[str]:
    """Wait until every lead is between its auction and its sale at once; returns them."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        with db.transaction() as cur:
            cur.execute("SELECT id::text FROM leads WHERE status IN ('auctioning', 'delivering')"
                        " AND id::text = ANY(%s)", (lead_ids,))
            moving = {r["id"] for r in cur.fetchall()}
        if moving == set(lead_ids):
            return moving
        time.sleep(0.02)
    return moving


def redrive_until_sold(app, lead_ids: list[str], seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until and not all_sold(lead_ids):
        app.send_task("pingtree.sweep_stuck")
        app.send_task("pingtree.rerun_held")
        time.sleep(2)


def assert_sold_once(lead_ids: list[str], buyers) -> None:
    """One sale each, and no lead accepted by two buyers (the buyers' own records)."""
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n, count(DISTINCT lead_id) AS d FROM sales"
                    " WHERE lead_id::text = ANY(%s)", (lead_ids,))
        row = cur.fetchone()
    assert (row["n"], row["d"]) == (len(lead_ids), len(lead_ids))
    accepted_posts: dict[str, set] = {}
    for post in buyers.posts():
        if post["lead_id"] in lead_ids and post["accepted"]:
            accepted_posts.setdefault(post["lead_id"], set()).add(post["buyer_id"])
    assert all(len(b) == 1 for b in accepted_posts.values())


def test_a_killed_worker_loses_nothing_and_sells_once(clean_db, workers, buyers):
    import os
    import signal

    from tasks.app import app
    buyers.set_fleet({"buyers": [
        {"id": "slow", "accept_rate": 1, "bid": 30.0, "latency_ms": 1500},
        {"id": "steady", "accept_rate": 1, "bid": 12.0, "latency_ms": 300}]})
    load_tree(buyers.tree(network={**NETWORK, "auction_timeout_s": 3}))
    lead_ids = [submit_lead(make_lead("mortgage", seed=40 + i)) for i in range(4)]
    assert when_all_in_flight(lead_ids) == set(lead_ids)
    for proc in workers.procs.values():          # kill -9 mid-auction: no goodbye, no acks
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    orphans = unacked_tags()                     # what the dead worker had taken
    workers.start()
    deadline = time.monotonic() + 30
    while not app.control.ping(timeout=0.5):
        assert time.monotonic() < deadline, "the restarted worker did not answer within 30 s"
    assert workers.dead() == []
    # What beat does: sweep stuck leads, re-run held ones (a cut-short auction may end held).
    redrive_until_sold(app, lead_ids, 40)
    for lead_id in lead_ids:
        assert wait_for(lead_id, ("sold",), timeout=1)["sale"] is not None
    # Its messages come back once the visibility timeout is over (300 s; here at once) and
    # replay against sold leads: nothing changes.
    assert redeliver(orphans) == len(orphans) > 0
    assert not wait_until_quiet(30)
    assert_sold_once(lead_ids, buyers)


def test_an_auction_whose_ping_task_never_ran_is_closed_by_the_deadline_close(clean_db, workers, buyers,
                                                                            monkeypatch):
    from pipeline.service import lifecycle
    from tasks.app import app
    buyers.set_fleet({"buyers": [{"id": "b1", "accept_rate": 1, "bid": 22.0, "latency_ms": 2}]})
    load_tree(buyers.tree(network={**NETWORK, "auction_timeout_s": 1, "max_cycles": 1}))
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)
    lead_id = submit_lead(make_lead("solar", seed=60))
    assert lifecycle.validate_lead(lead_id)          # run here, the worker never hears of it
    lost = lifecycle.score_lead(lead_id)             # the ping message is "lost": never sent
    assert [n.task for n in lost] == ["pingtree.ping_shard"]
    assert wait_for(lead_id, ("auctioning",), timeout=1)
    time.sleep(1.0 + settings.close_grace_s)
    app.send_task("pingtree.close_overdue")         # what each award worker does every 0.25 s
    time.sleep(1)
    # Its clock never started (a ping task late in a backlog still gets its full time): the
    # close waits stuck_after_s for a ping task that never starts.
    assert wait_for(lead_id, ("auctioning",), timeout=1)
    time.sleep(NETWORK["stuck_after_s"] - 1.0)
    app.send_task("pingtree.close_overdue")
    view = wait_for(lead_id, ("unsold",), timeout=10)
    assert [(p["buyer_id"], p["outcome"], p["reason"]) for p in view["pings"]] == [
        ("b1", "not_pinged", "never_pinged")]
    assert buyers.pings(lead_id) == []


def test_duplicated_deliver_messages_mid_post_send_one_post(clean_db, workers, buyers):
    from tasks.app import app
    buyers.set_fleet({"buyers": [{"id": "slow", "accept_rate": 1, "bid": 20.0, "latency_ms": 600}]})
    load_tree(buyers.tree(network={**NETWORK, "auction_timeout_s": 3}))
    lead_id = submit_lead(make_lead("solar", seed=80))
    wait_for(lead_id, ("delivering", "sold"), timeout=10)
    for _ in range(4):                        # broker duplicates while the post is on the wire
        app.send_task("pingtree.deliver_post", args=(lead_id,))
    view = wait_for(lead_id, ("sold",), timeout=15)
    assert view["sale"]["buyer_id"] == "slow"
    assert len(buyers.posts(lead_id)) == 1
    assert buyers.stats("slow")["post_duplicates"] == 0     # never a second post on the wire
    assert [p["outcome"] for p in view["posts"]] == ["accepted"]
