"""The benchmark's floor: one asyncio process pings every buyer, picks the best bid and posts.

No broker, no database: the least work a ping-tree can do for a lead against the same mock
buyers (same bodies, same signatures, same answer parsing), so `pingtree bench` can print our
figures as ratios to it. Run as ``python -m pipeline.devtools.benchfloor``; prints one JSON document.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp

from pipeline.devtools.bench.measure import pct
from pipeline.devtools.mockbuyers import mock_secret
from pipeline.domain import samples
from pipeline.protocols import native as protocol
from pipeline.protocols import signing


class Floor:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, buyer_ids: list[str],
                 timeout_s: float):
        self.session, self.base, self.buyers = session, base_url.rstrip("/"), buyer_ids
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        # Signed as pingtree signs, with each simulated buyer's own secret.
        self.secrets = {b: mock_secret(b) for b in buyer_ids}

    async def _send(self, url: str, raw: bytes, headers: dict) -> tuple[int | None, bytes]:
        try:
            async with self.session.post(url, data=raw, headers=headers,
                                         timeout=self.timeout) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError):
            return None, b""

    async def ping(self, buyer_id: str, view: dict, deadline: datetime) -> protocol.Answer:
        started = time.monotonic()
        pid = uuid.uuid4()
        raw = protocol.dumps(protocol.ping_body(view, ping_id=pid, cycle=1, bid_cents=2500,
                                                expires_at=deadline))
        msg_id = protocol.webhook_id(view["lead_id"], buyer_id, "ping")
        headers = {"Content-Type": "application/json",
                   **signing.sign_headers(self.secrets[buyer_id], msg_id, int(time.time()), raw)}
        status, body = await self._send(f"{self.base}/{buyer_id}/ping", raw, headers)
        latency = int((time.monotonic() - started) * 1000)
        if status is None:
            return protocol.Answer("timeout", reason="timeout", latency_ms=latency)
        return protocol.read_ping_answer(status, body, 2500, latency)

    async def lead(self, payload: dict) -> tuple[float, str | None]:
        """Fan out, pick the highest accepted bid, post the full lead; (seconds, winner)."""
        started = time.monotonic()
        lead_id = str(uuid.uuid4())
        deadline = datetime.now(UTC) + timedelta(seconds=2)
        contact = payload["contact"]
        view = {"lead_id": lead_id, "vertical": payload["vertical"], "score": 70,
                "geo": {"zip": contact["zip"], "city": contact["city"], "state": contact["state"]},
                "qualifiers": payload["qualifiers"]}
        answers = await asyncio.gather(*(self.ping(b, view, deadline) for b in self.buyers))
        accepted = [(a.bid_cents, -i, b) for i, (a, b) in enumerate(zip(answers, self.buyers, strict=False))
                    if a.outcome == "accept" and a.bid_cents]
        if not accepted:
            return time.monotonic() - started, None
        price, _, winner = max(accepted)
        lead = {"id": lead_id, "vertical": payload["vertical"], "score": 70, "signals": {},
                "contact": contact, "qualifiers": payload["qualifiers"], "source": payload["source"],
                "form": payload["form"]}
        raw = protocol.dumps(protocol.post_body(lead, payload["consent"], ping_id=uuid.uuid4(),
                                                ping_ref=None, price_cents=price))
        headers = {"Content-Type": "application/json", "Idempotency-Key": lead_id,
                   **signing.sign_headers(self.secrets[winner], protocol.webhook_id(lead_id, winner, "post"),
                                          int(time.time()), raw)}
        status, _ = await self._send(f"{self.base}/{winner}/post", raw, headers)
        return time.monotonic() - started, winner if status and 200 <= status < 300 else None


async def run(base_url: str, buyer_ids: list[str], *, mode: str, leads: int, duration_s: float,
              concurrency: int, seed: int) -> dict:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    pool = [samples.make_lead(rng, "solar", now=now) for _ in range(200)]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        floor = Floor(session, base_url, buyer_ids, 2.0)
        for payload in pool[:5]:                    # warm the keep-alive connections
            await floor.lead(payload)
        latencies: list[float] = []
        sold = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        if mode == "latency":
            for i in range(leads):
                seconds, winner = await floor.lead(pool[i % len(pool)])
                latencies.append(seconds * 1000)
                sold += winner is not None
        else:
            stop_at = wall0 + duration_s
            counter = iter(range(10**9))

            async def loop():
                nonlocal sold
                while time.monotonic() < stop_at:
                    seconds, winner = await floor.lead(pool[next(counter) % len(pool)])
                    latencies.append(seconds * 1000)
                    sold += winner is not None
            await asyncio.gather(*(loop() for _ in range(concurrency)))
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    return {"mode": mode, "buyers": len(buyer_ids), "leads": len(latencies), "sold": sold,
            "wall_s": round(wall, 3), "leads_per_s": round(len(latencies) / wall, 1) if wall else None,
            "cpu_ms_per_lead": round(cpu * 1000 / max(1, len(latencies)), 3),
            "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95),
            "p99_ms": pct(latencies, 99), "concurrency": concurrency if mode != "latency" else 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.devtools.benchfloor",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--buyers", required=True, help="comma-separated buyer ids")
    parser.add_argument("--mode", choices=("latency", "throughput"), default="latency")
    parser.add_argument("--leads", type=int, default=100)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.base_url, args.buyers.split(","), mode=args.mode, leads=args.leads,
                             duration_s=args.duration, concurrency=args.concurrency,
                             seed=args.seed))
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        result[key] = round(result[key], 2) if result[key] is not None else None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
