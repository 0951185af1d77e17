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
from pipeline.domain.buyers import zip_point
from pipeline.domain.fields import Strict
from pipeline.domain.hosts import host_problem, is_public_address
from pipeline.domain.integration_schema import IntegrationSchema, credentials_field
from pipeline.domain.leads import STATES
from pipeline.domain.modes import Mode
from pipeline.domain.money import CENT, MAX_BID, to_cents
from pipeline.domain.rules import RULE_OPS, rule_problem

MODES = tuple(m.value for m in Mode)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CAP_COUNTS = ("hourly", "daily", "weekly", "monthly")
CAP_BUDGETS = tuple(f"{p}_budget" for p in CAP_COUNTS)
# \Z, not $: a `$` pattern also accepts a trailing newline ("FL\n", "b1\n").
HHMM = re.compile(r"(([01]?\d|2[0-3]):[0-5]\d|24:00)\Z")
BUYER_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"
ZIP5 = r"\d{5}\Z"
# Integers are stored in PostgreSQL integer columns: anything wider fails there, not here.
INT_MAX = 2**31 - 1
# A spending cap is a budget, not a price: it may be far above any one bid.
MAX_BUDGET = Decimal("100000000.00")
# `tree show` prints a stored secret as this; in a loaded file it means "keep the stored one".
MASKED_SECRET = "***"


class InvalidTree(ValueError):
    """A tree file refused whole; ``errors`` lists every problem by path (buyers by id).

    ``private_urls`` is set when a buyer URL was refused only because it is plain http or
    private, which the operator may allow for buyers on a private network.
    """

    def __init__(self, errors: dict, private_urls: bool = False):
        super().__init__(f"invalid tree file: {json.dumps(errors, default=str)}")
        self.errors = errors
        self.private_urls = private_urls


class StateField(fields.String):
    """A USPS state code; "fl" is read as "FL", as intake reads it."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(r"[A-Za-z]{2}", text) or text.upper() not in STATES:
            raise ValidationError("Not a 2-letter USPS state code, e.g. FL.")
        return text.upper()


class ClockTime(fields.String):
    """A wall-clock time HH:MM (24-hour; 24:00 ends the day); "8:00" is taken as "08:00"."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not HHMM.match(text):
            raise ValidationError("Must be a 24-hour time HH:MM, e.g. 08:00 (24:00 ends the day).")
        return text.zfill(5)


