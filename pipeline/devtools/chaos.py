"""`pingtree chaos` / `make chaos`: a seeded fault run checked against the invariants.

A private PostgreSQL cluster and a private redis-server, the Procfile's processes (kept
alive as `make up` does), simulated buyers (latency, a capped buyer, one rejecting some
posts, one answering 503 then 200), and a seeded stream of leads over HTTP. Meanwhile, at
seeded times: SIGKILL each worker type, Redis killed and started again empty, PostgreSQL
restarted, crashed (an immediate stop: the commits that did not wait for the disk are lost
with it) and stopped for 4 s, beat stopped for 12 s, and every queued or in-flight broker
message pushed once more for 5 s. Then, from PostgreSQL, the buyers' own records and every
log: every 202 stored, every lead terminal, one sale per lead, no lead accepted by two
buyers, no post to a second buyer before the first definitively rejected, caps kept, no
personal data in logs or Redis, no process that exited on its own.
"""
from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ["api", "validate", "score", "ping", "award", "deliver", "rerun", "beat"]
WORKERS = ["validate", "score", "ping", "award", "deliver", "rerun"]
# The short run: one worker on every queue instead of one per queue (fewer processes to boot).
ONE_WORKER = ("celery -A tasks worker -Q validate,score,ping,award,deliver,rerun -n all@%h"
              " -P threads -c 24 -l WARNING --without-gossip --without-mingle")
QUEUES = ("validate", "score", "ping", "award", "deliver", "rerun")
TERMINAL = ("sold", "rejected", "unsold")
CAP = 15
FLEET = {
    "defaults": {"latency_ms": {"dist": "lognormal", "median_ms": 40, "sigma": 0.6, "max_ms": 1500}},
    "buyers": [
        {"id": "steady", "accept_rate": 0.7, "bid": [15.0, 30.0]},
        {"id": "slow", "accept_rate": 0.6, "bid": [20.0, 40.0],
         "latency_ms": {"dist": "uniform", "min_ms": 300, "max_ms": 1200}},
        {"id": "capped", "accept_rate": 0.9, "bid": [35.0, 45.0], "tree": {"caps": {"daily": CAP}}},
        {"id": "picky", "accept_rate": 0.8, "bid": [30.0, 50.0], "post_reject_rate": 0.4},
        {"id": "flaky", "accept_rate": 0.8, "bid": [25.0, 45.0], "post_error_rate": 0.5},
    ]}
NETWORK = {"score_floor": 0, "bid_floor": 1.0, "auction_timeout_s": 2, "max_cycles": 2,
           "rerun_interval_s": 3, "duplicate_window_h": 0, "stuck_after_s": 5}


