"""A simulated buyer fleet speaking the SPEC §6 wire protocol, all buyers in one aiohttp server.

Used by ``make demo``, the tests and the benchmark (``pingtree mock-buyers``). One asyncio
process hosts every buyer so that thousands of pings per second cost little CPU.

Fleet file (JSON)::

    {
      "defaults": {"latency_ms": {"dist": "lognormal", "median_ms": 60, "sigma": 0.5}},
      "network": {...},          # optional: copied into the tree by tree_for_fleet()
      "tiers": [...],            # optional: likewise
      "buyers": [
        {"id": "provider-a",                 # URL-safe, must not start with "_"
         "name": "Provider A",               # optional, for the tree
         "accept_rate": 0.8,                 # share of pings answered {"accept": true}
         "bid": [20.0, 40.0],                # answered bid: [min, max] uniform in cents,
                                             #   a number (fixed) or null (no bid in the answer)
         "reason": "cap",                    # reason given when a ping is rejected
         "latency_ms": {"dist": "lognormal", "median_ms": 80, "sigma": 0.5, "max_ms": 2000},
                                             #   or {"dist": "uniform", "min_ms": 5, "max_ms": 50}
                                             #   or {"dist": "fixed", "ms": 10}, or a bare number
         "hang_rate": 0.0, "hang_s": 30,     # share of pings answered only after hang_s
         "error_rate": 0.0,                  # share of pings answered HTTP 500
         "invalid_json_rate": 0.0,           # share answered 200 with a body that is not JSON
         "pre_ping_eligible_rate": 1.0,      # share of pre-pings answered {"eligible": true}
         "post_reject_rate": 0.0,            # share of posts answered {"accepted": false}
         "post_reject_reason": "duplicate",
         "post_error_rate": 0.0,             # share of posts answered HTTP 503 (retryable)
         "secret": "whsec_...",              # optional: the Standard Webhooks secret it verifies
                                             #   with (default: one derived from its id)
         "enforce_signature": false,         # true: a bad signature is answered 401
         "tree": {"tier": 1, "priority": 10, "pre_ping": true, "min_score": 60}}
                                             #   optional: extra fields for tree_for_fleet();
                                             #   "pre_ping": true adds a pre_ping_url
      ]
    }

Every buyer field but ``id`` is optional; ``defaults`` fills what a buyer leaves out.

Routes: ``POST /{buyer}/ping``, ``POST /{buyer}/pre_ping``, ``POST /{buyer}/post`` (unknown
buyer: 404), and for tests: ``GET /_stats``, ``GET /_posts[?lead_id=&buyer_id=]``,
``GET /_pings?lead_id=...``, ``GET /_fleet``, ``PUT /_fleet``, ``POST /_reset``.

Determinism: with a seed, each buyer draws from its own ``random.Random`` per kind (ping,
pre-ping, post), and every draw is made for every request whatever the outcome, so a buyer's
answers depend only on the seed and how many requests that buyer has had, not on other
buyers' traffic or on which failure rates are set. ``/_reset`` restarts the streams.

A hang or an error is decided before the accept draw and wins over it; a hung ping is
finally answered with its accept/reject (a late answer). A post answered 503 is not
remembered, so a retry with the same Idempotency-Key is processed afresh, as a real buyer
would; any other answer is replayed for the same key and counted in ``post_duplicates``.
Counters: ``pings = accepts + rejects + hangs + errors + invalid_json``; ``posts`` counts
posts processed once (the ``/_posts`` records), not duplicates or 503s.

The server records no contact data: posts keep ids, price, keys and the consent text's hash.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import requests
import standardwebhooks
from aiohttp import web

from pipeline.domain import verticals

VERTICALS = verticals.NAMES

DEFAULT_NETWORK = {
    "score_floor": 50, "bid_floor": 1.00, "auction_timeout_s": 10, "max_cycles": 2,
    "rerun_interval_s": 300, "duplicate_window_h": 24, "stuck_after_s": 60,
}
DEFAULT_TIERS = ({"tier": 1, "name": "main", "mode": "auction"},)

# Keys that mean a ping carries personal data (SPEC §6), wherever they appear in the body.
PERSONAL_KEYS = frozenset({
    "contact", "first_name", "last_name", "full_name", "name", "email", "email_address",
    "phone", "phone_number", "mobile", "address", "street", "street_address", "address1",
    "address2", "ip", "ip_address",
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
    "bad_signatures", "pii_violations", "bad_requests",
)

BUYER_DEFAULTS: dict[str, Any] = {
    "name": None, "accept_rate": 0.7, "bid": [10.0, 40.0], "reason": "cap",
    "latency_ms": 0, "hang_rate": 0.0, "hang_s": 30.0, "error_rate": 0.0,
    "invalid_json_rate": 0.0, "pre_ping_eligible_rate": 1.0, "post_reject_rate": 0.0,
    "post_reject_reason": "duplicate", "post_error_rate": 0.0, "secret": None,
    "enforce_signature": False, "tree": {},
}
RATES = (
    "accept_rate", "hang_rate", "error_rate", "invalid_json_rate", "pre_ping_eligible_rate",
    "post_reject_rate", "post_error_rate",
)

GARBAGE = b'{"accept": true, "bid": 3'   # a truncated answer: 200, but not JSON


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
    """A SPEC §4 tree whose buyers are this fleet's buyers served at base_url.

    Tiers and network come from the arguments, else the fleet file, else one auction tier and
    the SPEC example network. A buyer's ``tree`` block is copied into its entry (``tier``
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
            "ping_url": f"{base_url}/{buyer.id}/ping",
            "post_url": f"{base_url}/{buyer.id}/post",
            "pre_ping_url": f"{base_url}/{buyer.id}/pre_ping" if pre_ping else None,
        }
        if buyer.bid_cents is not None:
            entry["bid"] = sum(buyer.bid_cents) // 2 / 100
        entry["secret"] = buyer.secret
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
    """True when any key, at any depth, names personal data (SPEC §6: pings carry none)."""
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and k.lower() in PERSONAL_KEYS) or carries_personal_data(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(carries_personal_data(v) for v in value)
    return False


# ---------------------------------------------------------------------------------------------
# The server


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(payload).encode(), status=status,
                        content_type="application/json")


