"""The rules at their edges: caps at their limit, a score at min_score, a bid at the floor or MAX_BID."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from pipeline.domain import auction
from pipeline.domain.auction import Bid
from pipeline.domain.buyers import Buyer, Usage, cap_reached, eligibility, period_starts
from pipeline.domain.modes import tier_mode
from pipeline.domain.money import MAX_BID, parse_bid, to_cents

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def buyer(id_: str, **kw) -> Buyer:
    return Buyer(id=id_, name=id_, tier=1, verticals=("solar",), ping_url="https://b/ping",
                 post_url="https://b/post", **kw)


@pytest.mark.parametrize("caps,usage,price,reason", [
    ({"daily": 1}, Usage(), 0, None),                                   # nothing used yet
    ({"daily": 3}, Usage({"daily": 2}, {}), 0, None),                   # the last one fits
    ({"daily": 3}, Usage({"daily": 3}, {}), 0, "cap_daily"),
    ({"daily": 0}, Usage(), 0, "cap_daily"),
    ({"daily_budget": 5000}, Usage(), 5000, None),                      # exactly the budget
    ({"daily_budget": 5000}, Usage({}, {"daily": 4000}), 1000, None),
    ({"daily_budget": 5000}, Usage({}, {"daily": 4001}), 1000, "cap_daily_budget"),
    ({"daily_budget": 5000}, Usage(), 5001, "cap_daily_budget"),
    ({"hourly": 5, "monthly": 2}, Usage({"hourly": 1, "monthly": 2}, {}), 0, "cap_monthly"),
])
def test_a_cap_stops_the_lead_that_would_pass_it_not_the_one_that_reaches_it(caps, usage, price, reason):
    assert cap_reached(caps, usage, price) == reason


@pytest.mark.parametrize("score,min_score,eligible", [(80, 80, True), (79, 80, False), (None, 0, True),
                                                      (None, 1, False), (0, 0, True)])
def test_min_score_is_inclusive(score, min_score, eligible):
    lead = {"lead_id": "l", "vertical": "solar", "score": score,
            "geo": {"zip": "33131", "city": "Miami", "state": "FL"}, "qualifiers": {}}
    found, _ = eligibility(lead, [buyer("b", min_score=min_score)], NOW, {})
    assert bool(found) is eligible


def test_period_starts_are_whole_hours_days_weeks_months():
    starts = period_starts(datetime(2026, 11, 25, 15, 37, 12, 500, tzinfo=UTC), ZoneInfo("UTC"))
    assert {k: v.isoformat() for k, v in starts.items()} == {
        "hourly": "2026-11-25T15:00:00+00:00", "daily": "2026-11-25T00:00:00+00:00",
        "weekly": "2026-11-23T00:00:00+00:00", "monthly": "2026-11-01T00:00:00+00:00"}


def test_rank_reads_each_buyers_own_usage_and_a_missing_bid_as_zero():
    roomy, tight = buyer("z-roomy", caps={"daily": 10}), buyer("a-tight", caps={"daily": 10})
    usage = {"a-tight": Usage({"daily": 9}, {}), "z-roomy": Usage({"daily": 1}, {})}
    ranked = auction.rank([tight, roomy], usage)
    assert [b.id for b in ranked] == ["z-roomy", "a-tight"]
    assert [b.id for b in auction.rank([buyer("a"), buyer("b", bid_cents=1)], {})] == ["b", "a"]


def test_shards_never_hold_more_buyers_than_their_size():
    assert [auction.shard_count(n, size) for n, size in [(3, 1), (5, 0), (4, 2)]] == [3, 5, 2]


def test_a_bid_at_the_floor_wins_and_zero_is_the_lowest_bid():
    bids = [Bid("p0", "zero", 0, "accept", 0), Bid("p1", "cent", 1, "accept", 1)]
    assert [b.buyer_id for b in tier_mode("auction").candidates(bids, 0)] == ["cent", "zero"]
    assert [b.buyer_id for b in tier_mode("auction").candidates(bids, 1)] == ["cent"]
    assert [b.buyer_id for b in tier_mode("waterfall").candidates(bids, 1)] == ["cent"]


@pytest.mark.parametrize("said,cents", [
    (MAX_BID, 1_000_000), (10000, 1_000_000), ("10000.00", 1_000_000), (10000.0, 1_000_000),
    (10001, None), ("10000.01", None), (Decimal("10000.001"), None), (-1, None), (0, 0),
    ("0." + "0" * 36 + "1", 0), ("0." + "0" * 37 + "1", None),      # 39 characters read, 40 not
])
def test_a_bid_at_its_bounds(said, cents):
    assert parse_bid(said) == cents


@pytest.mark.parametrize("amount,cents", [(0.29, 29), (1.15, 115), (Decimal("1.999"), 199), (5, 500),
                                          ("7.5", 750)])
def test_to_cents_reads_a_float_through_its_shortest_repr(amount, cents):
    assert to_cents(amount) == cents


def test_miles_between_on_the_earths_surface():
    from pipeline.domain.buyers import miles_between
    assert miles_between((0, 0), (0, 1)) == pytest.approx(69.09, abs=0.01)      # a degree at the equator
    assert miles_between((0, 0), (1, 0)) == pytest.approx(69.09, abs=0.01)
    assert miles_between((60, 0), (60, 1)) == pytest.approx(34.55, abs=0.01)    # half as far at 60°N
    assert miles_between((25.77, -80.19), (28.54, -81.38)) == pytest.approx(205, abs=2)   # Miami-Orlando


def test_a_schedule_window_to_the_minute_and_its_defaults():
    from pipeline.domain.buyers import in_schedule
    window = {"timezone": "UTC", "start": "08:30", "end": "09:15"}
    at = lambda h, m: datetime(2026, 11, 23, h, m, 59, tzinfo=UTC)   # noqa: E731
    assert [in_schedule(window, at(*t)) for t in [(8, 29), (8, 30), (9, 14), (9, 15)]] == [
        False, True, True, False]
    # No timezone is UTC; no start / end is the whole day; no days is every day.
    assert in_schedule({"start": "17:00", "end": "17:01"}, NOW)
    assert not in_schedule({"start": "17:01", "end": "18:00"}, NOW)
    assert in_schedule({"days": ["mon"]}, NOW) and not in_schedule({"days": ["tue"]}, NOW)
    assert in_schedule({"timezone": "America/New_York", "end": "12:01"}, NOW)    # noon in New York
    assert not in_schedule({"timezone": "America/New_York", "start": "12:01"}, NOW)


def test_buyer_from_a_database_row():
    row = {"id": "b", "name": "B", "tier": 2, "verticals": ["solar", "mortgage"], "ping_url": "https://b/p",
           "post_url": "https://b/q", "rules": None, "caps": {"daily": 3}, "created_at": "ignored",
           "priority": 7, "bid_cents": 1500, "secret": "whsec_x"}
    loaded = Buyer.from_row(row)
    assert (loaded.verticals, loaded.rules, loaded.caps, loaded.priority, loaded.bid_cents, loaded.tier) == (
        ("solar", "mortgage"), (), {"daily": 3}, 7, 1500, 2)
    with_rules = Buyer.from_row({**row, "verticals": None, "rules": [{"field": "score"}]})
    assert with_rules.rules == ({"field": "score"},)
    assert Buyer.from_row({**row, "verticals": None}).verticals == ()
    assert "whsec_x" not in repr(loaded)


def test_a_waterfall_walks_in_rank_order_and_then_to_the_next_unpinged():
    ranked = tier_mode("waterfall").order([buyer("c", priority=1), buyer("a"), buyer("b", bid_cents=900)], {})
    assert [b.id for b in ranked] == ["c", "b", "a"]
    assert auction.next_to_ping(["c", "b", "a"], {"c"}) == "b"
    assert auction.next_to_ping(["c", "b", "a"], {"c", "b", "a"}) is None
    assert auction.next_to_ping(["c", "b", "a"], set()) == "c"
