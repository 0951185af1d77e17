"""Auction rules without a worker: eligibility, ranking, winners, answers, signatures."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.domain import auction
from pipeline.domain.buyers import Buyer, Usage, eligibility, in_schedule, period_starts
from pipeline.domain.rules import rule_holds
from pipeline.protocols import native as protocol

LEAD = {"lead_id": "l1", "vertical": "solar", "score": 80,
        "geo": {"zip": "33131", "city": "Miami", "state": "FL"},
        "qualifiers": {"homeowner": True, "monthly_electric_bill": 180}}
NOON_MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)   # 12:00 in New York


def buyer(id_: str, **kw) -> Buyer:
    return Buyer(id=id_, name=id_, tier=kw.pop("tier", 1), verticals=kw.pop("verticals", ("solar",)),
                 ping_url="https://b/ping", post_url="https://b/post", **kw)


def reasons(buyers, usage=None, now=NOON_MONDAY):
    eligible, skipped = eligibility(LEAD, buyers, now, usage or {})
    return [b.id for b in eligible], {s.buyer_id: s.reason for s in skipped}


def test_each_filter_skips_with_its_reason():
    ok, skipped = reasons([
        buyer("ok"),
        buyer("off", active=False),
        buyer("mortgage-only", verticals=("mortgage",)),
        buyer("texas", geo={"states": ["TX"]}),
        buyer("fussy", min_score=81),
        buyer("renters", rules=({"field": "qualifiers.homeowner", "op": "eq", "value": False},)),
        buyer("night", schedule={"timezone": "America/New_York", "days": ["mon"],
                                 "start": "20:00", "end": "23:00"}),
        buyer("full", caps={"daily": 3}),
    ], usage={"full": Usage({"daily": 3}, {})})
    assert ok == ["ok"]
    assert skipped == {"off": "inactive", "mortgage-only": "vertical", "texas": "geo",
                       "fussy": "min_score", "renters": "rule:qualifiers.homeowner",
                       "night": "schedule", "full": "cap_daily"}


def test_radius_geo_uses_zip_distance():
    near = buyer("near", geo={"radius": {"zip": "33139", "miles": 10}})      # Miami Beach
    far = buyer("far", geo={"radius": {"zip": "32801", "miles": 50}})        # Orlando
    ok, skipped = reasons([near, far])
    assert ok == ["near"] and skipped == {"far": "geo"}


@pytest.mark.parametrize("rule,holds", [
    ({"field": "score", "op": "gte", "value": 80}, True),
    ({"field": "score", "op": "gt", "value": 80}, False),
    ({"field": "qualifiers.monthly_electric_bill", "op": "lt", "value": 200}, True),
    ({"field": "geo.state", "op": "in", "value": ["FL", "GA"]}, True),
    ({"field": "geo.state", "op": "not_in", "value": ["FL"]}, False),
    ({"field": "qualifiers.roof_shade", "op": "exists", "value": None}, False),
    ({"field": "qualifiers.homeowner", "op": "ne", "value": False}, True),
    ({"field": "geo.state", "op": "gt", "value": 3}, False),        # a type mismatch never holds
])
def test_rule_ops(rule, holds):
    assert rule_holds(rule, LEAD) is holds


def test_overnight_schedule_wraps_midnight():
    night = {"timezone": "UTC", "start": "22:00", "end": "06:00"}
    assert in_schedule(night, datetime(2026, 11, 23, 23, 30, tzinfo=UTC))
    assert in_schedule(night, datetime(2026, 11, 24, 5, 59, tzinfo=UTC))
    assert not in_schedule(night, datetime(2026, 11, 24, 12, 0, tzinfo=UTC))


def test_cap_periods_start_in_the_buyers_timezone():
    from zoneinfo import ZoneInfo
    starts = period_starts(datetime(2026, 11, 1, 3, 30, tzinfo=UTC), ZoneInfo("America/New_York"))
    # 03:30 UTC on 1 Nov is still 31 Oct in New York.
    assert starts["daily"].isoformat() == "2026-10-31T00:00:00-04:00"
    assert starts["monthly"].isoformat() == "2026-10-01T00:00:00-04:00"
    assert starts["weekly"].date().isoformat() == "2026-10-26"


def test_rank_priority_then_bid_then_capacity_then_id():
    buyers = [buyer("c", priority=1, bid_cents=500), buyer("b", priority=1, bid_cents=900),
              buyer("a", priority=5, bid_cents=100), buyer("e", priority=1, bid_cents=900,
                                                           caps={"daily": 10}),
              buyer("d", priority=1, bid_cents=900, caps={"daily": 10})]
    ranked = auction.rank(buyers, {"e": Usage({"daily": 8}, {}), "d": Usage({"daily": 1}, {})})
    assert [b.id for b in ranked] == ["a", "b", "d", "e", "c"]


def test_shards_split_buyers_evenly_and_cover_each_once():
    assert auction.shard_count(5, 2) == 3 and auction.shard_count(0, 25) == 1
    ids = list("abcde")
    assert [auction.shard(ids, 3, i) for i in range(3)] == [["a", "d"], ["b", "e"], ["c"]]


@pytest.mark.parametrize("status,body,standing,outcome,bid,reason", [
    (200, {"accept": True, "bid": 30.0, "ref": "B-1"}, None, "accept", 3000, None),
    (200, {"accept": True}, 1500, "accept", 1500, None),
    (200, {"accept": True}, None, "error", None, "missing_bid"),
    (200, {"accept": True, "bid": -1}, 1500, "error", None, "invalid_bid"),
    (200, {"accept": True, "bid": "NaN"}, 1500, "error", None, "invalid_bid"),
    (200, {"accept": True, "bid": 1e12}, 1500, "error", None, "invalid_bid"),
    (200, {"accept": True, "bid": True}, 1500, "error", None, "invalid_bid"),
    (200, {"accept": False, "reason": "cap"}, 1500, "reject", None, "cap"),
    (500, {"accept": True, "bid": 30}, None, "error", None, "http_500"),
    (200, {"accept": "yes"}, 1500, "error", None, "invalid_answer"),
])
def test_ping_answers(status, body, standing, outcome, bid, reason):
    answer = protocol.read_ping_answer(status, json.dumps(body).encode(), standing, 7)
    assert (answer.outcome, answer.bid_cents, answer.reason) == (outcome, bid, reason)


def test_invalid_json_answer_is_a_pass():
    assert protocol.read_ping_answer(200, b"<html>", 100, 3).outcome == "error"


@pytest.mark.parametrize("status,body,outcome", [
    (200, b"", "accepted"), (201, b'{"accepted": true}', "accepted"),
    (200, b'{"accepted": false, "reason": "dupe"}', "rejected"), (409, b"", "rejected"),
    (503, b"", "retry"), (500, b"{}", "retry"),
])
def test_post_answers(status, body, outcome):
    assert protocol.read_post_answer(status, body, 1).outcome == outcome


def test_ping_body_has_no_personal_data():
    body = protocol.ping_body(LEAD, ping_id="p", cycle=1, bid_cents=3400,
                              expires_at=datetime(2026, 11, 22, 10, 0, 10, tzinfo=UTC))
    assert set(body) == {"ping_id", "lead_id", "vertical", "score", "cycle", "geo", "qualifiers",
                         "bid", "expires_at"}
    assert body["bid"] == 34.0 and body["expires_at"] == "2026-11-22T10:00:10Z"


def test_webhook_id_is_stable_per_lead_buyer_kind():
    assert protocol.webhook_id("l", "b", "post") == protocol.webhook_id("l", "b", "post")
    assert protocol.webhook_id("l", "b", "post") != protocol.webhook_id("l", "b", "ping")


DEBT = {"lead_id": "l2", "vertical": "debt_relief", "score": 80,
        "geo": {"zip": "33131", "city": "Miami", "state": "FL"},
        "qualifiers": {"debt_types": ["student_loan", "medical"], "unsecured_debt": 12000,
                       "credit_rating": None, "behind_on_payments": True}}


@pytest.mark.parametrize("rule,holds", [
    # A list field: `in` means any overlap, `not_in` none (not membership of the whole list).
    ({"field": "qualifiers.debt_types", "op": "in", "value": ["student_loan"]}, True),
    ({"field": "qualifiers.debt_types", "op": "in", "value": ["credit_card", "medical"]}, True),
    ({"field": "qualifiers.debt_types", "op": "in", "value": ["credit_card"]}, False),
    ({"field": "qualifiers.debt_types", "op": "not_in", "value": ["student_loan"]}, False),
    ({"field": "qualifiers.debt_types", "op": "not_in", "value": ["credit_card", "other"]}, True),
    # A null field and a missing one are alike: nothing but `exists` holds on them.
    ({"field": "qualifiers.credit_rating", "op": "ne", "value": "poor"}, False),
    ({"field": "qualifiers.employment_status", "op": "ne", "value": "poor"}, False),
    ({"field": "qualifiers.credit_rating", "op": "not_in", "value": ["poor"]}, False),
    ({"field": "qualifiers.employment_status", "op": "not_in", "value": ["poor"]}, False),
    ({"field": "qualifiers.credit_rating", "op": "exists", "value": False}, True),
    # Booleans are not numbers.
    ({"field": "qualifiers.behind_on_payments", "op": "eq", "value": 1}, False),
    ({"field": "qualifiers.behind_on_payments", "op": "gt", "value": 0}, False),
    ({"field": "qualifiers.behind_on_payments", "op": "in", "value": [1]}, False),
    ({"field": "qualifiers.behind_on_payments", "op": "eq", "value": True}, True),
    ({"field": "qualifiers.unsecured_debt", "op": "eq", "value": True}, False),
    ({"field": "qualifiers.unsecured_debt", "op": "eq", "value": 12000.0}, True),
    # A list is only tested for overlap; `in` needs a list to look in.
    ({"field": "qualifiers.debt_types", "op": "eq", "value": ["student_loan", "medical"]}, False),
    ({"field": "qualifiers.debt_types", "op": "ne", "value": "medical"}, False),
    ({"field": "qualifiers.debt_types", "op": "gt", "value": 0}, False),
    ({"field": "geo.state", "op": "in", "value": "FL"}, False),
    ({"field": "geo.state", "op": "not_in", "value": "GA"}, False),
])
def test_rule_ops_on_lists_nulls_and_booleans(rule, holds):
    assert rule_holds(rule, DEBT) is holds


def test_every_geo_filter_given_must_match():
    """states FL and 50 miles around 33131: Orlando and Pensacola are in FL but far away."""
    spec_example = {"states": ["FL"], "zips": [], "radius": {"zip": "33131", "miles": 50}}
    def eligible(zip5, state, geo=spec_example):
        lead = {**LEAD, "geo": {"zip": zip5, "city": "x", "state": state}}
        return bool(eligibility(lead, [buyer("b", geo=geo)], NOON_MONDAY, {})[0])
    assert eligible("33139", "FL")                       # Miami Beach
    assert not eligible("32801", "FL")                   # Orlando
    assert not eligible("32501", "FL")                   # Pensacola
    assert not eligible("33131", "GA")                   # the right ZIP, but not a listed state
    assert not eligible("33139", "FL", {"states": ["FL"], "zips": ["33131"]})
    assert eligible("33131", "FL", {"states": ["FL"], "zips": ["33131"]})


def test_an_overnight_window_belongs_to_the_day_it_starts():
    """Mon-Fri 20:00-02:00 in New York: Saturday 01:00 is Friday night, Monday 01:00 is Sunday's."""
    weeknights = {"timezone": "America/New_York", "days": ["mon", "tue", "wed", "thu", "fri"],
                  "start": "20:00", "end": "02:00"}
    ny = ZoneInfo("America/New_York")
    at = lambda *args: datetime(*args, tzinfo=ny).astimezone(UTC)   # noqa: E731
    assert in_schedule(weeknights, at(2026, 11, 28, 1, 0))          # Saturday 01:00
    assert not in_schedule(weeknights, at(2026, 11, 23, 1, 0))      # Monday 01:00
    assert in_schedule(weeknights, at(2026, 11, 23, 20, 0))         # Monday 20:00
    assert not in_schedule(weeknights, at(2026, 11, 28, 20, 0))     # Saturday 20:00
    assert not in_schedule(weeknights, at(2026, 11, 24, 2, 0))      # Tuesday 02:00: closed
    assert in_schedule(weeknights, at(2026, 11, 24, 1, 59))


def test_a_budget_cap_says_it_is_the_budget():
    full = buyer("full", caps={"daily": 100, "daily_budget": 5000}, bid_cents=2000)
    _, skipped = reasons([full], usage={"full": Usage({"daily": 2}, {"daily": 4000})})
    assert skipped == {"full": "cap_daily_budget"}
