"""The simulated fleet's server: every buyer in one aiohttp process, each in its own style."""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import standardwebhooks
from aiohttp import web

from pipeline.devtools.mockbuyers.fleet import (
    COUNTERS,
    MAX_PING_RECORDS,
    MAX_POST_RECORDS,
    BuyerBehaviour,
    buyers_from,
    carries_personal_data,
)
from pipeline.devtools.mockbuyers.styles import STYLES, phone_shape


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
    """The aiohttp handlers: each buyer's style of request and answer, and the test routes."""

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

    async def hear(self, buyer: BuyerBehaviour, request: web.Request, counters: dict[str, int],
                   kind: str) -> tuple[dict, bytes, bool | None]:
        """The request as this buyer's style reads it; 400 unreadable, 401 bad signature or key."""
        raw = await request.read()
        # A buyer with its own API checks its own key, not our signatures.
        signature_ok = self.signature_ok(buyer, request, raw, counters) if buyer.style == "native" else None
        if signature_ok is False and buyer.enforce_signature:
            raise web.HTTPUnauthorized(text='{"error": "bad signature"}',
                                       content_type="application/json")
        style = STYLES[buyer.style]
        query = dict(request.query)
        bearer = request.headers.get("Authorization", "")
        query["_bearer"] = bearer[7:] if bearer.startswith("Bearer ") else None
        heard = (style.read_post if kind == "post" else style.read_ping)(raw, query)
        if heard is None:
            counters["bad_requests"] += 1
            raise web.HTTPBadRequest(text="unreadable request", content_type="text/plain")
        if buyer.style != "native" and heard.get("api_key") != buyer.api_key:
            counters["bad_credentials"] += 1
            raise web.HTTPUnauthorized(text="bad api key", content_type="text/plain")
        return heard, raw, signature_ok

    def _answer(self, buyer: BuyerBehaviour, body: bytes, status: int = 200) -> web.Response:
        return web.Response(body=body, status=status, content_type=STYLES[buyer.style].content_type)

    async def heard_ping(self, request: web.Request, kind: str):
        """A ping or pre-ping as heard, counted against personal data, with its draw stream."""
        buyer = self.buyer(request)
        counters = self.fleet.counters_of(buyer.id)
        heard, _, signature_ok = await self.hear(buyer, request, counters, kind)
        if carries_personal_data(heard["fields"]):
            counters["pii_violations"] += 1
        return buyer, counters, heard, signature_ok, self.fleet.rng(buyer.id, kind)

    @staticmethod
    async def wait_to_answer(record: dict, delay: float, hang: bool, hang_s: float,
                             error: bool) -> web.Response | None:
        """Sleep the drawn latency (and a hang); a 500 when the draw said error."""
        if hang:
            delay += hang_s
        if delay:
            await asyncio.sleep(delay)
        record["answered_at"] = time.time()
        return _json({"error": "internal error"}, status=500) if error else None

    async def ping(self, request: web.Request) -> web.StreamResponse:
        buyer, counters, heard, signature_ok, rng = await self.heard_ping(request, "ping")
        # Every draw is made on every ping so outcomes stay aligned whatever the rates.
        delay = buyer.latency.draw_s(rng)
        hang = rng.random() < buyer.hang_rate
        error = rng.random() < buyer.error_rate
        garbage = rng.random() < buyer.invalid_json_rate
        accept = rng.random() < buyer.accept_rate
        bid = buyer.draw_bid(rng)

        counters["pings"] += 1
        ref = f"{buyer.id}-{counters['pings']}"
        if not accept:
            bid = None
        answer = STYLES[buyer.style].ping_answer(accept, bid, ref, buyer.reason)
        outcome = ("hang" if hang else "error" if error else "invalid_json" if garbage
                   else "accept" if accept else "reject")
        counters[{"accept": "accepts", "reject": "rejects", "hang": "hangs",
                  "error": "errors", "invalid_json": "invalid_json"}[outcome]] += 1
        record = {
            "kind": "ping", "buyer_id": buyer.id, "lead_id": heard["lead_id"],
            "ping_id": heard["ping_id"], "cycle": heard["cycle"],
            "received_at": time.time(), "outcome": outcome,
            "bid": bid if outcome in ("accept", "hang") else None,
            "ref": ref if accept and outcome in ("accept", "hang") else None,
            "signature_ok": signature_ok, "answered_at": None,
            "method": request.method, "content_type": request.content_type,
            # A ping carries no personal data, so what it said can be kept (to check formats).
            "fields": heard["fields"] if buyer.style != "native" else None,
        }
        self.fleet.record_ping(record)
        failed = await self.wait_to_answer(record, delay, hang, buyer.hang_s, error)
        if failed:
            return failed
        if garbage:
            return self._answer(buyer, STYLES[buyer.style].garbage)
        return self._answer(buyer, answer)

    async def pre_ping(self, request: web.Request) -> web.StreamResponse:
        buyer, counters, heard, signature_ok, rng = await self.heard_ping(request, "pre_ping")
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
            "kind": "pre_ping", "buyer_id": buyer.id, "lead_id": heard["lead_id"],
            "ping_id": heard["ping_id"], "cycle": heard["cycle"],
            "received_at": time.time(), "outcome": outcome, "bid": None, "ref": None,
            "signature_ok": signature_ok, "answered_at": None,
        }
        self.fleet.record_ping(record)
        return (await self.wait_to_answer(record, delay, hang, buyer.hang_s, error)
                or _json({"eligible": eligible}))

    async def post(self, request: web.Request) -> web.StreamResponse:
        buyer = self.buyer(request)
        counters = self.fleet.counters_of(buyer.id)
        heard, raw, signature_ok = await self.hear(buyer, request, counters, "post")
        body_sha256 = hashlib.sha256(raw).hexdigest()
        key = request.headers.get("Idempotency-Key")
        rng = self.fleet.rng(buyer.id, "post")
        delay = buyer.latency.draw_s(rng)
        style = STYLES[buyer.style]

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
                return self._answer(buyer, prior.body, prior.status)

        error = rng.random() < buyer.post_error_rate
        reject = rng.random() < buyer.post_reject_rate
        if error:
            # Not remembered: a 503 means "not processed", so a retry is processed afresh.
            counters["post_errors"] += 1
            if delay:
                await asyncio.sleep(delay)
            return _json({"error": "unavailable"}, status=503)

        if not heard["has_contact"]:
            counters["post_missing_contact"] += 1
            status, accepted, reason = 400, False, "missing contact"
        elif reject:
            status, accepted, reason = 200, False, buyer.post_reject_reason
        else:
            status, accepted, reason = 200, True, None
        counters["posts"] += 1
        counters["post_accepts" if accepted else "post_rejects"] += 1
        # Ids, price and keys only: the contact data is never kept; of the consent, its hash;
        # of the phone, how it was written.
        text = heard.get("consent_text")
        record = {
            "lead_id": heard["lead_id"], "buyer_id": buyer.id, "price": heard["price"],
            "consent_text_sha256": heard.get("consent_text_sha256") or (
                hashlib.sha256(text.encode()).hexdigest() if isinstance(text, str) else None),
            "ping_id": heard["ping_id"], "ping_ref": heard["ping_ref"],
            "phone_shape": phone_shape(heard.get("phone")),
            "idempotency_key": key, "webhook_id": request.headers.get("webhook-id"),
            "received_at": time.time(), "signature_ok": signature_ok,
            "accepted": accepted, "reason": reason, "duplicates": 0,
        }
        self.fleet.record_post(record)
        encoded = style.post_answer(accepted, reason)
        if key is not None:
            self.fleet.answered_posts[(buyer.id, key)] = PostAnswer(
                status, encoded, body_sha256, record)
        if delay:
            await asyncio.sleep(delay)
        return self._answer(buyer, encoded, status)

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
    app.router.add_route("*", "/{buyer_id}/ping", routes.ping)
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
