"""The tree file: a network's settings, tiers and buyers, checked whole before it is loaded."""
from __future__ import annotations

import ipaddress
import json
import re
from decimal import Decimal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from pipeline.domain.buyer_secret import HINT as SECRET_HINT
from pipeline.domain.buyer_secret import secret_problem
from pipeline.domain.fields import Strict
from pipeline.domain.hosts import host_problem, is_public_address
from pipeline.domain.modes import Mode
from pipeline.domain.money import MAX_BID, to_cents

MODES = tuple(m.value for m in Mode)
RULE_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CAP_COUNTS = ("hourly", "daily", "weekly", "monthly")
CAP_BUDGETS = tuple(f"{p}_budget" for p in CAP_COUNTS)
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class InvalidTree(ValueError):
    """A tree file refused whole; ``errors`` lists every problem by path."""

    def __init__(self, errors: dict):
        super().__init__(f"invalid tree file: {json.dumps(errors, sort_keys=True)}")
        self.errors = errors


Money = lambda **kw: fields.Decimal(  # noqa: E731 - a field factory reads best inline
    validate=validate.Range(min=Decimal(0), max=MAX_BID), allow_nan=False, **kw)


class NetworkSchema(Strict):
    score_floor = fields.Integer(load_default=50, validate=validate.Range(0, 100))
    bid_floor = Money(load_default=Decimal("1.00"))
    auction_timeout_s = fields.Float(load_default=10.0, validate=validate.Range(0.1, 120))
    max_cycles = fields.Integer(load_default=2, validate=validate.Range(1, 100))
    rerun_interval_s = fields.Integer(load_default=300, validate=validate.Range(1, 7 * 86400))
    duplicate_window_h = fields.Integer(load_default=24, validate=validate.Range(0, 24 * 365))
    stuck_after_s = fields.Integer(load_default=60, validate=validate.Range(5, 86400))
    # A lead the sweep re-drove this many times without it moving ends unsold (stuck_<status>).
    max_redrives = fields.Integer(load_default=5, validate=validate.Range(1, 1000))
    # How many buyers may receive one lead's post; past it the lead is held or unsold.
    max_post_buyers = fields.Integer(load_default=2, validate=validate.Range(1, 100))


class TierSchema(Strict):
    tier = fields.Integer(required=True, validate=validate.Range(1, 1000))
    name = fields.String(load_default=None, validate=validate.Length(max=100))
    mode = fields.String(load_default="auction", validate=validate.OneOf(MODES))


class RadiusSchema(Strict):
    zip = fields.String(required=True, validate=validate.Regexp(r"^\d{5}$"))
    miles = fields.Float(required=True, validate=validate.Range(0, 3000))


class GeoSchema(Strict):
    states = fields.List(fields.String(validate=validate.Regexp(r"^[A-Z]{2}$")), load_default=list)
    zips = fields.List(fields.String(validate=validate.Regexp(r"^\d{5}$")), load_default=list)
    radius = fields.Nested(RadiusSchema, load_default=None, allow_none=True)


class RuleSchema(Strict):
    field = fields.String(required=True, validate=validate.Regexp(r"^[a-z_]+(\.[a-z0-9_]+)*$"))
    op = fields.String(required=True, validate=validate.OneOf(RULE_OPS))
    value = fields.Raw(load_default=None, allow_none=True)

    @validates_schema
    def _value_fits_op(self, data, **_):
        if data["op"] in ("in", "not_in") and not isinstance(data.get("value"), list):
            raise ValidationError({"value": ["must be a list for in / not_in"]})
        value = data.get("value")
        numeric = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
        if data["op"] in ("gt", "gte", "lt", "lte") and not numeric:
            raise ValidationError({"value": ["must be a number for gt / gte / lt / lte"]})


class ScheduleSchema(Strict):
    timezone = fields.String(load_default="UTC")
    days = fields.List(fields.String(validate=validate.OneOf(DAYS)), load_default=lambda: list(DAYS))
    start = fields.String(load_default="00:00", validate=validate.Regexp(HHMM))
    end = fields.String(load_default="24:00", validate=validate.Regexp(HHMM))

    @validates("timezone")
    def _known_zone(self, value, **_):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown timezone {value!r}") from None


class CapsSchema(Strict):
    hourly = fields.Integer(validate=validate.Range(min=0))
    daily = fields.Integer(validate=validate.Range(min=0))
    weekly = fields.Integer(validate=validate.Range(min=0))
    monthly = fields.Integer(validate=validate.Range(min=0))
    hourly_budget = Money()
    daily_budget = Money()
    weekly_budget = Money()
    monthly_budget = Money()


