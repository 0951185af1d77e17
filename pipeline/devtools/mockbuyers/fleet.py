"""The simulated fleet's config: buyers' behaviour, and the tree file that reaches them."""
from __future__ import annotations

import base64
import hashlib
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.devtools.mockbuyers.styles import STYLES
from pipeline.domain import verticals

VERTICALS = verticals.NAMES

DEFAULT_NETWORK = {
    "score_floor": 50, "bid_floor": 1.00, "auction_timeout_s": 10, "max_cycles": 2,
    "rerun_interval_s": 300, "duplicate_window_h": 24, "stuck_after_s": 60,
}
DEFAULT_TIERS = ({"tier": 1, "name": "main", "mode": "auction"},)

# Keys that mean a ping carries personal data, wherever they appear in the body.
PERSONAL_KEYS = frozenset({
    "contact", "first_name", "last_name", "full_name", "name", "email", "email_address",
    "phone", "phone_number", "mobile", "address", "street", "street_address", "address1",
    "address2", "ip", "ip_address", "firstname", "lastname", "homephone", "phonenumber",
    "emailaddress", "consumer", "ipaddress", "contactdata",
})

# Bounds on what the server remembers, so a long benchmark cannot exhaust memory.
MAX_PING_RECORDS = 100_000
MAX_POST_RECORDS = 100_000

BUYER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

COUNTERS = (
    "pings", "accepts", "rejects", "hangs", "errors", "invalid_json",
    "pre_pings", "pre_ping_eligible", "pre_ping_ineligible",
    "posts", "post_accepts", "post_rejects", "post_errors", "post_duplicates",
    "post_conflicts", "post_missing_contact", "post_missing_key",
    "bad_signatures", "pii_violations", "bad_requests", "bad_credentials",
)

BUYER_DEFAULTS: dict[str, Any] = {
    "name": None, "accept_rate": 0.7, "bid": [10.0, 40.0], "reason": "cap",
    "latency_ms": 0, "hang_rate": 0.0, "hang_s": 30.0, "error_rate": 0.0,
    "invalid_json_rate": 0.0, "pre_ping_eligible_rate": 1.0, "post_reject_rate": 0.0,
    "post_reject_reason": "duplicate", "post_error_rate": 0.0, "secret": None,
    "enforce_signature": False, "tree": {}, "style": "native", "api_key": None,
}
RATES = (
    "accept_rate", "hang_rate", "error_rate", "invalid_json_rate", "pre_ping_eligible_rate",
    "post_reject_rate", "post_error_rate",
)

# ---------------------------------------------------------------------------------------------
# The fleet config


class BadFleet(ValueError):
    """A fleet config that cannot be served; the message names the buyer and field."""


@dataclass(frozen=True, slots=True)
class Latency:
    dist: str
    a: float            # fixed: ms; uniform: min_ms; lognormal: median_ms
    b: float = 0.0      # uniform: max_ms; lognormal: sigma
    max_ms: float = math.inf

    def draw_s(self, rng: random.Random) -> float:
        if self.dist == "fixed":
            ms = self.a
        elif self.dist == "uniform":
            ms = rng.uniform(self.a, self.b)
        else:
            ms = rng.lognormvariate(math.log(self.a), self.b) if self.a > 0 else 0.0
        return max(0.0, min(ms, self.max_ms)) / 1000.0


@dataclass(frozen=True, slots=True)
class BuyerBehaviour:
    id: str
    name: str | None
    accept_rate: float
    bid_cents: tuple[int, int] | None
    reason: str
    latency: Latency
    hang_rate: float
    hang_s: float
    error_rate: float
    invalid_json_rate: float
    pre_ping_eligible_rate: float
    post_reject_rate: float
    post_reject_reason: str
    post_error_rate: float
    secret: str
    enforce_signature: bool
    tree: dict
    style: str = "native"
    api_key: str | None = None

    def draw_bid(self, rng: random.Random) -> float | None:
        if self.bid_cents is None:
            return None
        return rng.randint(*self.bid_cents) / 100