@dataclass(slots=True)
class PostAnswer:
    status: int
    body: bytes
    body_sha256: str
    record: dict


class Fleet:
    """The buyers' behaviour plus everything they have received, held in memory."""

    def __init__(self, fleet: dict, seed: int | None) -> None:
        self.buyers = buyers_from(fleet)
        self.config = fleet
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.counters: dict[str, dict[str, int]] = {}
        self.rngs: dict[tuple[str, str], random.Random] = {}
        self.pings: dict[Any, list[dict]] = {}
        self.ping_count = 0
        self.posts: dict[int, dict] = {}         # insertion-ordered, trimmed from the front
        self.post_seq = 0
        self.answered_posts: dict[tuple[str, str], PostAnswer] = {}

    def replace(self, fleet: dict) -> None:
        self.buyers = buyers_from(fleet)
        self.config = fleet

    def counters_of(self, buyer_id: str) -> dict[str, int]:
        counters = self.counters.get(buyer_id)
        if counters is None:
            counters = self.counters[buyer_id] = dict.fromkeys(COUNTERS, 0)
        return counters

    def rng(self, buyer_id: str, kind: str) -> random.Random:
        rng = self.rngs.get((buyer_id, kind))
        if rng is None:
            # A string seed is hashed (sha512) by random, so the stream is stable across runs.
            seed = None if self.seed is None else f"{self.seed}:{buyer_id}:{kind}"
            rng = self.rngs[(buyer_id, kind)] = random.Random(seed)
        return rng

    def record_ping(self, record: dict) -> None:
        self.pings.setdefault(record["lead_id"], []).append(record)
        self.ping_count += 1
        while self.ping_count > MAX_PING_RECORDS:
            self.ping_count -= len(self.pings.pop(next(iter(self.pings))))

    def record_post(self, record: dict) -> None:
        self.post_seq += 1
        self.posts[self.post_seq] = record
        if len(self.posts) > MAX_POST_RECORDS:
            del self.posts[next(iter(self.posts))]

    def stats(self) -> dict:
        for buyer_id in self.buyers:
            self.counters_of(buyer_id)
        total = dict.fromkeys(COUNTERS, 0)
        for counters in self.counters.values():
            for key, value in counters.items():
                total[key] += value
        return {"buyers": self.counters, "total": total}


