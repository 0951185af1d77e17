"""Properties of the rules that decide who hears of a lead, what it pays and when it is open.

Each property is checked against a plain reference written here, on inputs hypothesis draws:
a buyer never receives a lead its filters exclude, a charge is never above the bid nor below
the floor, and every minute of a week is inside exactly the schedule windows it should be.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.auction import Bid
from pipeline.domain.buyers import DAY_NAMES, Buyer, eligibility, in_schedule, miles_between, zip_point
from pipeline.domain.modes import tier_mode
from pipeline.domain.money import MAX_BID, from_cents, parse_bid
from pipeline.protocols.native import read_ping_answer

# ---- eligibility -----------------------------------------------------------------------------

DEBT_TYPES = ["credit_card", "medical", "personal_loan", "student_loan", "collections", "other"]
RATINGS = ["excellent", "good", "fair", "poor"]
ZIPS = {"33131": "FL", "33139": "FL", "32801": "FL", "32501": "FL", "10001": "NY", "30301": "GA"}
MISSING = object()

# The lead's answers: every field may be missing, null, or of its type (or, hostile, another).
answer = {
    "debt_types": st.one_of(st.just(MISSING), st.none(), st.lists(st.sampled_from(DEBT_TYPES),
                                                                   unique=True, max_size=3)),
    "unsecured_debt": st.one_of(st.just(MISSING), st.none(), st.integers(0, 50_000)),
    "behind_on_payments": st.one_of(st.just(MISSING), st.none(), st.booleans(), st.sampled_from([0, 1])),
    "credit_rating": st.one_of(st.just(MISSING), st.none(), st.sampled_from(RATINGS)),
}
rule_value = {
    "debt_types": st.lists(st.sampled_from(DEBT_TYPES), min_size=1, max_size=3),
    "unsecured_debt": st.integers(0, 50_000),
    "behind_on_payments": st.booleans(),
    "credit_rating": st.sampled_from(RATINGS),
}
OPS = {
    "debt_types": ["in", "not_in", "exists"],
    "unsecured_debt": ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists"],
    "behind_on_payments": ["eq", "ne", "exists"],
    "credit_rating": ["eq", "ne", "in", "not_in", "exists"],
}


@st.composite
def rules(draw):
    name = draw(st.sampled_from(sorted(OPS)))
    op = draw(st.sampled_from(OPS[name]))
    if op == "exists":
        value = draw(st.sampled_from([True, False, None]))
    elif op in ("in", "not_in") and name != "debt_types":
        value = draw(st.lists(rule_value[name], min_size=1, max_size=3))
    else:
        value = draw(rule_value[name])
    return {"field": f"qualifiers.{name}", "op": op, "value": value}


def excludes(rule: dict, qualifiers: dict) -> bool:
    """The reference: True when the rule keeps the lead from the buyer (docs/tree.md read literally)."""
    got = qualifiers.get(rule["field"].split(".")[1], None)
    want, op = rule["value"], rule["op"]
    if op == "exists":
        wanted_present = want is not False
        return (got is not None) != wanted_present
    if got is None:                                     # null and missing are alike
        return True
    if isinstance(got, list):                           # any overlap / none
        overlap = bool(set(got) & set(want))
        return not overlap if op == "in" else overlap
    same_type = lambda a, b: (type(a) is bool) == (type(b) is bool)   # noqa: E731
    if op in ("eq", "ne"):
        equal = same_type(got, want) and got == want
        return not equal if op == "eq" else equal
    if op in ("in", "not_in"):
        member = any(same_type(got, w) and got == w for w in want)
        return not member if op == "in" else member
    if type(got) is bool:
        return True
    return not {"gt": got > want, "gte": got >= want, "lt": got < want, "lte": got <= want}[op]


@st.composite
def geos(draw):
    geo = {}
    if draw(st.booleans()):
        geo["states"] = draw(st.lists(st.sampled_from(sorted(set(ZIPS.values()))), max_size=2))
    if draw(st.booleans()):
        geo["zips"] = draw(st.lists(st.sampled_from(sorted(ZIPS)), max_size=3))
    if draw(st.booleans()):
        geo["radius"] = {"zip": draw(st.sampled_from(sorted(ZIPS))),
                         "miles": draw(st.sampled_from([0, 10, 50, 250, 800]))}
    return geo


def geo_excludes(geo: dict, zip5: str, state: str) -> bool:
    if geo.get("states") and state not in geo["states"]:
        return True
    if geo.get("zips") and zip5 not in geo["zips"]:
        return True
    radius = geo.get("radius")
    return bool(radius) and miles_between(zip_point(zip5), zip_point(radius["zip"])) > radius["miles"]


@settings(max_examples=400, deadline=None)
@given(qualifiers=st.fixed_dictionaries({}, optional=answer), buyer_rules=st.lists(rules(), max_size=3),
       geo=geos(), zip5=st.sampled_from(sorted(ZIPS)))
def test_a_buyer_never_hears_of_a_lead_its_filters_exclude(qualifiers, buyer_rules, geo, zip5):
    qualifiers = {k: v for k, v in qualifiers.items() if v is not MISSING}
    lead = {"lead_id": "l", "vertical": "debt_relief", "score": 70,
            "geo": {"zip": zip5, "state": ZIPS[zip5], "city": "x"}, "qualifiers": qualifiers}
    buyer = Buyer(id="b", name="b", tier=1, verticals=("debt_relief",), ping_url="https://b/p",
                  post_url="https://b/q", rules=tuple(buyer_rules), geo=geo)
    eligible, skipped = eligibility(lead, [buyer], datetime(2026, 11, 23, 17, tzinfo=UTC), {})
    excluded = geo_excludes(geo, zip5, ZIPS[zip5]) or any(excludes(r, qualifiers) for r in buyer_rules)
    assert bool(eligible) is not excluded, (skipped, qualifiers, buyer_rules, geo)


# ---- money -----------------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=MAX_BID + 5, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=500, deadline=None)
@given(said=st.lists(amounts, min_size=1, max_size=5), floor_cents=st.integers(0, 5000),
       as_text=st.booleans(), mode=st.sampled_from(["auction", "waterfall", "round_robin"]))
def test_the_charge_is_never_above_the_bid_nor_below_the_floor(said, floor_cents, as_text, mode):
    bids = []
    for rank, amount in enumerate(said):
        # As a buyer sends it: a JSON number (read back as a float) or a plain decimal string.
        wire = json.dumps({"accept": True, "bid": str(amount) if as_text else float(amount)})
        answer = read_ping_answer(200, wire.encode(), None, 1)
        bids.append(Bid(f"p{rank}", f"b{rank}", rank, answer.outcome, answer.bid_cents))
    for bid in tier_mode(mode).candidates(bids, floor_cents):
        charged = from_cents(bid.bid_cents)
        assert charged <= said[bid.rank]
        assert bid.bid_cents >= floor_cents
        assert said[bid.rank] - charged < Decimal("0.01")      # rounded down by less than a cent


@given(st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans(), st.none()))
def test_a_bid_is_a_number_or_a_plain_decimal_string_or_nothing(value):
    cents = parse_bid(value)
    if cents is None:
        return
    assert 0 <= cents <= MAX_BID * 100
    if isinstance(value, str):
        assert value.isascii() and value.replace(".", "", 1).isdigit(), value


# ---- schedules -------------------------------------------------------------------------------

MONDAY = datetime(2026, 7, 6, tzinfo=UTC)     # a week without a clock change in New York either
hhmm = st.integers(0, 24 * 60).map(lambda m: f"{m // 60:02d}:{m % 60:02d}")


def reference_minutes(days: list[str], start: str, end: str) -> set[int]:
    """The minutes of the week (0 = Monday 00:00) a schedule is open: each listed day's window,
    running past midnight into the next day when it ends before it starts."""
    to_min = lambda t: int(t[:2]) * 60 + int(t[3:])   # noqa: E731
    first, last = to_min(start), to_min(end)
    length = last - first if last > first else last + 24 * 60 - first
    week = 7 * 24 * 60
    return {(DAY_NAMES.index(day) * 24 * 60 + first + i) % week for day in days for i in range(length)}


@settings(max_examples=40, deadline=None)
@given(days=st.lists(st.sampled_from(DAY_NAMES), unique=True, min_size=1),
       start=hhmm.filter(lambda t: t != "24:00"), end=hhmm,
       zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]))
def test_every_minute_of_a_week_is_in_exactly_the_windows_the_reference_says(days, start, end, zone):
    if start == end:
        return                      # refused at load: a window that would never open
    schedule = {"timezone": zone, "days": days, "start": start, "end": end}
    expected = reference_minutes(days, start, end)
    local_monday = MONDAY.replace(tzinfo=ZoneInfo(zone))
    for minute in range(7 * 24 * 60):
        moment = local_monday + timedelta(minutes=minute)
        assert in_schedule(schedule, moment.astimezone(UTC)) is (minute in expected), (minute, schedule)