def latency_from(spec: Any, where: str) -> Latency:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = {"dist": "fixed", "ms": spec}
    if not isinstance(spec, dict):
        raise BadFleet(f"{where}: latency_ms must be a number or an object")
    dist = spec.get("dist", "fixed")
    cap = float(spec.get("max_ms", math.inf))
    allowed = {"fixed": {"ms"}, "uniform": {"min_ms", "max_ms"},
               "lognormal": {"median_ms", "sigma", "max_ms"}}
    if dist not in allowed:
        raise BadFleet(f"{where}: latency dist must be one of {sorted(allowed)}")
    unknown = set(spec) - allowed[dist] - {"dist", "max_ms"}
    if unknown:
        raise BadFleet(f"{where}: unknown latency fields {sorted(unknown)}")
    if dist == "fixed":
        latency = Latency("fixed", float(spec.get("ms", 0)), max_ms=cap)
    elif dist == "uniform":
        latency = Latency("uniform", float(spec.get("min_ms", 0)), float(spec["max_ms"]))
        if latency.b < latency.a:
            raise BadFleet(f"{where}: uniform latency needs min_ms <= max_ms")
    else:
        latency = Latency("lognormal", float(spec["median_ms"]), float(spec.get("sigma", 0.5)),
                          cap)
    if latency.a < 0 or latency.b < 0:
        raise BadFleet(f"{where}: latency must not be negative")
    return latency


def bid_cents_from(bid: Any, where: str) -> tuple[int, int] | None:
    if bid is None:
        return None
    if isinstance(bid, (int, float)) and not isinstance(bid, bool):
        bid = [bid, bid]
    if not (isinstance(bid, (list, tuple)) and len(bid) == 2):
        raise BadFleet(f"{where}: bid must be [min, max], a number or null")
    low, high = (round(float(v) * 100) for v in bid)
    if not 0 <= low <= high:
        raise BadFleet(f"{where}: bid needs 0 <= min <= max")
    return low, high


def buyer_from(spec: dict, defaults: dict) -> BuyerBehaviour:
    if not isinstance(spec, dict):
        raise BadFleet("each buyer must be an object")
    buyer_id = spec.get("id")
    if not isinstance(buyer_id, str) or not BUYER_ID.match(buyer_id):
        raise BadFleet(f"buyer id {buyer_id!r} must be URL-safe and not start with '_'")
    where = f"buyer {buyer_id}"
    unknown = (set(spec) | set(defaults)) - set(BUYER_DEFAULTS) - {"id"}
    if unknown:
        raise BadFleet(f"{where}: unknown fields {sorted(unknown)}")
    merged = {**BUYER_DEFAULTS, **defaults, **spec}
    for rate in RATES:
        value = merged[rate]
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise BadFleet(f"{where}: {rate} must be between 0 and 1")
    if not isinstance(merged["tree"], dict):
        raise BadFleet(f"{where}: tree must be an object")
    if merged["style"] not in STYLES:
        raise BadFleet(f"{where}: style must be one of {sorted(STYLES)}")
    return BuyerBehaviour(
        id=buyer_id,
        name=merged["name"],
        accept_rate=float(merged["accept_rate"]),
        bid_cents=bid_cents_from(merged["bid"], where),
        reason=str(merged["reason"]),
        latency=latency_from(merged["latency_ms"], where),
        hang_rate=float(merged["hang_rate"]),
        hang_s=float(merged["hang_s"]),
        error_rate=float(merged["error_rate"]),
        invalid_json_rate=float(merged["invalid_json_rate"]),
        pre_ping_eligible_rate=float(merged["pre_ping_eligible_rate"]),
        post_reject_rate=float(merged["post_reject_rate"]),
        post_reject_reason=str(merged["post_reject_reason"]),
        post_error_rate=float(merged["post_error_rate"]),
        secret=merged["secret"] or mock_secret(buyer_id),
        enforce_signature=bool(merged["enforce_signature"]),
        tree=dict(merged["tree"]),
        style=merged["style"],
        api_key=merged["api_key"] or f"key-{buyer_id}",
    )


def mock_secret(buyer_id: str) -> str:
    """A simulated buyer's secret when its spec gives none: stable per id, so the tree, the
    server and the bench floor agree without passing it around. Never for a real buyer."""
    key = hashlib.sha256(f"pingtree-mock-buyer:{buyer_id}".encode()).digest()
    return "whsec_" + base64.b64encode(key).decode()