class BuyerRoutes:
    """The aiohttp handlers: the buyer protocol and the test introspection routes."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def buyer(self, request: web.Request) -> BuyerBehaviour:
        buyer = self.fleet.buyers.get(request.match_info["buyer_id"])
        if buyer is None:
            raise web.HTTPNotFound(text='{"error": "unknown buyer"}',
                                   content_type="application/json")
        return buyer

    def signature_ok(self, buyer: BuyerBehaviour, request: web.Request, raw: bytes,
                     counters: dict[str, int]) -> bool:
        """Whether the signature verifies, checked as a buyer would: with the standardwebhooks
        library. A malformed header (non-ASCII, a huge or non-numeric timestamp) is a bad one."""
        try:
            standardwebhooks.Webhook(buyer.secret).verify(raw, dict(request.headers), json_parse=False)
            return True
        except Exception:              # the library raises several kinds on malformed headers
            counters["bad_signatures"] += 1
            return False

    async def read_body(self, buyer: BuyerBehaviour, request: web.Request,
                        counters: dict[str, int]) -> tuple[dict, bytes, bool | None]:
        raw = await request.read()
        signature_ok = self.signature_ok(buyer, request, raw, counters)
        if signature_ok is False and buyer.enforce_signature:
            raise web.HTTPUnauthorized(text='{"error": "bad signature"}',
                                       content_type="application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            counters["bad_requests"] += 1
            raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}',
                                     content_type="application/json")
        return body, raw, signature_ok

    async def ping(self, request: web.Request) -> web.StreamResponse:
        buyer = self.buyer(request)
        counters = self.fleet.counters_of(buyer.id)
        body, _, signature_ok = await self.read_body(buyer, request, counters)
        if carries_personal_data(body):
            counters["pii_violations"] += 1
        rng = self.fleet.rng(buyer.id, "ping")
        # Every draw is made on every ping so outcomes stay aligned whatever the rates.
        delay = buyer.latency.draw_s(rng)
        hang = rng.random() < buyer.hang_rate
        error = rng.random() < buyer.error_rate
        garbage = rng.random() < buyer.invalid_json_rate
        accept = rng.random() < buyer.accept_rate
        bid = buyer.draw_bid(rng)

        counters["pings"] += 1
        if accept:
            answer: dict[str, Any] = {"accept": True, "ref": f"{buyer.id}-{counters['pings']}"}
            if bid is not None:
                answer["bid"] = bid
        else:
            answer, bid = {"accept": False, "reason": buyer.reason}, None
        outcome = ("hang" if hang else "error" if error else "invalid_json" if garbage
                   else "accept" if accept else "reject")
        counters[{"accept": "accepts", "reject": "rejects", "hang": "hangs",
                  "error": "errors", "invalid_json": "invalid_json"}[outcome]] += 1
        record = {
            "kind": "ping", "buyer_id": buyer.id, "lead_id": body.get("lead_id"),
            "ping_id": body.get("ping_id"), "cycle": body.get("cycle"),
            "received_at": time.time(), "outcome": outcome,
            "bid": bid if outcome in ("accept", "hang") else None,
            "ref": answer.get("ref") if outcome in ("accept", "hang") else None,
            "signature_ok": signature_ok, "answered_at": None,
        }
        self.fleet.record_ping(record)

        if hang:
            delay += buyer.hang_s
        if delay:
            await asyncio.sleep(delay)
        record["answered_at"] = time.time()
        if error:
            return _json({"error": "internal error"}, status=500)
        if garbage:
            return web.Response(body=GARBAGE, content_type="application/json")
        return _json(answer)

    async def pre_ping(self, request: web.Request) -> web.StreamResponse:
        buyer = self.buyer(request)
        counters = self.fleet.counters_of(buyer.id)
        body, _, signature_ok = await self.read_body(buyer, request, counters)
        if carries_personal_data(body):
            counters["pii_violations"] += 1
        rng = self.fleet.rng(buyer.id, "pre_ping")
        delay = buyer.latency.draw_s(rng)
        hang = rng.random() < buyer.hang_rate
        error = rng.random() < buyer.error_rate
        eligible = rng.random() < buyer.pre_ping_eligible_rate

        counters["pre_pings"] += 1
        if hang:
            outcome = "hang"
            counters["hangs"] += 1
        elif error:
            outcome = "error"
            counters["errors"] += 1
        else:
            outcome = "eligible" if eligible else "ineligible"
            counters[f"pre_ping_{outcome}"] += 1
        record = {
            "kind": "pre_ping", "buyer_id": buyer.id, "lead_id": body.get("lead_id"),
            "ping_id": body.get("ping_id"), "cycle": body.get("cycle"),
            "received_at": time.time(), "outcome": outcome, "bid": None, "ref": None,
            "signature_ok": signature_ok, "answered_at": None,
        }
        self.fleet.record_ping(record)
        if hang:
            delay += buyer.hang_s
        if delay:
            await asyncio.sleep(delay)
        record["answered_at"] = time.time()
        if error:
            return _json({"error": "internal error"}, status=500)
        return _json({"eligible": eligible})

    async def post(self, request: web.Request) -> web.StreamResponse:
        buyer = self.buyer(request)
        counters = self.fleet.counters_of(buyer.id)
        body, raw, signature_ok = await self.read_body(buyer, request, counters)
        body_sha256 = hashlib.sha256(raw).hexdigest()
        key = request.headers.get("Idempotency-Key")
        rng = self.fleet.rng(buyer.id, "post")
        delay = buyer.latency.draw_s(rng)

        if key is None:
            counters["post_missing_key"] += 1
        else:
            prior = self.fleet.answered_posts.get((buyer.id, key))
            if prior is not None:
                counters["post_duplicates"] += 1
                prior.record["duplicates"] += 1
                if prior.body_sha256 != body_sha256:
                    counters["post_conflicts"] += 1
                if delay:
                    await asyncio.sleep(delay)
                return web.Response(body=prior.body, status=prior.status,
                                    content_type="application/json")

        error = rng.random() < buyer.post_error_rate
        reject = rng.random() < buyer.post_reject_rate
        if error:
            # Not remembered: a 503 means "not processed", so a retry is processed afresh.
            counters["post_errors"] += 1
            if delay:
                await asyncio.sleep(delay)
            return _json({"error": "unavailable"}, status=503)

        contact = body.get("contact")
        if not isinstance(contact, dict) or not contact:
            counters["post_missing_contact"] += 1
            status, answer = 400, {"accepted": False, "reason": "missing contact"}
        elif reject:
            status, answer = 200, {"accepted": False, "reason": buyer.post_reject_reason}
        else:
            status, answer = 200, {"accepted": True}
        counters["posts"] += 1
        counters["post_accepts" if answer["accepted"] else "post_rejects"] += 1
        # Ids, price and keys only: the contact data is never kept; of the consent, its hash.
        consent = body.get("consent") if isinstance(body.get("consent"), dict) else {}
        record = {
            "lead_id": body.get("lead_id"), "buyer_id": buyer.id, "price": body.get("price"),
            "consent_text_sha256": consent.get("text_sha256"),
            "ping_id": body.get("ping_id"), "ping_ref": body.get("ping_ref"),
            "idempotency_key": key, "webhook_id": request.headers.get("webhook-id"),
            "received_at": time.time(), "signature_ok": signature_ok,
            "accepted": answer["accepted"], "reason": answer.get("reason"), "duplicates": 0,
        }
        self.fleet.record_post(record)
        encoded = json.dumps(answer).encode()
        if key is not None:
            self.fleet.answered_posts[(buyer.id, key)] = PostAnswer(
                status, encoded, body_sha256, record)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(body=encoded, status=status, content_type="application/json")

    async def stats(self, request: web.Request) -> web.Response:
        return _json(self.fleet.stats())

    async def posts(self, request: web.Request) -> web.Response:
        lead_id, buyer_id = request.query.get("lead_id"), request.query.get("buyer_id")
        return _json([
            p for p in self.fleet.posts.values()
            if (lead_id is None or p["lead_id"] == lead_id)
            and (buyer_id is None or p["buyer_id"] == buyer_id)
        ])

    async def pings(self, request: web.Request) -> web.Response:
        lead_id = request.query.get("lead_id")
        if lead_id is None:
            raise web.HTTPBadRequest(text='{"error": "lead_id is required"}',
                                     content_type="application/json")
        return _json(self.fleet.pings.get(lead_id, []))

    async def reset(self, request: web.Request) -> web.Response:
        self.fleet.reset()
        return _json({"reset": True})

    async def get_fleet(self, request: web.Request) -> web.Response:
        return _json(self.fleet.config)

    async def put_fleet(self, request: web.Request) -> web.Response:
        try:
            self.fleet.replace(await request.json())
        except ValueError as exc:       # json.JSONDecodeError is a ValueError too
            return _json({"error": str(exc)}, status=400)
        return _json({"buyers": sorted(self.fleet.buyers)})


def build_app(fleet: dict, seed: int | None = None) -> web.Application:
    """The whole fleet as one aiohttp application (see the module docstring for routes)."""
    routes = BuyerRoutes(Fleet(fleet, seed))
    app = web.Application()
    app["fleet"] = routes.fleet
    app.router.add_get("/_stats", routes.stats)
    app.router.add_get("/_posts", routes.posts)
    app.router.add_get("/_pings", routes.pings)
    app.router.add_post("/_reset", routes.reset)
    app.router.add_get("/_fleet", routes.get_fleet)
    app.router.add_put("/_fleet", routes.put_fleet)
    app.router.add_post("/{buyer_id}/ping", routes.ping)
    app.router.add_post("/{buyer_id}/pre_ping", routes.pre_ping)
    app.router.add_post("/{buyer_id}/post", routes.post)
    return app


async def serve(host: str, port: int, fleet: dict, seed: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then close cleanly."""
    app = build_app(fleet, seed)
    # No access log (it would cost CPU at benchmark rates); cancel a hung handler when its
    # client gives up, and do not wait for hung buyers on shutdown.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    print(f"mock-buyers: {len(app['fleet'].buyers)} buyers on http://{host}:{bound}"
          f" (seed {seed})", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(host: str, port: int, fleet: dict, seed: int | None = None) -> None:
    asyncio.run(serve(host, port, fleet, seed))


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="fleet JSON file (see module docs)")
    parser.add_argument("--buyers", type=int, metavar="N",
                        help="without --config: a uniform fleet of N buyers (default 8)")
    parser.add_argument("--accept-rate", type=float, help="share of pings accepted")
    parser.add_argument("--bid", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="bid range in dollars")
    parser.add_argument("--latency-ms", type=float, help="fixed answer latency")
    parser.add_argument("--hang-rate", type=float, help="share of pings that hang")
    parser.add_argument("--hang-s", type=float, help="how long a hang lasts")
    parser.add_argument("--error-rate", type=float, help="share of pings answered 500")
    parser.add_argument("--post-reject-rate", type=float, help="share of posts rejected")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=9100, help="port to listen on (default %(default)s)")
    parser.add_argument("--seed", type=int, help="make every answer reproducible")
    parser.add_argument("--print-tree", action="store_true",
                        help="print the tree file for this fleet and exit (serve it with the same"
                             " flags without --print-tree)")


