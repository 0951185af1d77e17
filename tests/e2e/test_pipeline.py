"""The whole pipeline on real parts: Celery workers on Redis, PostgreSQL, HTTP buyers."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from pipeline import submit_lead
from pipeline.adapters import db, store, views
from pipeline.domain.leads import parse_lead
from pipeline.domain.validation import normalise
from tests.helpers import fleet_of, make_lead, setup, wait_for, wait_until_quiet

pytestmark = pytest.mark.integration

def drain(timeout: float = 15.0) -> None:
    """Wait until no message is queued, running or waiting for its countdown: every duplicate
    has been handled."""
    left = wait_until_quiet(timeout)
    assert not left, "the workers did not go idle:\n" + "\n".join(left)


def sales_of(lead_id: str) -> list[dict]:
    with db.transaction() as cur:
        cur.execute("SELECT * FROM sales WHERE lead_id=%s", (lead_id,))
        return cur.fetchall()


def test_lead_is_sold_to_the_highest_bidder_and_posted_once(clean_db, workers, buyers):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    setup(buyers, fleet_of(
        {"id": "low", "accept_rate": 1, "bid": 12.5, "secret": secret},
        {"id": "high", "accept_rate": 1, "bid": 31.25, "secret": secret},
        {"id": "mid", "accept_rate": 1, "bid": 20.0, "secret": secret}))
    lead = make_lead("solar", seed=1)
    lead_id = submit_lead(lead)

    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "high"
    assert view["sale"]["price"] == 31.25
    with db.transaction() as cur:   # three buyers, two per ping task: a chord of two shards
        cur.execute("SELECT shards FROM auctions WHERE lead_id=%s", (lead_id,))
        assert cur.fetchone()["shards"] == 2
    assert sorted((p["buyer_id"], p["outcome"], p["bid"]) for p in view["pings"]) == [
        ("high", "accept", 31.25), ("low", "accept", 12.5), ("mid", "accept", 20.0)]
    assert [t["status"] for t in view["timeline"]] == [
        "received", "validated", "scored", "auctioning", "delivering", "sold"]
    posts = buyers.posts(lead_id)
    assert [(p["buyer_id"], p["idempotency_key"], p["signature_ok"]) for p in posts] == [
        ("high", lead_id, True)]
    assert posts[0]["price"] == 31.25
    stats = buyers.stats()["total"]
    assert stats["pii_violations"] == 0 and stats["bad_signatures"] == 0
    # The lead view never shows personal data.
    text = str(view)
    for secret_value in (lead["contact"]["email"], lead["contact"]["last_name"],
                         lead["consent"]["ip"]):
        assert secret_value not in text


def test_duplicated_task_messages_change_nothing(clean_db, workers, buyers):
    from tasks.app import app
    setup(buyers, fleet_of({"id": "only", "accept_rate": 1, "bid": 10.0}))
    lead_id = submit_lead(make_lead("mortgage", seed=2))
    # Duplicates while the lead is in flight...
    app.send_task("pingtree.validate_lead", args=(lead_id,))
    app.send_task("pingtree.validate_lead", args=(lead_id,))
    wait_for(lead_id, ("sold",))
    drain()
    with db.transaction() as cur:
        auction_id = str(views.store.lead_row(cur, lead_id)["auction_id"] or "")
        cur.execute("SELECT id FROM auctions WHERE lead_id=%s", (lead_id,))
        auction_id = str(cur.fetchone()["id"])
        before = views.lead_view(cur, lead_id)
    # ... and every stage's message replayed after the sale.
    for name, args in [("pingtree.validate_lead", (lead_id,)), ("pingtree.score_lead", (lead_id,)),
                       ("pingtree.ping_shard", (auction_id, 0)),
                       ("pingtree.award_auction", (auction_id,)),
                       ("pingtree.close_overdue", ()),
                       ("pingtree.deliver_post", (lead_id,))]:
        app.send_task(name, args=args)
        app.send_task(name, args=args)
    drain()
    with db.transaction() as cur:
        after = views.lead_view(cur, lead_id)
    assert after == before
    assert [t["status"] for t in after["timeline"]].count("validated") == 1
    assert len(sales_of(lead_id)) == 1
    assert len(buyers.posts(lead_id)) == 1
    assert len(buyers.pings(lead_id)) == 1


def test_duplicated_messages_while_the_lead_is_in_flight_change_nothing(clean_db, workers, buyers):
    from tasks.app import app
    # A buyer slow enough (ping and post) that the lead is seen auctioning and delivering.
    setup(buyers, fleet_of({"id": "slow", "accept_rate": 1, "bid": 10.0, "latency_ms": 400}),
          network={"auction_timeout_s": 3})
    lead_id = submit_lead(make_lead("solar", seed=21))
    seen: list[str] = []
    until = time.monotonic() + 20
    while time.monotonic() < until:
        with db.transaction() as cur:
            cur.execute("SELECT l.status, a.id AS auction_id FROM leads l LEFT JOIN auctions a"
                        " ON a.lead_id = l.id WHERE l.id=%s ORDER BY a.started_at DESC LIMIT 1",
                        (lead_id,))
            row = cur.fetchone()
        status, auction_id = row["status"], row["auction_id"] and str(row["auction_id"])
        if status in ("sold", "rejected", "held", "unsold"):
            break
        if status not in seen:
            seen.append(status)
            # Every message a broker could duplicate at this point, twice, while the lead moves.
            replays = {"received": [("pingtree.validate_lead", (lead_id,))],
                       "validated": [("pingtree.score_lead", (lead_id,))],
                       "auctioning": [("pingtree.ping_shard", (auction_id, 0)),
                                      ("pingtree.award_auction", (auction_id,)),
                                      ("pingtree.score_lead", (lead_id,))],
                       "delivering": [("pingtree.deliver_post", (lead_id,)),
                                      ("pingtree.award_auction", (auction_id,))]}.get(status, [])
            for name, args in replays * 2:
                app.send_task(name, args=args)
        time.sleep(0.01)
    assert {"auctioning", "delivering"} <= set(seen), (seen, status)
    view = wait_for(lead_id, ("sold",))
    drain()
    assert view["sale"]["buyer_id"] == "slow"
    # Not closed early by a duplicated award: the slow buyer's accept was on time.
    assert [(p["buyer_id"], p["outcome"]) for p in view["pings"]] == [("slow", "accept")]
    assert len(sales_of(lead_id)) == 1
    assert len(buyers.posts(lead_id)) == 1 and len(buyers.pings(lead_id)) == 1
    statuses = [t["status"] for t in wait_for(lead_id, ("sold",))["timeline"]]
    assert all(statuses.count(s) == 1 for s in ("validated", "scored", "sold")), statuses


def test_post_rejection_falls_back_to_the_next_bid(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "picky", "accept_rate": 1, "bid": 50.0, "post_reject_rate": 1.0,
         "post_reject_reason": "duplicate_in_crm"},
        {"id": "steady", "accept_rate": 1, "bid": 25.0}))
    lead_id = submit_lead(make_lead("debt_relief", seed=3))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"] == {**view["sale"], "buyer_id": "steady", "price": 25.0}
    outcomes = {p["buyer_id"]: (p["outcome"], p["reason"]) for p in view["pings"]}
    assert outcomes["picky"] == ("post_rejected", "duplicate_in_crm")
    assert [p["buyer_id"] for p in buyers.posts(lead_id)] == ["picky", "steady"]
    assert len(sales_of(lead_id)) == 1


def test_a_hanging_buyer_does_not_hold_the_auction_past_its_deadline(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "hangs", "accept_rate": 1, "bid": 90.0, "hang_rate": 1.0, "hang_s": 30},
        {"id": "prompt", "accept_rate": 1, "bid": 15.0, "tree": {"timeout_ms": 5000}}),
        network={"auction_timeout_s": 1})
    started = time.monotonic()
    lead_id = submit_lead(make_lead("solar", seed=4))
    view = wait_for(lead_id, ("sold",), timeout=10)
    assert time.monotonic() - started < 8        # not the 30 s the buyer hangs
    assert view["sale"]["buyer_id"] == "prompt"
    hung = next(p for p in view["pings"] if p["buyer_id"] == "hangs")
    assert hung["outcome"] == "timeout"


def test_unbought_lead_is_held_rerun_then_unsold_and_never_billed(clean_db, workers, buyers):
    from tasks.app import app
    setup(buyers, fleet_of({"id": "nope", "accept_rate": 0, "reason": "not_interested"},
                           {"id": "homes", "accept_rate": 1, "bid": 20.0,
                            "tree": {"verticals": ["home_insurance"]}}),
          network={"max_cycles": 2, "rerun_interval_s": 1})
    sold = submit_lead(make_lead("home_insurance", seed=15))   # billed beside the unsold one
    assert wait_for(sold, ("sold",))["sale"]["buyer_id"] == "homes"
    lead_id = submit_lead(make_lead("auto_insurance", seed=5))
    wait_for(lead_id, ("held",))
    time.sleep(1.1)
    app.send_task("pingtree.rerun_held")        # what beat does every few seconds
    view = wait_for(lead_id, ("unsold",))
    assert view["cycles"] == 2
    assert [p["cycle"] for p in view["pings"]] == [1, 2]
    assert view["sale"] is None
    with db.transaction() as cur:
        cur.execute("SELECT to_char(sold_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month FROM sales")
        bill = views.billing(cur, cur.fetchone()["month"])
    assert bill["leads"] == 1 and bill["total"] == 20.0
    assert bill["buyers"] == [{"buyer_id": "homes", "leads": 1, "amount": 20.0}]


def test_waterfall_stops_at_the_first_accept(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "first", "accept_rate": 0, "bid": 40.0, "tree": {"priority": 30}},
        {"id": "second", "accept_rate": 1, "bid": 30.0, "tree": {"priority": 20}},
        {"id": "third", "accept_rate": 1, "bid": 50.0, "tree": {"priority": 10}}),
        tiers=[{"tier": 1, "mode": "waterfall"}])
    lead_id = submit_lead(make_lead("solar", seed=6))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "second"
    assert [p["buyer_id"] for p in view["pings"]] == ["first", "second"]
    assert not any(p["buyer_id"] == "third" for p in buyers.pings(lead_id))


def test_ineligible_buyers_are_never_pinged_and_the_reason_is_recorded(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "texas", "accept_rate": 1, "bid": 40.0, "tree": {"geo": {"states": ["TX"]}}},
        {"id": "renters-only", "accept_rate": 1, "bid": 40.0,
         "tree": {"rules": [{"field": "qualifiers.homeowner", "op": "eq", "value": False}]}},
        {"id": "anyone", "accept_rate": 1, "bid": 5.0}))
    lead = make_lead("solar", seed=7)
    lead["contact"].update(city="Miami", state="FL", zip="33131")
    lead["qualifiers"]["homeowner"] = True
    lead_id = submit_lead(lead)
    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "anyone"
    skipped = {s["buyer_id"]: s["reason"] for s in view["skipped"]}
    assert skipped == {"texas": "geo", "renters-only": "rule:qualifiers.homeowner"}
    assert {p["buyer_id"] for p in buyers.pings(lead_id)} == {"anyone"}


def test_daily_cap_moves_the_second_lead_to_another_buyer(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "capped", "accept_rate": 1, "bid": 60.0, "tree": {"caps": {"daily": 1}}},
        {"id": "backup", "accept_rate": 1, "bid": 20.0}))
    first = submit_lead(make_lead("home_insurance", seed=8))
    assert wait_for(first, ("sold",))["sale"]["buyer_id"] == "capped"
    second = submit_lead(make_lead("home_insurance", seed=9))
    view = wait_for(second, ("sold",))
    assert view["sale"]["buyer_id"] == "backup"
    assert {"buyer_id": "capped", "reason": "cap_daily", "cycle": 1} in view["skipped"]


def test_the_same_consumer_twice_at_once_is_sold_once_and_rejected_once(clean_db, workers, buyers):
    setup(buyers, fleet_of({"id": "only", "accept_rate": 1, "bid": 10.0}),
          network={"duplicate_window_h": 24})
    lead = make_lead("solar", seed=12)
    found = normalise(parse_lead(lead, datetime.now(UTC)))
    # Hold the consumer's validation lock so both validations are in flight at once, then let go.
    with db.transaction() as cur:
        store.lock_contact(cur, "solar", found.phone_sha256, found.email_sha256)
        first, second = submit_lead(lead), submit_lead(lead)
        until = time.monotonic() + 10
        with db.transaction() as watch:
            while True:
                watch.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype='advisory'"
                              " AND NOT granted AND database = (SELECT oid FROM pg_database"
                              " WHERE datname = current_database())")
                if watch.fetchone()["n"] >= 2:
                    break
                assert time.monotonic() < until, "the two validations never waited side by side"
                time.sleep(0.02)
    views_ = [wait_for(i, ("sold", "rejected")) for i in (first, second)]
    assert sorted(v["status"] for v in views_) == ["rejected", "sold"]
    rejected = next(v for v in views_ if v["status"] == "rejected")
    assert rejected["reject_reasons"] == ["duplicate"]
    assert rejected["duplicate_of"] == next(v for v in views_ if v["status"] == "sold")["lead_id"]


def test_a_replayed_waterfall_walk_pings_nobody_again(clean_db, workers, buyers):
    from tasks.app import app
    setup(buyers, fleet_of(
        {"id": "first", "accept_rate": 1, "bid": 40.0, "tree": {"priority": 30}},
        {"id": "second", "accept_rate": 1, "bid": 30.0, "tree": {"priority": 20}}),
        tiers=[{"tier": 1, "mode": "waterfall"}])
    lead_id = submit_lead(make_lead("solar", seed=13))
    assert wait_for(lead_id, ("sold",))["sale"]["buyer_id"] == "first"
    drain()
    with db.transaction() as cur:
        cur.execute("SELECT id FROM auctions WHERE lead_id=%s", (lead_id,))
        auction_id = str(cur.fetchone()["id"])
    app.send_task("pingtree.walk_waterfall", args=(auction_id,))
    app.send_task("pingtree.walk_waterfall", args=(auction_id, 0))
    drain()
    assert [p["buyer_id"] for p in buyers.pings(lead_id)] == ["first"]
    assert len(buyers.posts(lead_id)) == 1


def test_waterfall_walks_on_after_a_post_rejection(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "first", "accept_rate": 1, "bid": 40.0, "post_reject_rate": 1.0, "tree": {"priority": 30}},
        {"id": "second", "accept_rate": 1, "bid": 30.0, "tree": {"priority": 20}},
        {"id": "third", "accept_rate": 1, "bid": 20.0, "tree": {"priority": 10}}),
        tiers=[{"tier": 1, "mode": "waterfall"}])
    lead_id = submit_lead(make_lead("solar", seed=14))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "second"
    assert [(p["buyer_id"], p["outcome"]) for p in view["pings"]] == [
        ("first", "post_rejected"), ("second", "accept")]
    assert [p["buyer_id"] for p in buyers.pings(lead_id)] == ["first", "second"]
