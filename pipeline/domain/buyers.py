"""Buyers and which of them may hear of a lead: eligibility with a reason for every skip."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from pipeline.domain import zips as zip_index
from pipeline.domain.rules import rule_holds

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERIODS = ("hourly", "daily", "weekly", "monthly")


@dataclass(frozen=True)
class Buyer:
    id: str
    name: str
    tier: int
    verticals: tuple[str, ...]
    ping_url: str | None
    post_url: str | None
    active: bool = True
    priority: int = 0
    bid_cents: int | None = None
    geo: dict = field(default_factory=dict)
    min_score: int = 0
    rules: tuple = ()
    schedule: dict | None = None
    caps: dict = field(default_factory=dict)
    pre_ping_url: str | None = None
    timeout_ms: int = 3000
    secret: str | None = field(default=None, repr=False)
    pre_ping_hashes: bool = False
    paused_until: datetime | None = None      # set when it rejected too many posts it took
    integration: dict | None = None          # None: the native protocol
    credentials: dict = field(default_factory=dict, repr=False)
    updated_at: datetime | None = None       # the buyer's version: its protocol is compiled once per version

    @classmethod
    def from_row(cls, row: dict) -> Buyer:
        names = cls.__dataclass_fields__
        values = {k: v for k, v in row.items() if k in names}
        values["verticals"] = tuple(values.get("verticals") or ())
        values["rules"] = tuple(values.get("rules") or ())
        values["credentials"] = values.get("credentials") or {}
        return cls(**values)

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo((self.schedule or {}).get("timezone") or "UTC")


@dataclass(frozen=True)
class Usage:
    """What a buyer has used of each cap period that is current now."""
    leads: dict[str, int] = field(default_factory=dict)        # period -> leads
    spend_cents: dict[str, int] = field(default_factory=dict)  # period -> cents


@dataclass(frozen=True)
class Skip:
    buyer_id: str
    reason: str


def period_starts(now: datetime, tz: ZoneInfo) -> dict[str, datetime]:
    """The start of the current hour, day, week (Monday) and month in the buyer's timezone."""
    local = now.astimezone(tz)
    hour = local.replace(minute=0, second=0, microsecond=0)
    day = datetime.combine(local.date(), time(0), tz)
    return {
        "hourly": hour,
        "daily": day,
        "weekly": day - timedelta(days=local.weekday()),
        "monthly": day.replace(day=1),
    }


@lru_cache(maxsize=50_000)
def zip_point(zip5: str) -> tuple[float, float] | None:
    try:
        found = zip_index.matching(zip5)
    except (TypeError, ValueError):
        return None
    if not found or not found[0].get("lat"):
        return None
    return float(found[0]["lat"]), float(found[0]["long"])


def miles_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 3958.8 * 2 * math.asin(math.sqrt(h))


def geo_matches(geo: dict, zip5: str, state: str) -> bool:
    """An empty filter matches everything; every filter given must match (states AND zips AND
    radius), so `states: [FL]` with 50 miles around 33131 is Miami, not Orlando."""
    states, zips, radius = geo.get("states") or [], geo.get("zips") or [], geo.get("radius")
    if states and state not in states:
        return False
    if zips and zip5 not in zips:
        return False
    if radius:
        here, centre = zip_point(zip5), zip_point(radius["zip"])
        return bool(here and centre and miles_between(here, centre) <= radius["miles"])
    return True


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:5])


def in_schedule(schedule: dict | None, now: datetime) -> bool:
    """Inside the window of a listed day, in the buyer's timezone. A window that ends before
    it starts runs overnight, and the part after midnight belongs to the day it started: Fri
    20:00-02:00 covers Saturday 01:00, and Monday 01:00 is Sunday's (closed unless listed)."""
    if not schedule:
        return True
    local = now.astimezone(ZoneInfo(schedule.get("timezone") or "UTC"))
    days = schedule.get("days") or DAY_NAMES
    today, yesterday = DAY_NAMES[local.weekday()], DAY_NAMES[local.weekday() - 1]
    start, end = _minutes(schedule.get("start") or "00:00"), _minutes(schedule.get("end") or "24:00")
    minute = local.hour * 60 + local.minute
    if start < end:
        return today in days and start <= minute < end
    return (today in days and minute >= start) or (yesterday in days and minute < end)


def cap_reached(caps: dict, usage: Usage, price_cents: int) -> str | None:
    """The first cap this lead would break, e.g. 'cap_daily' or 'cap_daily_budget'."""
    for period in PERIODS:
        limit = caps.get(period)
        if limit is not None and usage.leads.get(period, 0) + 1 > limit:
            return f"cap_{period}"
        budget = caps.get(f"{period}_budget")
        if budget is not None and usage.spend_cents.get(period, 0) + price_cents > budget:
            return f"cap_{period}_budget"
    return None


def skip_reason(buyer: Buyer, lead: dict, now: datetime, usage: Usage) -> str | None:
    """Why this buyer must not be pinged for this lead, or None when it may be."""
    if not buyer.active:
        return "inactive"
    if buyer.paused_until is not None and buyer.paused_until > now:
        return "paused_post_rejects"
    if lead["vertical"] not in buyer.verticals:
        return "vertical"
    if not geo_matches(buyer.geo, lead["geo"]["zip"], lead["geo"]["state"]):
        return "geo"
    if (lead.get("score") or 0) < buyer.min_score:
        return "min_score"
    for rule in buyer.rules:
        if not rule_holds(rule, lead):
            return f"rule:{rule['field']}"
    if not in_schedule(buyer.schedule, now):
        return "schedule"
    return cap_reached(buyer.caps, usage, buyer.bid_cents or 0)


def eligibility(lead: dict, buyers: list[Buyer], now: datetime,
                usage: dict[str, Usage]) -> tuple[list[Buyer], list[Skip]]:
    """Split buyers into those that may be pinged and those skipped, each with its reason.

    ``lead`` is the ping-facing view: vertical, score, geo, qualifiers (no personal data).
    """
    eligible, skipped = [], []
    for buyer in buyers:
        reason = skip_reason(buyer, lead, now, usage.get(buyer.id, Usage()))
        if reason:
            skipped.append(Skip(buyer.id, reason))
        else:
            eligible.append(buyer)
    return eligible, skipped


def remaining_daily(buyer: Buyer, usage: Usage) -> float:
    limit = buyer.caps.get("daily")
    return math.inf if limit is None else limit - usage.leads.get("daily", 0)
