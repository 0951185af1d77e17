"""Tier modes, tiers and caps on real parts: round robin, pre-pings, falling through, caps at award."""
from __future__ import annotations

from collections import Counter

from pipeline import submit_lead
from pipeline.adapters import db
from tests.helpers import fleet_of, make_lead, setup, wait_for

EQUAL = {"accept_rate": 1, "bid": 10.0, "tree": {"priority": 5}}


def _sold_to(lead_ids: list[str]) -> Counter:
    return Counter(wait_for(i, ("sold",))["sale"]["buyer_id"] for i in lead_ids)


def test_round_robin_shares_leads_evenly_one_at_a_time_and_ten_at_once(clean_db, workers, buyers):
    setup(buyers, fleet_of(*({"id": i, **EQUAL} for i in ("rr-a", "rr-b", "rr-c"))),
          tiers=[{"tier": 1, "mode": "round_robin"}])
    one_by_one = Counter()
    for seed in range(30):
        one_by_one += _sold_to([submit_lead(make_lead("solar", seed=1000 + seed))])
    assert all(9 <= one_by_one[b] <= 11 for b in ("rr-a", "rr-b", "rr-c")), one_by_one

    together = Counter()
    for batch in range(3):
        # Ten leads open the tier at once: each takes the next turn, none starts where another did.
        ids = [submit_lead(make_lead("solar", seed=2000 + 10 * batch + i)) for i in range(10)]
        sold = _sold_to(ids)
        assert sorted(sold.values()) == [3, 3, 4], sold
        together += sold
    assert all(9 <= together[b] <= 11 for b in ("rr-a", "rr-b", "rr-c")), together


def test_pre_ping_no_is_never_pinged_and_the_waterfall_walks_those_that_can_say_yes(
        clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "says-no", "accept_rate": 1, "bid": 50.0, "pre_ping_eligible_rate": 0,
         "tree": {"priority": 30, "pre_ping": True}},
        {"id": "says-yes", "accept_rate": 1, "bid": 40.0, "pre_ping_eligible_rate": 1,
         "tree": {"priority": 20, "pre_ping": True}},
        {"id": "no-pre-ping", "accept_rate": 1, "bid": 60.0, "tree": {"priority": 10}}),
        tiers=[{"tier": 1, "mode": "waterfall"}])
    lead_id = submit_lead(make_lead("solar", seed=21))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "says-yes"
    heard = [(p["kind"], p["buyer_id"]) for p in buyers.pings(lead_id)]
    assert sorted(heard) == [("ping", "says-yes"), ("pre_ping", "says-no"), ("pre_ping", "says-yes")]
    assert {(p["kind"], p["buyer_id"], p["outcome"]) for p in view["pings"]} == {
        ("pre_ping", "says-no", "ineligible"), ("pre_ping", "says-yes", "eligible"),
        ("ping", "says-yes", "accept")}


def test_a_tier_without_a_taker_falls_through_to_the_next_tier(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "top-shy", "accept_rate": 0, "bid": 80.0, "tree": {"tier": 1}},
        {"id": "next-tier", "accept_rate": 1, "bid": 15.0, "tree": {"tier": 2}}),
        tiers=[{"tier": 1, "mode": "auction"}, {"tier": 2, "mode": "waterfall"}])
    lead_id = submit_lead(make_lead("solar", seed=22))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "next-tier"
    assert [(p["tier"], p["buyer_id"], p["outcome"]) for p in view["pings"]] == [
        (1, "top-shy", "reject"), (2, "next-tier", "accept")]


def test_a_post_rejection_in_the_last_bid_of_a_tier_falls_through_to_the_next_tier(
        clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "top-picky", "accept_rate": 1, "bid": 80.0, "post_reject_rate": 1.0, "tree": {"tier": 1}},
        {"id": "next-tier", "accept_rate": 1, "bid": 15.0, "tree": {"tier": 2}}),
        tiers=[{"tier": 1, "mode": "auction"}, {"tier": 2, "mode": "round_robin"}])
    lead_id = submit_lead(make_lead("solar", seed=23))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"] == {**view["sale"], "buyer_id": "next-tier", "price": 15.0}
    assert [(p["tier"], p["buyer_id"], p["outcome"]) for p in view["pings"]] == [
        (1, "top-picky", "post_rejected"), (2, "next-tier", "accept")]
    assert [p["buyer_id"] for p in buyers.posts(lead_id)] == ["top-picky", "next-tier"]
    # The rejected award gave its reservation back: the cap counters read zero.
    assert _cap_usage("top-picky") == {}