def add_arguments(parser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same faults and leads")
    parser.add_argument("--leads", type=int, default=600, help="how many leads (default %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, help="leads per second")
    parser.add_argument("--smoke", action="store_true",
                        help="the short run of `make test`: 40 leads, one worker, fewer faults")
    parser.add_argument("--out", default=str(ROOT / "chaos-results"), help="where the results go")
    parser.add_argument("--drain-s", type=float, default=None, help="how long leads may take to end")
    parser.add_argument("--no-faults", action="store_true",
                        help="the same seeded stream without faults, to compare with")


def main_from_args(args) -> int:
    result = run(seed=args.seed, leads=40 if args.smoke else args.leads,
                 rate=8.0 if args.smoke else args.rate, smoke=args.smoke, out=Path(args.out),
                 drain_s=args.drain_s or (45.0 if args.smoke else 180.0), faults=not args.no_faults)
    print_table([result])
    return 0 if result["passed"] else 1


def faults_for(rng: random.Random, smoke: bool, span_s: float) -> list[tuple[float, str]]:
    """The seeded schedule: every fault once, in a seeded order, spread over the stream."""
    if smoke:
        names = ["kill:worker", "redis_restart", "duplicate_5s", "pg_crash"]
    else:
        names = [f"kill:{w}" for w in WORKERS] + ["redis_restart", "pg_restart", "pg_crash",
                                                  "pg_stop_4s", "beat_stop_12s", "duplicate_5s"]
    rng.shuffle(names)
    step = span_s * 0.8 / len(names)
    return [(span_s * 0.1 + i * step + rng.uniform(0, step * 0.3), n) for i, n in enumerate(names)]


def run(*, seed: int, leads: int, rate: float, smoke: bool, out: Path, drain_s: float,
        faults: bool = True) -> dict:
    from pipeline.devtools.mockbuyers import MockBuyersProcess, free_port
    from pipeline.devtools.servers import PostgresCluster, RedisServer
    from pipeline.devtools.stack import Stack
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / f"logs-{seed}"
    # Commits that wait for the disk outlive a crash of the server, as on a real one; the
    # others (validate, score, ping, award: db.transaction(durable=False)) may be lost to it.
    pg, broker = PostgresCluster(synchronous_commit=True).init(), RedisServer()
    broker.start()
    db_url, api_addr = pg.url("pingtree"), f"127.0.0.1:{free_port()}"
    env = {"PINGTREE_DATABASE_URL": db_url, "PINGTREE_REDIS_URL": broker.url,
           "PINGTREE_ALLOW_PRIVATE_BUYERS": "1", "PINGTREE_DEV": "1", "PINGTREE_HTTP_ADDR": api_addr,
           "PINGTREE_BEAT_FILE": str(out / f"beat-{seed}"), "PINGTREE_POST_TIMEOUT_S": "3",
           "PINGTREE_POST_BACKOFF_S": "0.3", "PINGTREE_TASK_EVENTS": "0", "PINGTREE_LOG_LEVEL": "INFO"}
    names = ["api", "worker", "beat"] if smoke else PROCESSES
    stack = Stack(names, env=env, log_dir=logs, overrides={"worker": ONE_WORKER} if smoke else None)
    try:
        with MockBuyersProcess(FLEET, seed=seed) as buyers:
            load(db_url, buyers)
            return drive(rng, stack, pg, broker, buyers, api_addr, db_url, logs, leads=leads,
                         rate=rate, smoke=smoke, drain_s=drain_s, seed=seed, out=out,
                         with_faults=faults)
    finally:
        stack.stop()
        broker.stop()
        pg.destroy()


def load(db_url: str, buyers) -> None:
    from pipeline.adapters import db, store
    from pipeline.domain.leads import VERTICALS
    from pipeline.protocols.registry import parse_tree
    db.migrate(db_url)
    tree = parse_tree(json.dumps(buyers.tree(network=NETWORK)), VERTICALS, allow_private=True)
    with db.transaction(db_url) as cur:
        store.load_tree(cur, tree)


class Faults:
    """Runs the schedule in a thread; remembers which exits it caused."""

    def __init__(self, stack, pg, broker, schedule, say):
        self.stack, self.pg, self.broker, self.schedule, self.say = stack, pg, broker, schedule, say
        self.expected: set[str] = set()      # processes we killed: their exit is no crash
        self.done: list[str] = []
        self.pii_hits: list[str] = []
        self.watch: list[str] = []           # personal values to look for in Redis

    def kill(self, name: str) -> None:
        import os
        import signal
        proc = self.stack.procs[name]
        self.expected.add(name)
        os.killpg(proc.pid, signal.SIGKILL)

    def run(self, started: float) -> None:
        for at, fault in self.schedule:
            time.sleep(max(0.0, started + at - time.monotonic()))
            self.say(f"  fault at {time.monotonic() - started:5.1f} s: {fault}")
            if fault.startswith("kill:"):
                self.kill(fault.split(":", 1)[1])
            elif fault == "redis_restart":
                self.scan_redis()
                self.broker.restart()
            elif fault == "pg_restart":
                self.pg.restart()
            elif fault == "pg_crash":
                self.pg.restart(mode="immediate")
            elif fault == "pg_stop_4s":
                self.pg.restart(down_s=4.0)
            elif fault == "beat_stop_12s":
                self.stack.held.add("beat")
                self.kill("beat")
                time.sleep(12)
                self.stack.held.discard("beat")
            elif fault == "duplicate_5s":
                self.duplicate(5.0)
            self.done.append(fault)

    def duplicate(self, seconds: float) -> None:
        """Push every queued or in-flight (unacked) message once more, for ``seconds``."""
        import redis
        client = redis.Redis.from_url(self.broker.url, socket_timeout=2)
        seen: set[bytes] = set()
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            try:
                for queue in QUEUES:
                    for raw in client.lrange(queue, 0, -1):
                        if raw not in seen:
                            seen.update({raw})
                            client.lpush(queue, raw)
                for tag, raw in client.hgetall("unacked").items():
                    if tag not in seen:
                        seen.add(tag)
                        message, _exchange, routing_key = json.loads(raw)
                        encoded = json.dumps(message).encode()
                        seen.add(encoded)
                        client.lpush(routing_key or "validate", encoded)
                self.scan_redis(client)
            except redis.RedisError:
                pass
            time.sleep(0.2)

    def scan_redis(self, client=None) -> None:
        """Personal data must never be in the broker: look at every value there is."""
        import redis
        client = client or redis.Redis.from_url(self.broker.url, socket_timeout=2)
        try:
            blob = b"".join(
                b"".join(client.lrange(k, 0, -1)) if client.type(k) == b"list"
                else b"".join(v for pair in client.hgetall(k).items() for v in pair)
                if client.type(k) == b"hash" else (client.get(k) or b"")
                if client.type(k) == b"string" else b""
                for k in client.scan_iter(count=1000)).decode(errors="replace")
        except redis.RedisError:
            return
        self.pii_hits += [f"redis:{v}" for v in self.watch if v in blob]


def drive(rng, stack, pg, broker, buyers, api_addr, db_url, logs, *, leads, rate, smoke,
          drain_s, seed, out, with_faults) -> dict:
    import requests

    from pipeline.devtools.stack import wait_healthy
    from pipeline.domain import samples
    say = print
    say(f"chaos seed {seed}: {leads} leads at {rate}/s, PostgreSQL :{pg.port}, Redis :{broker.port},"
        f" logs in {logs}")
    stack.start()
    wait_healthy(api_addr, stack, timeout_s=90, logs=str(logs))
    span = leads / rate
    schedule = faults_for(rng, smoke, span)       # drawn either way: the same lead stream
    faults = Faults(stack, pg, broker, schedule if with_faults else [], say)
    crashes: list[str] = []
    stopping = threading.Event()

    def on_exit(name: str, code) -> None:
        if name in faults.expected:
            faults.expected.discard(name)
        else:
            crashes.append(f"{name}:{code}")
    supervisor = threading.Thread(target=stack.supervise, args=(stopping,),
                                  kwargs={"say": lambda *_: None, "on_exit": on_exit,
                                          "max_backoff_s": 2.0}, daemon=True)
    supervisor.start()
    started = time.monotonic()
    fault_thread = threading.Thread(target=faults.run, args=(started,), daemon=True)
    fault_thread.start()
    session = requests.Session()
    accepted: dict[str, dict] = {}
    answers: dict[str, int] = {}
    for i in range(leads):
        lead = samples.make_lead(rng, now=datetime.now(UTC))
        faults.watch += [lead["contact"]["email"], lead["contact"]["phone"]]
        try:
            reply = session.post(f"http://{api_addr}/v1/leads", json=lead, timeout=10)
            code = str(reply.status_code)
            if reply.status_code == 202:
                accepted[reply.json()["lead_id"]] = lead
        except requests.RequestException:
            code = "no_answer"          # the API itself restarting: the caller retries later
        answers[code] = answers.get(code, 0) + 1
        ahead = started + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    fault_thread.join()
    stream_end = time.monotonic()
    say(f"  stream done: {answers}; draining")
    drained = wait_terminal(db_url, list(accepted), drain_s)
    drain = time.monotonic() - stream_end
    stopping.set()
    supervisor.join()
    faults.scan_redis()
    result = check(db_url, accepted, buyers, logs, faults)
    result.update(seed=seed, answers=answers, crashes=crashes,
                  drain_s=round(drain, 1) if drained else None, faults=faults.done)
    result["passed"] = passed(result)
    name = f"chaos-{seed}.json" if with_faults else f"chaos-{seed}-no-faults.json"
    (out / name).write_text(json.dumps(result, indent=2, default=str))
    return result


def wait_terminal(db_url: str, ids: list[str], limit_s: float) -> bool:
    from pipeline.adapters import db
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with db.transaction(db_url) as cur:
                cur.execute("SELECT count(*) AS n FROM leads WHERE id::text = ANY(%s)"
                            " AND status = ANY(%s)", (ids, list(TERMINAL)))
                if cur.fetchone()["n"] == len(ids):
                    return True
        except db.DatabaseDown:
            pass
        time.sleep(1)
    return False


def check(db_url: str, accepted: dict[str, dict], buyers, logs: Path, faults: Faults) -> dict:
    """The invariants, from PostgreSQL, the buyers' own records and every log."""
    from pipeline.adapters import db
    ids = list(accepted)
    with db.transaction(db_url) as cur:
        cur.execute("SELECT id::text, status, reject_reasons FROM leads WHERE id::text = ANY(%s)", (ids,))
        leads = {r["id"]: r for r in cur.fetchall()}
        cur.execute("SELECT lead_id::text, buyer_id FROM sales")
        sales = {r["lead_id"]: r["buyer_id"] for r in cur.fetchall()}
        cur.execute("SELECT lead_id::text, buyer_id, attempt, outcome, at, settled_at FROM post_attempts"
                    " ORDER BY lead_id, id")
        attempts = cur.fetchall()
        cur.execute("SELECT count(*) AS n FROM sales WHERE buyer_id='capped'"
                    " AND sold_at > now() - interval '1 day'")
        capped_sales = cur.fetchone()["n"]
        cur.execute("SELECT coalesce(max(leads), 0) AS n FROM cap_usage WHERE buyer_id='capped'")
        capped_usage = cur.fetchone()["n"]
        cur.execute("SELECT DISTINCT lead_id::text FROM lead_events WHERE status='late_acceptance'")
        raised = {r["lead_id"] for r in cur.fetchall()}
    stuck: dict[str, int] = {}
    unsold_reasons: dict[str, int] = {}
    for lead in leads.values():
        if lead["status"] not in TERMINAL:
            stuck[lead["status"]] = stuck.get(lead["status"], 0) + 1
        for reason in lead["reject_reasons"] if lead["status"] == "unsold" else []:
            unsold_reasons[reason] = unsold_reasons.get(reason, 0) + 1
    accepted_by: dict[str, set[str]] = {}
    for post in buyers.posts():
        if post["accepted"]:
            accepted_by.setdefault(post["lead_id"], set()).add(post["buyer_id"])
    double = sorted(lead for lead, who in accepted_by.items() if len(who) > 1)
    # An acceptance that is neither the sale nor raised to the operator was dropped.
    dropped = sorted(lead for lead, who in accepted_by.items()
                     if sales.get(lead) not in who and lead not in raised
                     and "post_unconfirmed" not in (leads.get(lead) or {}).get("reject_reasons", []))
    early = second_buyer_too_early(attempts)
    pii = list(faults.pii_hits) + scan_logs(logs, accepted)
    return {
        "accepted": len(accepted), "stored": len(leads), "terminal": len(leads) - sum(stuck.values()),
        "stuck": stuck, "sold": sum(1 for lead in leads.values() if lead["status"] == "sold"),
        "unsold_reasons": unsold_reasons, "double_accepted": double, "second_buyer_early": early,
        "dropped_accepts": dropped, "late_accepts_raised": len(raised),
        "cap_violations": max(0, capped_sales - CAP) + max(0, capped_usage - CAP),
        "pii_hits": pii[:20],
    }


def second_buyer_too_early(attempts: list[dict]) -> list[str]:
    """Leads posted to a next buyer before the previous one definitively rejected or gave up
    with answers only (every attempt a 5xx), or while its post was still open."""
    by_lead: dict[str, list[dict]] = {}
    for a in attempts:
        by_lead.setdefault(a["lead_id"], []).append(a)
    bad = []
    for lead_id, rows in by_lead.items():
        for before, after in zip(rows, rows[1:], strict=False):
            if before["buyer_id"] == after["buyer_id"]:
                continue
            mine = [r["outcome"] for r in rows if r["buyer_id"] == before["buyer_id"]
                    and r["at"] <= before["at"]]
            freed = mine[-1] == "rejected" or all(o == "retry" for o in mine)
            if not freed or before["settled_at"] is None or before["settled_at"] > after["at"]:
                bad.append(lead_id)
    return sorted(set(bad))


def scan_logs(logs: Path, accepted: dict[str, dict]) -> list[str]:
    text = "\n".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
    hits = []
    for lead in accepted.values():
        contact = lead["contact"]
        for value in (contact["email"], contact["phone"], contact.get("street")):
            if value and value in text:
                hits.append(f"log:{value[:3]}…")
    return hits


def passed(r: dict) -> bool:
    return (r["stored"] == r["accepted"] and not r["stuck"] and r["drain_s"] is not None
            and not r["double_accepted"] and not r["second_buyer_early"] and not r["dropped_accepts"]
            and not r["cap_violations"] and not r["pii_hits"] and not r["crashes"]
            and not any(k.startswith("stuck_") for k in r["unsold_reasons"]))


def print_table(results: list[dict]) -> None:
    head = (f"{'seed':>5} {'202':>5} {'503':>4} {'stored':>6} {'terminal':>8} {'stuck':>6} {'sold':>5}"
            f" {'unconf':>6} {'dbl_acc':>7} {'early2':>6} {'dropped':>7} {'late':>5} {'caps':>5}"
            f" {'pii':>4} {'crash':>5} {'drain_s':>7}  result")
    print(head)
    for r in results:
        print(f"{r['seed']:>5} {r['accepted']:>5} {r['answers'].get('503', 0):>4} {r['stored']:>6}"
              f" {r['terminal']:>8} {sum(r['stuck'].values()):>6} {r['sold']:>5}"
              f" {r['unsold_reasons'].get('post_unconfirmed', 0):>6} {len(r['double_accepted']):>7}"
              f" {len(r['second_buyer_early']):>6} {len(r['dropped_accepts']):>7}"
              f" {r['late_accepts_raised']:>5} {r['cap_violations']:>5} {len(r['pii_hits']):>4}"
              f" {len(r['crashes']):>5} {r['drain_s'] if r['drain_s'] is not None else '-':>7}"
              f"  {'PASS' if r['passed'] else 'FAIL'}")
        if r["stuck"] or r["crashes"] or any(k.startswith("stuck_") for k in r["unsold_reasons"]):
            print(f"      stuck {r['stuck']}  unsold {r['unsold_reasons']}  crashes {r['crashes']}")


if __name__ == "__main__":
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="pingtree chaos", description=__doc__.split("\n")[0])
    add_arguments(parser)
    sys.exit(main_from_args(parser.parse_args()))