class Whole(fields.Integer):
    """An integer written as one, within PostgreSQL's integer: 72.9, 72.0, "72", true and
    2**31 are refused, never truncated or left for the database to refuse."""

    def __init__(self, low: int = -INT_MAX - 1, high: int = INT_MAX, **kwargs):
        super().__init__(strict=True, validate=validate.Range(low, min(high, INT_MAX)), **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


def _whole_cents(amount: Decimal) -> None:
    if amount != amount.quantize(CENT):
        raise ValidationError("Must be whole cents (at most 2 decimals).")


def Money(high: Decimal = MAX_BID, **kw) -> fields.Decimal:  # noqa: N802 - a field factory
    return fields.Decimal(validate=[validate.Range(min=Decimal(0), max=high), _whole_cents],
                          allow_nan=False, **kw)


class NetworkSchema(Strict):
    score_floor = Whole(0, 100, load_default=50)
    bid_floor = Money(load_default=Decimal("1.00"))
    auction_timeout_s = fields.Float(load_default=10.0, validate=validate.Range(0.1, 120))
    max_cycles = Whole(1, 100, load_default=2)
    rerun_interval_s = Whole(1, 7 * 86400, load_default=300)
    duplicate_window_h = Whole(0, 24 * 365, load_default=24)
    stuck_after_s = Whole(5, 86400, load_default=60)
    # A lead the sweep re-drove this many times without it moving ends unsold (stuck_<status>).
    max_redrives = Whole(1, 1000, load_default=5)
    # How many buyers may receive one lead's post; past it the lead is held or unsold.
    max_post_buyers = Whole(1, 100, load_default=2)
    # A buyer that rejected this share of the posts it received (at least min_posts of them)
    # in the last post_reject_pause_h hours is paused for that long: it took the lead's data.
    post_reject_pause_rate = fields.Float(load_default=0.5, validate=validate.Range(0.01, 1.0))
    post_reject_pause_min_posts = Whole(1, 100000, load_default=20)
    post_reject_pause_h = Whole(1, 24 * 90, load_default=24)


class TierSchema(Strict):
    tier = Whole(1, 1000, required=True)
    name = fields.String(load_default=None, validate=validate.Length(max=100))
    mode = fields.String(load_default="auction", validate=validate.OneOf(MODES))
    active = fields.Boolean(load_default=True)


FIVE_DIGITS = "Must be a 5-digit ZIP code, e.g. 33131."


class RadiusSchema(Strict):
    zip = fields.String(required=True, validate=validate.Regexp(ZIP5, error=FIVE_DIGITS))
    miles = fields.Float(required=True, validate=validate.Range(0, 3000))

    @validates("zip")
    def _known_zip(self, value, **_):
        if re.match(ZIP5, value) and zip_point(value) is None:
            raise ValidationError(f"unknown ZIP {value}: no place to measure the radius from")


class GeoSchema(Strict):
    # As intake takes them: "fl" is read as "FL".
    states = fields.List(StateField(), load_default=list)
    zips = fields.List(fields.String(validate=validate.Regexp(ZIP5, error=FIVE_DIGITS)), load_default=list)
    radius = fields.Nested(RadiusSchema, load_default=None, allow_none=True)


class RuleSchema(Strict):
    field = fields.String(required=True, validate=validate.Regexp(r"[a-z_]+(\.[a-z0-9_]+)*\Z"))
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
    start = ClockTime(load_default="00:00")
    end = ClockTime(load_default="24:00")

    @validates_schema
    def _window_opens(self, data, **_):
        if data.get("start") == "24:00":
            raise ValidationError({"start": ["24:00 ends a day; a window starts at 00:00 to 23:59"]})
        if data.get("start") == data.get("end"):
            raise ValidationError({"end": ["equals start: the window would never open"
                                           " (00:00 to 24:00 is the whole day)"]})

    @validates("timezone")
    def _known_zone(self, value, **_):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown timezone {value!r}") from None


class CapsSchema(Strict):
    hourly = Whole(0)
    daily = Whole(0)
    weekly = Whole(0)
    monthly = Whole(0)
    hourly_budget = Money(MAX_BUDGET)
    daily_budget = Money(MAX_BUDGET)
    weekly_budget = Money(MAX_BUDGET)
    monthly_budget = Money(MAX_BUDGET)


class BuyerSchema(Strict):
    id = fields.String(required=True, validate=validate.Regexp(BUYER_ID))
    name = fields.String(load_default=None)
    active = fields.Boolean(load_default=True)
    tier = Whole(1, 1000, required=True)
    priority = Whole(load_default=0)
    bid = Money(load_default=None, allow_none=True)
    verticals = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    geo = fields.Nested(GeoSchema, load_default=dict)
    min_score = Whole(0, 100, load_default=0)
    rules = fields.List(fields.Nested(RuleSchema), load_default=list)
    schedule = fields.Nested(ScheduleSchema, load_default=None, allow_none=True)
    caps = fields.Nested(CapsSchema, load_default=dict)
    # Required for a native buyer; a buyer with an integration has its URLs there instead.
    ping_url = fields.String(load_default=None, allow_none=True)
    post_url = fields.String(load_default=None, allow_none=True)
    pre_ping_url = fields.String(load_default=None, allow_none=True)
    timeout_ms = Whole(50, 120000, load_default=3000)
    secret = fields.String(load_default=None, allow_none=True)
    # Pre-pings carry phone_sha256 / email_sha256 only for a buyer with a data agreement: the
    # hashes give the phone number away to anyone who tries its area code's 10^7 numbers.
    pre_ping_hashes = fields.Boolean(load_default=False)
    integration = fields.Nested(IntegrationSchema, load_default=None, allow_none=True)
    credentials = credentials_field()


class TreeSchema(Strict):
    # The nested defaults apply to a file without "network" too.
    network = fields.Nested(NetworkSchema, load_default=lambda: NetworkSchema().load({}))
    tiers = fields.List(fields.Nested(TierSchema), required=True, validate=validate.Length(min=1))
    buyers = fields.List(fields.Nested(BuyerSchema), required=True)


def url_problem(url: str | None, allow_private: bool) -> str | None:
    """What is wrong with a buyer URL (an integration's, rendered), or None."""
    found = _url_problem(url, allow_private)
    return found[0] if found else None


def _url_problem(url: str | None, allow_private: bool) -> tuple[str, bool] | None:
    """(problem, whether allowing private buyers would cure it), or None for a good URL."""
    if url is None:
        return None
    # The URL goes on the request line as it is written: a space or a control character there
    # is refused by the HTTP engine at every ping, so it is refused here, once, by its place.
    bad = next((i for i, c in enumerate(url) if c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return (f"has a space or control character at position {bad + 1}: percent-encode it "
                f"(a space is %20)"), False
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        return f"is not a URL: {exc}", False
    if parts.scheme not in ("https", "http") or not host:
        return "must be an http(s) URL with a host", False
    if parts.username or parts.password:
        return "must not carry credentials", False
    problem = host_problem(host)
    if problem:
        return f"host {host!r} {problem}", False
    if allow_private:
        return None
    if parts.scheme != "https":
        return "must be https", True
    name = host.rstrip(".").lower()
    local_name = name == "localhost" or name.endswith(".localhost")
    if local_name or (_ip_literal(host) and not is_public_address(host)):
        return f"host {host} is not a public address", True
    return None


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class _Object(dict):
    """A JSON object that remembers the keys it was given more than once."""
    repeated: tuple[str, ...] = ()


class _Constant:
    """NaN or Infinity where the file had one: JSON has no such number."""

    def __init__(self, name: str):
        self.name = name


def _object(pairs: list[tuple[str, object]]) -> _Object:
    doc = _Object(pairs)
    if len(doc) != len(pairs):
        keys = [k for k, _ in pairs]
        doc.repeated = tuple(sorted({k for k in keys if keys.count(k) > 1}))
    return doc


def _put(errors: dict, path: tuple, message: str) -> None:
    node = errors
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):          # a field already refused whole: say it there too
            return
    node.setdefault(path[-1], []).append(message)


def _merge(into: dict, more: dict) -> dict:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] += [m for m in value if m not in into[key]]
        elif key not in into:
            into[key] = value
    return into


def _unreadable(node, path: tuple, errors: dict) -> None:
    """Duplicate keys (which one counts is anyone's guess) and NaN / Infinity, by path."""
    if isinstance(node, _Object):
        for key in node.repeated:
            _put(errors, (*path, key), "is given twice in one object: say it once")
        for key, value in node.items():
            _unreadable(value, (*path, key), errors)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _unreadable(value, (*path, i), errors)
    elif isinstance(node, _Constant):
        _put(errors, path, f"{node.name} is not a number")


def parse_tree(text: str, verticals: tuple[str, ...], allow_private: bool = False) -> dict:
    """The checked tree with money in cents, or InvalidTree listing every problem at once."""
    try:
        doc = json.loads(text, parse_float=Decimal, object_pairs_hook=_object, parse_constant=_Constant)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidTree({"_file": [f"not JSON: {exc}"]}) from None
    if not isinstance(doc, dict):
        raise InvalidTree({"_file": ["must be a JSON object"]})
    errors: dict = {}
    _unreadable(doc, (), errors)
    tree = None
    try:
        tree = TreeSchema().load(doc)
    except ValidationError as exc:
        _merge(errors, exc.messages_dict)
    # The cross checks read the file as it is, so they report even when a field is refused.
    crossed, private_urls = _cross_check(doc, verticals, allow_private)
    _merge(errors, crossed)
    if errors or tree is None:
        raise InvalidTree(buyers_by_id(errors, doc.get("buyers")), private_urls)
    return _in_cents(tree)


def buyers_by_id(errors: dict, buyers) -> dict:
    """Errors name a buyer by its id (by its place in the list when the id is missing or twice)."""
    if not isinstance(errors.get("buyers"), dict) or not isinstance(buyers, list):
        return errors
    ids = [b.get("id") if isinstance(b, dict) else None for b in buyers]
    named = {}
    for index, problems in errors["buyers"].items():
        buyer_id = ids[index] if isinstance(index, int) and index < len(ids) else None
        unique = isinstance(buyer_id, str) and buyer_id and ids.count(buyer_id) == 1
        named[buyer_id if unique else index] = problems
    return {**errors, "buyers": named}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _cross_check(doc: dict, verticals: tuple[str, ...], allow_private: bool) -> tuple[dict, bool]:
    """What no one field can tell: duplicates, unknown tiers and verticals, URLs, rules that
    cannot match the buyer's verticals. Reads the raw file: any part may be of a wrong type."""
    errors: dict = {}
    private_urls = False
    tiers = _list(doc.get("tiers"))
    tier_numbers = [t.get("tier") if isinstance(t, dict) else None for t in tiers]
    for i, number in enumerate(tier_numbers):
        if _whole(number) and tier_numbers.index(number) != i:
            _put(errors, ("tiers", i, "tier"), f"tier {number} is listed twice")
    modes = {t.get("tier"): t.get("mode", Mode.AUCTION) for t in tiers if isinstance(t, dict)}
    buyers = _list(doc.get("buyers"))
    seen: set[str] = set()
    for i, buyer in enumerate(buyers):
        if not isinstance(buyer, dict):
            continue
        at = ("buyers", i)
        if isinstance(buyer.get("id"), str):
            if buyer["id"] in seen:
                _put(errors, (*at, "id"), f"buyer {buyer['id']} is listed twice")
            seen.add(buyer["id"])
        if _whole(buyer.get("tier")) and buyer["tier"] not in tier_numbers:
            _put(errors, (*at, "tier"), f"unknown tier {buyer['tier']}")
        names = [v for v in _list(buyer.get("verticals")) if isinstance(v, str)]
        unknown = sorted(set(names) - set(verticals))
        if unknown:
            _put(errors, (*at, "verticals"), f"unknown vertical(s): {', '.join(unknown)}")
        for key in ("ping_url", "post_url", "pre_ping_url"):
            url = buyer.get(key)
            found = _url_problem(url, allow_private) if isinstance(url, str) else None
            if found:
                _put(errors, (*at, key), found[0])
                private_urls = private_urls or found[1]
        # The mask `tree show` prints keeps the stored secret (checked against the database).
        # A native buyer verifies our signatures; an integration buyer is signed only if it asks.
        given, native = buyer.get("secret"), buyer.get("integration") is None
        secret = None if given == MASKED_SECRET or not (native or given) else secret_problem(given)
        if secret:
            _put(errors, (*at, "secret"), f"buyer {buyer.get('id')}: the secret {secret}; {SECRET_HINT}")
        for key, problem in _protocol_problems(buyer, modes.get(buyer.get("tier"))):
            _put(errors, (*at, key), problem)
        known = [v for v in names if v in verticals]
        for j, rule in enumerate(_list(buyer.get("rules"))):
            if known and isinstance(rule, dict) and isinstance(rule.get("field"), str) \
                    and rule.get("op") in RULE_OPS:
                wrong = rule_problem(rule, known)
                if wrong:
                    _put(errors, (*at, "rules", j, wrong[0]), wrong[1])
    return errors, private_urls


def _protocol_problems(buyer: dict, mode) -> list[tuple[str, str]]:
    """A native buyer needs its URLs; an integration buyer has them in its integration."""
    integration = buyer.get("integration")
    if integration is None:
        return [(k, "required for a native-protocol buyer (or give an integration)")
                for k in ("ping_url", "post_url") if not buyer.get(k)]
    problems = [(k, "an integration buyer has its URLs in its integration")
                for k in ("ping_url", "post_url", "pre_ping_url") if buyer.get(k)]
    if isinstance(integration, dict) and integration.get("ping") is None:
        # A direct post has no price for this lead, only a standing one, and says yes only
        # once it holds the whole lead: it takes a turn in a walk, never a sealed-bid auction.
        if buyer.get("bid") is None:
            problems.append(("bid", "a direct-post buyer (no ping) needs its standing bid"))
        if mode == Mode.AUCTION:
            problems.append(("integration", "a direct-post buyer (no ping) belongs in a waterfall or "
                                            "round_robin tier, not an auction tier"))
    return problems


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
        # Only the filters given: an empty one matches everything, and `tree show` stays stable.
        buyer["geo"] = {k: v for k, v in buyer["geo"].items() if v}
        buyer["integration"] = _json_safe(buyer["integration"])
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