def fleet_from_args(args: argparse.Namespace) -> dict:
    """The fleet file, or a uniform fleet from flags; explicit flags override the file."""
    flags = {
        "accept_rate": args.accept_rate, "bid": args.bid, "hang_rate": args.hang_rate,
        "hang_s": args.hang_s, "error_rate": args.error_rate,
        "post_reject_rate": args.post_reject_rate,
        "latency_ms": args.latency_ms,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if args.config:
        if args.buyers is not None:
            raise BadFleet("--buyers and --config exclude each other")
        fleet = json.loads(Path(args.config).read_text())
        fleet = with_overrides(fleet, {k: list(v) if k == "bid" else v for k, v in given.items()})
        buyers_from(fleet)
        return fleet
    return fleet_from_flags(args.buyers if args.buyers is not None else 8, **given)


def main_from_args(args: argparse.Namespace) -> int:
    try:
        fleet = fleet_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"mock-buyers: {exc}", file=sys.stderr)
        return 2
    if args.print_tree:
        print(json.dumps(tree_for_fleet(fleet, f"http://{args.host}:{args.port}"), indent=2))
        # The tree names this fleet's buyers: a server started with other flags answers 404.
        same = " ".join(a for a in sys.argv[1:] if a not in ("--print-tree", "mock-buyers"))
        print(f"mock-buyers: this tree's buyers are served by `pingtree mock-buyers {same}` (the same flags"
              f" without --print-tree) on {args.host}:{args.port}, not by another fleet", file=sys.stderr)
        return 0
    run(args.host, args.port, fleet, args.seed)
    return 0


