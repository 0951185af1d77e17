"""`make demo`: the whole system on this machine with simulated buyers, then what happened."""
from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from config.settings import settings

ROOT = Path(__file__).resolve().parents[2]
DEMO_DB = settings.demo_database_url
DEMO_REDIS = settings.demo_redis_url
PROCESSES = ["api", "validate", "score", "ping", "award", "deliver", "rerun", "beat"]


def add_arguments(parser) -> None:
    parser.add_argument("--leads", type=int, default=300, help="how many leads to submit")
    parser.add_argument("--rate", type=float, default=40.0, help="leads per second offered")
    parser.add_argument("--fleet", default=str(ROOT / "config/examples/fleet.json"),
                        help="the simulated buyers (a mock-buyers fleet file; default the example fleet)")
    parser.add_argument("--flower", action="store_true", help="also run Flower on :5555")
    parser.add_argument("--keep", action="store_true", help="leave the demo running until Ctrl-C")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the generated leads and answers")


def main_from_args(args) -> int:
    from pipeline.devtools import embedded
    try:
        servers = embedded.choose(DEMO_DB, DEMO_REDIS)
    except embedded.Unavailable as exc:
        raise SystemExit(f"pingtree demo: {exc}") from exc
    print(servers.line("pingtree demo"), flush=True)
    try:
        _run(args, servers.database_url, servers.redis_url)
    finally:
        servers.stop()
    print("stopped everything the demo started")
    again = "with `.venv/bin/pingtree up --embedded` running, " if "postgres" in servers.embedded else ""
    print(f"look again: {again}PINGTREE_DATABASE_URL='{servers.database_url}' .venv/bin/pingtree report")
    return 0


def _run(args, db_url: str, redis_url: str) -> None:
    from pipeline.devtools.mockbuyers import free_port
    api_addr = f"127.0.0.1:{free_port()}"
    env = {"PINGTREE_DATABASE_URL": db_url, "PINGTREE_REDIS_URL": redis_url,
           "PINGTREE_ALLOW_PRIVATE_BUYERS": "1", "PINGTREE_DEV": "1", "PINGTREE_HTTP_ADDR": api_addr}
    os.environ.update(env)   # inherited by every process the demo starts
    import redis
    import requests

    from pipeline.adapters import db, store, views
    from pipeline.devtools.mockbuyers import MockBuyersProcess
    from pipeline.devtools.stack import Stack
    from pipeline.domain import samples
    from pipeline.domain.leads import VERTICALS
    from pipeline.protocols.registry import parse_tree

    print(f"API http://{api_addr}")
    db.drop_database(db_url)
    db.migrate(db_url)
    redis.Redis.from_url(redis_url).flushdb()
    fleet = json.loads(Path(args.fleet).read_text())
    # Short cycles so the held -> re-run -> unsold path shows within the demo.
    fleet["network"] = {**fleet.get("network", {}), "rerun_interval_s": 8, "max_cycles": 2,
                        "stuck_after_s": 20}
    names = PROCESSES + (["flower"] if args.flower else [])
    logs = ROOT / ".demo" / "logs"
    with MockBuyersProcess(fleet, seed=args.seed) as buyers, \
            Stack(names, env=env, log_dir=logs) as stack:
        tree = parse_tree(json.dumps(buyers.tree()), VERTICALS, allow_private=True)
        with db.transaction(db_url) as cur:
            store.load_tree(cur, tree)
        print(f"tree: {len(tree['tiers'])} tiers "
              f"({', '.join(t['name'] + ' ' + t['mode'] for t in tree['tiers'])}), "
              f"{len(tree['buyers'])} simulated buyers at {buyers.url}")
        _wait_ready(api_addr, stack)
        print(f"processes: {', '.join(names)} (logs in {logs})")
        sent, refused = _submit(api_addr, args, samples, requests)
        print(f"submitted {len(sent)} leads over HTTP ({refused} refused with 422 as intended)")
        _wait_terminal(sent, tree, db_url, db, stack)
        _summary(sent, db_url, db, views, buyers)
        if args.keep:
            print("still running; Ctrl-C stops everything")
            try:
                while not stack.dead():
                    time.sleep(1)
            except KeyboardInterrupt:
                pass


def _wait_ready(api_addr: str, stack) -> None:
    from pipeline.devtools.stack import wait_healthy
    wait_healthy(api_addr, stack, timeout_s=60, logs=".demo/logs")