def _cap_usage(buyer_id: str) -> dict[str, tuple[int, int]]:
    """period -> (leads, spend in cents) of the buyer's counters that are not zero."""
    with db.transaction() as cur:
        cur.execute("SELECT period, leads, spend_cents FROM cap_usage WHERE buyer_id=%s", (buyer_id,))
        return {r["period"]: (r["leads"], r["spend_cents"]) for r in cur.fetchall()
                if r["leads"] or r["spend_cents"]}


def test_a_failed_post_releases_the_reservation(clean_db, workers, buyers):
    setup(buyers, fleet_of(
        {"id": "refuses", "accept_rate": 1, "bid": 30.0, "post_reject_rate": 1.0,
         "tree": {"caps": {"daily": 5, "monthly_budget": 1000.0}}},
        {"id": "backup", "accept_rate": 1, "bid": 20.0, "tree": {"caps": {"daily": 5}}}))
    lead_id = submit_lead(make_lead("solar", seed=24))
    assert wait_for(lead_id, ("sold",))["sale"]["buyer_id"] == "backup"
    assert _cap_usage("refuses") == {}
    assert _cap_usage("backup") == {"daily": (1, 2000)}
    with db.transaction() as cur:
        cur.execute("SELECT buyer_id, period FROM cap_reservations")
        assert [(r["buyer_id"], r["period"]) for r in cur.fetchall()] == [("backup", "daily")]


def _contended(buyers, caps: dict, reason: str) -> None:
    """Eight leads at once against a cap of three: all pass eligibility before any award."""
    setup(buyers, fleet_of(
        # The slow answer holds every auction open until all eight have checked the cap.
        {"id": "capped", "accept_rate": 1, "bid": 20.0, "latency_ms": 1200, "tree": {"caps": caps}},
        {"id": "backup", "accept_rate": 1, "bid": 5.0, "latency_ms": 1200}),
        network={"auction_timeout_s": 5})
    ids = [submit_lead(make_lead("auto_insurance", seed=300 + i)) for i in range(8)]
    leads = [wait_for(i, ("sold",), timeout=40) for i in ids]
    assert Counter(v["sale"]["buyer_id"] for v in leads) == {"capped": 3, "backup": 5}
    assert _cap_usage("capped")["daily"] == (3, 6000)
    found_full = [p["reason"] for v in leads for p in v["pings"]
                  if p["buyer_id"] == "capped" and p["outcome"] == "reject"]
    skipped = [s["reason"] for v in leads for s in v["skipped"]]
    assert found_full, "no award found the cap full: the reservation was not contended"
    assert set(found_full + skipped) == {reason}


def test_concurrent_awards_never_pass_a_count_cap(clean_db, workers, buyers):
    _contended(buyers, {"daily": 3}, "cap_daily")


def test_concurrent_awards_never_pass_a_budget_cap_and_say_it_was_the_budget(clean_db, workers, buyers):
    _contended(buyers, {"daily": 100, "daily_budget": 60.0}, "cap_daily_budget")


def test_a_lead_under_the_score_floor_is_rejected_with_its_signals(clean_db, workers, buyers):
    from datetime import UTC, datetime, timedelta

    from pipeline.domain import scoring
    setup(buyers, fleet_of({"id": "taker", "accept_rate": 1, "bid": 20.0}),
          network={"score_floor": 90})
    now = datetime.now(UTC)
    # A bot's lead: a throw-away inbox, the same word twice as a name, a form filled in 2 s.
    poor = make_lead("solar", seed=51, contact__first_name="Xy", contact__last_name="Xy",
                     contact__email="xy123@mailinator.com",
                     form={"started_at": (now - timedelta(seconds=2)).isoformat(),
                           "submitted_at": now.isoformat()})
    poor_view = wait_for(submit_lead(poor), ("rejected",))
    assert poor_view["reject_reasons"] == ["low_score"] and poor_view["pings"] == []
    signals = poor_view["signals"]
    assert (signals["email_domain"], signals["name_quality"], signals["form_time"]) == (0.0, 0.3, 0.0)
    assert set(signals) == set(scoring.WEIGHTS)
    assert poor_view["score"] == scoring.total(signals) < 90
    assert buyers.pings(poor_view["lead_id"]) == []