# ---------------------------------------------------------------------------------------------
# A server in a subprocess, for tests and the benchmark


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MockBuyersProcess:
    """``python -m pipeline.devtools.mockbuyers`` in a subprocess, driven over HTTP.

    with MockBuyersProcess(fleet, seed=1) as buyers:
        tree = buyers.tree()
        ...
        assert buyers.stats()["buyers"]["buyer-01"]["pii_violations"] == 0
    """

    def __init__(self, fleet: dict, *, seed: int | None = None, host: str = "127.0.0.1",
                 port: int | None = None, startup_timeout_s: float = 15.0) -> None:
        buyers_from(fleet)
        self.fleet = fleet
        self.seed = seed
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self._popen: subprocess.Popen | None = None
        self._config_path: str | None = None
        self._http = requests.Session()

    def start(self) -> Self:
        self.port = self.port or free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        fd, self._config_path = tempfile.mkstemp(prefix="pingtree-fleet-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self.fleet, f)
        command = [sys.executable, "-m", "pipeline.devtools.mockbuyers", "--config", self._config_path,
                   "--host", self.host, "--port", str(self.port)]
        if self.seed is not None:
            command += ["--seed", str(self.seed)]
        # Run from the project root so ``-m pipeline...`` works without an install.
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._popen = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._popen.poll() is not None:
                self._cleanup()
                raise RuntimeError(f"mock-buyers exited with {self._popen.returncode}")
            try:
                self._http.get(f"{self.url}/_stats", timeout=0.5).raise_for_status()
                return self
            except requests.RequestException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mock-buyers did not answer on {self.url}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self._http.close()
        if self._config_path:
            Path(self._config_path).unlink(missing_ok=True)
            self._config_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _get(self, path: str, **params: str) -> Any:
        response = self._http.get(f"{self.url}{path}", params=params or None, timeout=5)
        response.raise_for_status()
        return response.json()

    def stats(self, buyer_id: str | None = None) -> dict:
        """All counters ({"buyers": {id: {...}}, "total": {...}}), or one buyer's."""
        stats = self._get("/_stats")
        return stats if buyer_id is None else stats["buyers"][buyer_id]

    def posts(self, lead_id: str | None = None) -> list[dict]:
        return self._get("/_posts", **({"lead_id": lead_id} if lead_id else {}))

    def pings(self, lead_id: str) -> list[dict]:
        return self._get("/_pings", lead_id=lead_id)

    def set_fleet(self, fleet: dict) -> None:
        response = self._http.put(f"{self.url}/_fleet", json=fleet, timeout=5)
        if response.status_code == 400:
            raise BadFleet(response.json()["error"])
        response.raise_for_status()
        self.fleet = fleet

    def reset(self) -> None:
        self._http.post(f"{self.url}/_reset", timeout=5).raise_for_status()

    def tree(self, **kwargs: Any) -> dict:
        """The SPEC §4 tree for the current fleet at this server (see tree_for_fleet)."""
        return tree_for_fleet(self.fleet, self.url, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pingtree mock-buyers",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