def _submit(api_addr: str, args, samples, requests):
    rng = random.Random(args.seed)
    session = requests.Session()
    sent, refused = [], 0
    start = time.monotonic()
    for i in range(args.leads):
        lead = samples.make_lead(rng, now=datetime.now(UTC))
        if i % 50 == 7:       # a form backend bug: a lead without a phone
            lead["contact"].pop("phone")
        if i % 60 == 11 and sent:   # the same consumer twice: a duplicate
            lead = dict(sent[-1][2])
        answer = session.post(f"http://{api_addr}/v1/leads", json=lead, timeout=10)
        if answer.status_code == 202:
            sent.append((answer.json()["lead_id"], time.time(), lead))
        else:
            refused += 1
        # Pace the offered load.
        ahead = start + (i + 1) / args.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    return sent, refused


def _wait_terminal(sent, tree, db_url, db, stack) -> None:
    net = tree["network"]
    limit = net["rerun_interval_s"] * net["max_cycles"] + net["auction_timeout_ms"] / 1000 * 3 + 30
    ids = [s[0] for s in sent]
    print(f"waiting for every lead to reach sold / rejected / unsold (at most {limit:.0f} s)")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with db.transaction(db_url) as cur:
            cur.execute("SELECT status, count(*) AS n FROM leads WHERE id::text = ANY(%s)"
                        " GROUP BY status", (ids,))
            counts = {r["status"]: r["n"] for r in cur.fetchall()}
        open_ = sum(n for s, n in counts.items() if s not in ("sold", "rejected", "unsold"))
        print("  " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())), flush=True)
        if not open_:
            return
        time.sleep(3)
    print("  time is up: some leads are still open")


def _summary(sent, db_url, db, views, buyers) -> None:
    with db.transaction(db_url) as cur:
        report = views.report(cur)
        cur.execute("""
            SELECT l.id, r.at AS received, s.at AS sold FROM leads l
            JOIN lead_events r ON r.lead_id = l.id AND r.status = 'received'
            JOIN lead_events s ON s.lead_id = l.id AND s.status = 'sold'
            JOIN (SELECT lead_id FROM auctions GROUP BY lead_id HAVING max(cycle) = 1) a
              ON a.lead_id = l.id""")
        first_cycle = [(r["sold"] - r["received"]).total_seconds() * 1000 for r in cur.fetchall()]
        cur.execute("SELECT unnest(reject_reasons) AS reason, count(*) AS n FROM leads"
                    " WHERE status = 'rejected' GROUP BY 1 ORDER BY 2 DESC")
        reasons = {r["reason"]: r["n"] for r in cur.fetchall()}
    leads = report["leads"]
    print()
    print("=" * 78)
    print("what happened")
    print("-" * 78)
    for status in ("sold", "held", "unsold", "rejected"):
        print(f"  {status:9} {leads.get(status, 0):5}")
    if reasons:
        print("  rejected because: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    others = {k: v for k, v in leads.items() if k not in ("sold", "held", "unsold", "rejected")}
    if others:
        print("  still open: " + ", ".join(f"{k} {v}" for k, v in others.items()))
    print(f"  revenue   {report['revenue']:10.2f}")
    if first_cycle:
        from pipeline.devtools.bench import pct
        print(f"  received -> sold (first cycle): p50 {pct(first_cycle, 50):.0f} ms,"
              f" p95 {pct(first_cycle, 95):.0f} ms over {len(first_cycle)} leads")
    print("-" * 78)
    print(f"  {'buyer':12} {'pings':>6} {'accepts':>7} {'t/o':>4} {'err':>4} {'sold':>5}"
          f" {'post_rej':>8} {'revenue':>10} {'p50 ms':>7} {'p95 ms':>7}")
    for b in report["buyers"]:
        print(f"  {b['buyer_id']:12} {b['pings']:>6} {b['accepts']:>7} {b['timeouts']:>4}"
              f" {b['errors']:>4} {b['sold']:>5} {b['post_rejects']:>8} {b['revenue']:>10.2f}"
              f" {_ms(b['p50_ping_ms']):>7} {_ms(b['p95_ping_ms']):>7}")
    stats = buyers.stats()["total"]
    print("-" * 78)
    print(f"  buyers saw {stats.get('pings', 0)} pings, {stats.get('posts', 0)} posts;"
          f" personal data in pings: {stats.get('pii_violations', 0)};"
          f" bad signatures: {stats.get('bad_signatures', 0)}")
    posts = buyers.posts()
    per_lead: dict[str, int] = {}
    for post in posts:
        if post.get("accepted", True):
            per_lead[post["lead_id"]] = per_lead.get(post["lead_id"], 0) + 1
    print(f"  leads posted to more than one buyer that accepted: "
          f"{sum(1 for n in per_lead.values() if n > 1)} (exclusive: must be 0)")
    print("=" * 78)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"