class BuyerSchema(Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"))
    name = fields.String(load_default=None)
    active = fields.Boolean(load_default=True)
    tier = fields.Integer(required=True)
    priority = fields.Integer(load_default=0)
    bid = Money(load_default=None, allow_none=True)
    verticals = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    geo = fields.Nested(GeoSchema, load_default=dict)
    min_score = fields.Integer(load_default=0, validate=validate.Range(0, 100))
    rules = fields.List(fields.Nested(RuleSchema), load_default=list)
    schedule = fields.Nested(ScheduleSchema, load_default=None, allow_none=True)
    caps = fields.Nested(CapsSchema, load_default=dict)
    ping_url = fields.String(required=True)
    post_url = fields.String(required=True)
    pre_ping_url = fields.String(load_default=None, allow_none=True)
    timeout_ms = fields.Integer(load_default=3000, validate=validate.Range(50, 120000))
    secret = fields.String(load_default=None, allow_none=True)


class TreeSchema(Strict):
    network = fields.Nested(NetworkSchema, load_default=dict)
    tiers = fields.List(fields.Nested(TierSchema), required=True, validate=validate.Length(min=1))
    buyers = fields.List(fields.Nested(BuyerSchema), required=True)


def _url_problem(url: str | None, allow_private: bool) -> str | None:
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        return f"is not a URL: {exc}"
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not host:
        return "must be an https URL" if not allow_private else "must be an http(s) URL"
    if parts.username or parts.password:
        return "must not carry credentials"
    problem = host_problem(host)
    if problem:
        return f"host {host!r} {problem}"
    if not allow_private and _ip_literal(host) and not is_public_address(host):
        return f"host {host} is not a public address (PINGTREE_ALLOW_PRIVATE_BUYERS is off)"
    return None


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def parse_tree(text: str, verticals: tuple[str, ...], allow_private: bool = False) -> dict:
    """The checked tree with money in cents, or InvalidTree listing every problem."""
    try:
        doc = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InvalidTree({"_file": [f"not JSON: {exc}"]}) from None
    if not isinstance(doc, dict):
        raise InvalidTree({"_file": ["must be a JSON object"]})
    errors: dict = {}
    try:
        tree = TreeSchema().load(doc)
    except ValidationError as exc:
        errors = exc.messages_dict
        tree = None
    if tree is not None:
        errors = _cross_check(tree, verticals, allow_private)
    if errors:
        raise InvalidTree(errors)
    return _in_cents(tree)


def _cross_check(tree: dict, verticals: tuple[str, ...], allow_private: bool) -> dict:
    errors: dict = {}
    tier_numbers = [t["tier"] for t in tree["tiers"]]
    for i, number in enumerate(tier_numbers):
        if tier_numbers.index(number) != i:
            errors.setdefault("tiers", {}).setdefault(i, {})["tier"] = [f"tier {number} is listed twice"]
    seen: set[str] = set()
    for i, buyer in enumerate(tree["buyers"]):
        problems: dict[str, list[str]] = {}
        if buyer["id"] in seen:
            problems["id"] = [f"buyer {buyer['id']} is listed twice"]
        seen.add(buyer["id"])
        if buyer["tier"] not in tier_numbers:
            problems["tier"] = [f"unknown tier {buyer['tier']}"]
        unknown = sorted(set(buyer["verticals"]) - set(verticals))
        if unknown:
            problems["verticals"] = [f"unknown vertical(s): {', '.join(unknown)}"]
        for key in ("ping_url", "post_url", "pre_ping_url"):
            problem = _url_problem(buyer.get(key), allow_private)
            if problem:
                problems[key] = [problem]
        problem = secret_problem(buyer.get("secret"))
        if problem:
            problems["secret"] = [f"buyer {buyer['id']}: the secret {problem}; {SECRET_HINT}"]
        if problems:
            errors.setdefault("buyers", {})[i] = problems
    return errors


def _in_cents(tree: dict) -> dict:
    network = dict(tree["network"])
    network["bid_floor_cents"] = to_cents(network.pop("bid_floor"))
    network["auction_timeout_ms"] = int(network.pop("auction_timeout_s") * 1000)
    buyers = []
    for buyer in tree["buyers"]:
        buyer = dict(buyer)
        buyer["bid_cents"] = None if buyer.get("bid") is None else to_cents(buyer.pop("bid"))
        buyer.pop("bid", None)
        buyer["name"] = buyer["name"] or buyer["id"]
        buyer["caps"] = {k: (to_cents(v) if k.endswith("_budget") else v)
                         for k, v in buyer["caps"].items()}
        buyer["rules"] = [_json_safe(rule) for rule in buyer["rules"]]
        if buyer["geo"].get("radius") is None:
            buyer["geo"].pop("radius", None)
        buyers.append(buyer)
    tiers = [dict(t, name=t["name"] or f"tier {t['tier']}") for t in tree["tiers"]]
    return {"network": network, "tiers": tiers, "buyers": buyers}


def _json_safe(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
