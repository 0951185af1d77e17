"""The benchmark's floor: one process pings every buyer, picks the best bid and posts.

No broker, no database: the least work a ping-tree can do for a lead against the same mock
buyers (same bodies, same signatures, same answer parsing, the same HTTP engine: libcurl through
pipeline.adapters.transport), so `pingtree bench` can print our figures as ratios to it. Run as
``python -m pipeline.devtools.benchfloor``; prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from pipeline.adapters import transport
from pipeline.devtools.bench.measure import pct
from pipeline.devtools.mockbuyers import mock_secret
from pipeline.domain import samples
from pipeline.protocols import native as protocol
from pipeline.protocols import signing


class Floor:
    def __init__(self, base_url: str, buyer_ids: list[str], timeout_s: float):
        self.base, self.buyers, self.timeout_s = base_url.rstrip("/"), buyer_ids, timeout_s
        # Signed as pingtree signs, with each simulated buyer's own secret.
        self.secrets = {b: mock_secret(b) for b in buyer_ids}

    def _send(self, requests: list[transport.Request]) -> list[transport.Reply]:
        return transport.send_many(requests, allow_private=True)

    def ping(self, buyer_id: str, view: dict, deadline: datetime) -> transport.Request:
        pid = uuid.uuid4()
        raw = protocol.dumps(protocol.ping_body(view, ping_id=pid, cycle=1, bid_cents=2500,
                                                expires_at=deadline))
        msg_id = protocol.webhook_id(view["lead_id"], buyer_id, "ping")
        headers = {"Content-Type": "application/json",
                   **signing.sign_headers(self.secrets[buyer_id], msg_id, int(time.time()), raw)}
        return transport.Request(f"{self.base}/{buyer_id}/ping", raw, headers, self.timeout_s)

    @staticmethod
    def answer(reply: transport.Reply) -> protocol.Answer:
        if reply.failure or reply.status is None:
            return protocol.Answer("timeout", reason="timeout", latency_ms=reply.latency_ms)
        return protocol.read_ping_answer(reply.status, reply.body, 2500, reply.latency_ms)

    def lead(self, payload: dict) -> tuple[float, str | None]:
        """Fan out, pick the highest accepted bid, post the full lead; (seconds, winner)."""
        started = time.monotonic()
        lead_id = str(uuid.uuid4())
        deadline = datetime.now(UTC) + timedelta(seconds=2)
        contact = payload["contact"]
        view = {"lead_id": lead_id, "vertical": payload["vertical"], "score": 70,
                "geo": {"zip": contact["zip"], "city": contact["city"], "state": contact["state"]},
                "qualifiers": payload["qualifiers"]}
        answers = [self.answer(r) for r in self._send([self.ping(b, view, deadline) for b in self.buyers])]
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
        [reply] = self._send([transport.Request(f"{self.base}/{winner}/post", raw, headers, self.timeout_s)])
        ok = not reply.failure and reply.status is not None and 200 <= reply.status < 300
        return time.monotonic() - started, winner if ok else None


def run(base_url: str, buyer_ids: list[str], *, mode: str, leads: int, duration_s: float,
        concurrency: int, seed: int) -> dict:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    pool = [samples.make_lead(rng, "solar", now=now) for _ in range(200)]
    floor = Floor(base_url, buyer_ids, 2.0)
    for payload in pool[:5]:                        # warm the keep-alive connections
        floor.lead(payload)
    latencies: list[float] = []
    sold = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    if mode == "latency":
        for i in range(leads):
            seconds, winner = floor.lead(pool[i % len(pool)])
            latencies.append(seconds * 1000)
            sold += winner is not None
    else:
        stop_at = wall0 + duration_s
        counter = iter(range(10**9))
        lock = threading.Lock()

        def loop():                                 # one lead at a time per thread, as a worker's
            nonlocal sold
            while time.monotonic() < stop_at:
                with lock:
                    payload = pool[next(counter) % len(pool)]
                seconds, winner = floor.lead(payload)
                with lock:
                    latencies.append(seconds * 1000)
                    sold += winner is not None
        threads = [threading.Thread(target=loop) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
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
    result = run(args.base_url, args.buyers.split(","), mode=args.mode, leads=args.leads,
                 duration_s=args.duration, concurrency=args.concurrency, seed=args.seed)
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        result[key] = round(result[key], 2) if result[key] is not None else None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