def buyers_from(fleet: dict) -> dict[str, BuyerBehaviour]:
    """The fleet's buyers by id; raises BadFleet (a ValueError) on anything malformed."""
    if not isinstance(fleet, dict) or not isinstance(fleet.get("buyers"), list):
        raise BadFleet('a fleet is an object with a "buyers" list')
    defaults = fleet.get("defaults") or {}
    if not isinstance(defaults, dict) or "id" in defaults:
        raise BadFleet('"defaults" must be an object without "id"')
    buyers: dict[str, BuyerBehaviour] = {}
    for spec in fleet["buyers"]:
        try:
            buyer = buyer_from(spec, defaults)
        except BadFleet:
            raise
        except (KeyError, TypeError, ValueError) as exc:    # a missing or non-numeric field
            where = spec.get("id") if isinstance(spec, dict) else spec
            raise BadFleet(f"buyer {where}: bad field {exc}") from exc
        if buyer.id in buyers:
            raise BadFleet(f"buyer {buyer.id} appears twice")
        buyers[buyer.id] = buyer
    return buyers


def fleet_from_flags(
    n: int = 8,
    accept_rate: float = 0.7,
    bid: tuple[float, float] = (10.0, 40.0),
    latency_ms: float = 0.0,
    hang_rate: float = 0.0,
    hang_s: float = 30.0,
    error_rate: float = 0.0,
    post_reject_rate: float = 0.0,
    secret: str | None = None,
) -> dict:
    """A uniform fleet of n buyers named buyer-01..buyer-NN (fixed latency)."""
    width = max(2, len(str(n)))
    defaults = {
        "accept_rate": accept_rate, "bid": [float(bid[0]), float(bid[1])],
        "latency_ms": {"dist": "fixed", "ms": latency_ms}, "hang_rate": hang_rate,
        "hang_s": hang_s, "error_rate": error_rate, "post_reject_rate": post_reject_rate,
    }
    if secret:
        defaults["secret"] = secret
    fleet = {"defaults": defaults,
             "buyers": [{"id": f"buyer-{i:0{width}d}"} for i in range(1, n + 1)]}
    buyers_from(fleet)      # fail here, not in the server, on a bad flag
    return fleet


def with_overrides(fleet: dict, overrides: dict) -> dict:
    """The fleet with the given fields forced on every buyer (CLI flags beat the file)."""
    if not overrides:
        return fleet
    return {**fleet, "buyers": [{**spec, **overrides} for spec in fleet["buyers"]]}


def tree_for_fleet(
    fleet: dict,
    base_url: str,
    tiers: Iterable[dict] | None = None,
    network: dict | None = None,
    verticals: Iterable[str] = VERTICALS,
) -> dict:
    """A tree file (docs/tree.md) whose buyers are this fleet's buyers served at base_url.

    Tiers and network come from the arguments, else the fleet file, else one auction tier and
    the documented example network. A buyer's ``tree`` block is copied into its entry (``tier``
    defaults to 1); its standing ``bid`` defaults to the middle of its bid range.
    """
    base_url = base_url.rstrip("/")
    buyers = []
    for buyer in buyers_from(fleet).values():
        extra = dict(buyer.tree)
        pre_ping = bool(extra.pop("pre_ping", False))
        entry: dict[str, Any] = {
            "id": buyer.id,
            "name": buyer.name or buyer.id.replace("-", " ").title(),
            "active": True,
            "tier": 1,
            "verticals": list(verticals),
        }
        if buyer.style == "native":
            entry.update({
                "ping_url": f"{base_url}/{buyer.id}/ping",
                "post_url": f"{base_url}/{buyer.id}/post",
                "pre_ping_url": f"{base_url}/{buyer.id}/pre_ping" if pre_ping else None,
                "secret": buyer.secret})
        else:
            # A buyer with its own API: the integration that speaks it, and its key.
            entry["integration"] = STYLES[buyer.style].integration(f"{base_url}/{buyer.id}")
            entry["credentials"] = {"api_key": buyer.api_key}
        if buyer.bid_cents is not None:
            entry["bid"] = sum(buyer.bid_cents) // 2 / 100
        entry.update(extra)
        buyers.append(entry)
    used = sorted({entry["tier"] for entry in buyers}) or [1]
    if tiers is None:
        tiers = fleet.get("tiers") or [
            {"tier": t, "name": "main" if t == 1 else f"tier-{t}", "mode": "auction"}
            for t in used
        ]
    return {
        "network": dict(network or fleet.get("network") or DEFAULT_NETWORK),
        "tiers": [dict(t) for t in tiers],
        "buyers": buyers,
    }


def carries_personal_data(value: Any) -> bool:
    """True when any key, at any depth, names personal data (pings carry none)."""
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and k.lower() in PERSONAL_KEYS) or carries_personal_data(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(carries_personal_data(v) for v in value)
    return False
