"""The benchmark (`pingtree bench`, `make bench`): latency, throughput, deadline, scaling, cost.

Everything runs on this machine: a private redis-server (so INFO commandstats counts only us;
``--redis-url`` reuses another), a fresh ``pingtree_bench`` database, the mock buyer fleet, the
API and one worker per queue as ``deploy/Procfile`` runs them (plus Flower, as operators run
it). Leads go in through ``POST /v1/leads``; a lead's latency is submit -> post received by the
buyer (the mock server's ``received_at``). The floor (``pipeline.devtools.benchfloor``: one asyncio
process, no broker, no database) runs against the same buyers and every figure is also given
as a ratio to it. Results: a table per scenario on stdout, ``bench.json`` (and ``latency.png``
when matplotlib is installed) in ``--out``.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests

from pipeline.adapters import db, store
from pipeline.devtools.mockbuyers import MockBuyersProcess, free_port, tree_for_fleet
from pipeline.devtools.stack import ROOT, Stack, procfile
from pipeline.domain import samples
from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import parse_tree

SCENARIOS = ("latency", "throughput", "deadline", "scaling", "cost")
BENCH_DB = "postgresql://postgres@127.0.0.1:5432/pingtree_bench"
WORKERS = ("validate", "score", "ping", "award", "deliver", "rerun")
QUEUES = ("validate", "score", "ping", "award", "deliver", "rerun")
MAX_BUYERS = 50
HANG = "hang-01"
NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 2,
           "rerun_interval_s": 300, "duplicate_window_h": 0, "stuck_after_s": 60}
TARGETS = {"p50_ms": 30, "p99_ms": 100, "leads_per_s": 100, "cpu_ms_per_lead": 20,
           "cpu_ms_per_extra_buyer": 0.5, "deadline_overrun_ms": 100}


def add_arguments(parser) -> None:
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {','.join(SCENARIOS)} (default: all)")
    parser.add_argument("--smoke", action="store_true",
                        help="a handful of leads per scenario, a few seconds each (make test)")
    parser.add_argument("--out", default="bench-results", help="directory for bench.json, latency.png")
    parser.add_argument("--leads", type=int, help="leads in the one-at-a-time latency run (200)")
    parser.add_argument("--duration", type=float,
                        help="seconds each load is held in throughput, scaling and cost (8)")
    parser.add_argument("--database-url", default=BENCH_DB,
                        help="dropped and migrated fresh (default: %(default)s)")
    parser.add_argument("--redis-url",
                        help="reuse this Redis (flushed!) instead of starting a private redis-server")
    parser.add_argument("--no-flower", action="store_true", help="do not run Flower in the events-on run")
    parser.add_argument("--no-events-off", action="store_true",
                        help="skip the second run with Celery task events off")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record each worker during the 10-buyer throughput hold")


# ---- small measuring tools ----------------------------------------------------------------

def pct(values, q: float):
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 2)


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def cpu_ms(pids) -> float:
    """utime+stime (and reaped children's) of these processes and all their descendants."""
    kids, total, seen = _children(), 0, set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        except (OSError, IndexError, ValueError):
            pass
        todo += kids.get(pid, [])
    return total * 1000 / _ticks()


class RedisServer:
    """A private redis-server on a free port: nothing on disk, commandstats are ours alone."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pingtree-bench-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--maxclients", "2000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"redis://127.0.0.1:{self.port}/0"
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                return url
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the bench ------------------------------------------------------------------------------

class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.smoke = args.smoke
        self.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = set(self.scenarios) - set(SCENARIOS)
        if unknown:
            raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
        self.latency_leads = args.leads or (5 if self.smoke else 200)
        self.duration = args.duration or (1.5 if self.smoke else 8.0)
        self.out = Path(args.out)
        self.db_url = args.database_url
        self.redis_server: RedisServer | None = None
        self.redis_url = args.redis_url
        self.http = requests.Session()
        self.results: dict = {"machine": self._machine(), "started_at": datetime.now(UTC).isoformat(),
                              "smoke": self.smoke, "targets": TARGETS, "runs": {}}
        self.stack: Stack | None = None
        self.rng = __import__("random").Random(4)
        self.submitted_at: dict[str, float] = {}
        self.fleet = self._fleet()

    @staticmethod
    def _machine() -> dict:
        return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                "platform": sys.platform}

    def _fleet(self) -> dict:
        latency = {"dist": "uniform", "min_ms": 0, "max_ms": 5}
        buyers = [{"id": f"buyer-{i:02d}", "bid": [10.0 + i % 7, 40.0 + i % 5]}
                  for i in range(1, MAX_BUYERS + 1)]
        buyers.append({"id": HANG, "hang_rate": 1.0, "hang_s": 30.0, "bid": [50.0, 60.0]})
        return {"defaults": {"accept_rate": 1.0, "latency_ms": latency}, "buyers": buyers}

    # -- set-up ------------------------------------------------------------------------------

    def env(self, events: bool) -> dict[str, str]:
        return {"PINGTREE_DATABASE_URL": self.db_url, "PINGTREE_REDIS_URL": self.redis_url,
                "PINGTREE_ALLOW_PRIVATE_BUYERS": "1", "PINGTREE_HTTP_ADDR": f"127.0.0.1:{self.api_port}",
                "FLOWER_PORT": str(self.flower_port), "PINGTREE_LOG_LEVEL": "WARNING",
                "PINGTREE_TASK_EVENTS": "1" if events else "0",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    def prepare(self) -> None:
        if not self.redis_url:
            if shutil.which("redis-server"):
                self.redis_server = RedisServer()
                self.redis_url = self.redis_server.start()
            else:
                self.redis_url = "redis://127.0.0.1:6379/13"
        self.redis = redis.Redis.from_url(self.redis_url)
        self.redis.flushdb()
        db.drop_database(self.db_url)
        db.migrate(self.db_url)
        self.api_port, self.flower_port = free_port(), free_port()
        self.buyers = MockBuyersProcess(self.fleet, seed=7).start()
        self.results["redis"] = {"url": self.redis_url, "private": self.redis_server is not None}

    def load_tree(self, buyer_ids: list[str]) -> None:
        fleet = {**self.fleet, "buyers": [b for b in self.fleet["buyers"] if b["id"] in buyer_ids]}
        doc = tree_for_fleet(fleet, self.buyers.url, network=NETWORK)
        tree = parse_tree(json.dumps(doc), VERTICALS, allow_private=True)
        with db.transaction(self.db_url) as cur:
            store.load_tree(cur, tree)

    def start_stack(self, *, events: bool, ping_workers: int = 1, flower: bool = True) -> None:
        self.stop_stack()
        entries = procfile()
        names = ["api", *WORKERS]
        overrides = {}
        if ping_workers > 1:
            names.remove("ping")
            for i in range(1, ping_workers + 1):
                names.append(f"ping{i}")
                overrides[f"ping{i}"] = entries["ping"].replace("-n ping@%h", f"-n ping{i}@%h")
        if flower:
            names.append("flower")
        log_dir = self.out / "logs"
        self.stack = Stack(names, env=self.env(events), log_dir=log_dir, overrides=overrides).start()
        self._wait_ready(len(names) - 1 - int(flower))

    def _wait_ready(self, workers: int) -> None:
        until = time.monotonic() + 60
        while time.monotonic() < until:
            if self.stack.dead():
                raise RuntimeError(f"{', '.join(self.stack.dead())} exited; see {self.out}/logs")
            try:
                brpop = sum(1 for c in self.redis.client_list() if c.get("cmd") == "brpop")
                healthy = self.http.get(f"{self.api}/healthz", timeout=1).status_code == 200
                if healthy and brpop >= workers:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the stack did not come up in 60 s; see {self.out}/logs")
        # A few leads through every stage: imports, pools and keep-alive connections warm.
        self.load_tree([f"buyer-{i:02d}" for i in range(1, 11)])
        for _ in range(3):
            self.one_lead()

    def stop_stack(self) -> None:
        if self.stack:
            self.stack.stop()
            self.stack = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def stack_pids(self, include_flower: bool = False) -> list[int]:
        return [p.pid for n, p in self.stack.procs.items() if include_flower or n != "flower"]

    # -- leads ---------------------------------------------------------------------------------

    def payload(self) -> bytes:
        lead = samples.make_lead(self.rng, now=datetime.now(UTC))
        return json.dumps(lead).encode()

    def submit(self, body: bytes) -> str:
        at = time.time()
        response = self.http.post(f"{self.api}/v1/leads", data=body, timeout=10,
                                  headers={"Content-Type": "application/json"})
        response.raise_for_status()
        lead_id = response.json()["lead_id"]
        self.submitted_at[lead_id] = at
        return lead_id

    def post_of(self, lead_id: str, timeout: float = 10.0) -> dict | None:
        # Polled every 10 ms: the buyer's own received_at is the measure, the poll only paces
        # the next lead, and faster polling would steal CPU from the pipeline on 2 cores.
        until = time.monotonic() + timeout
        time.sleep(0.01)
        while time.monotonic() < until:
            posts = self.buyers.posts(lead_id)
            if posts:
                return posts[0]
            time.sleep(0.01)
        return None

    def one_lead(self) -> tuple[str, float | None]:
        lead_id = self.submit(self.payload())
        post = self.post_of(lead_id)
        return lead_id, (post["received_at"] - self.submitted_at[lead_id]) * 1000 if post else None

    def posts_by_lead(self) -> dict[str, dict]:
        return {p["lead_id"]: p for p in self.buyers.posts()}

    def statuses(self, lead_ids: list[str]) -> dict[str, int]:
        with db.transaction(self.db_url) as cur:
            cur.execute("SELECT status, count(*) AS n FROM leads WHERE id = ANY(%s::uuid[]) GROUP BY 1",
                        (lead_ids,))
            return {r["status"]: r["n"] for r in cur.fetchall()}

    async def _offer(self, rate: float, seconds: float, concurrency: int = 64) -> list[str]:
        """Open-loop load: a lead every 1/rate s for `seconds` (bounded in-flight requests)."""
        import aiohttp
        count = max(1, int(rate * seconds))
        bodies = [self.payload() for _ in range(count)]
        ids: list[str] = []
        gate = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            async def one(body: bytes) -> None:
                async with gate:
                    at = time.time()
                    try:
                        async with http.post(f"{self.api}/v1/leads", data=body,
                                             headers={"Content-Type": "application/json"}) as r:
                            if r.status == 202:
                                lead_id = (await r.json())["lead_id"]
                                self.submitted_at[lead_id] = at
                                ids.append(lead_id)
                    except aiohttp.ClientError:
                        pass
            start = time.monotonic()
            tasks = []
            for i, body in enumerate(bodies):
                if time.monotonic() > start + seconds + 0.5:
                    break                   # the API cannot take the rate: stop on time anyway
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(body)))
            await asyncio.gather(*tasks)
        return ids

    def offer(self, rate: float, seconds: float, *, sample=None) -> tuple[list[str], dict]:
        """Run the load; `sample()` is called 1.5 s in and at the end of the offer (cost window)."""
        marks: dict = {}
        if sample is None:
            return asyncio.run(self._offer(rate, seconds)), marks

        async def with_marks():
            async def marker():
                await asyncio.sleep(min(1.5, seconds / 4))
                marks["t0"], marks["s0"] = time.time(), sample()
            task = asyncio.create_task(marker())
            ids = await self._offer(rate, seconds)
            await task
            marks["t1"], marks["s1"] = time.time(), sample()
            return ids
        return asyncio.run(with_marks()), marks

    def drain(self, lead_ids: list[str], timeout: float = 20.0) -> dict[str, int]:
        until = time.monotonic() + timeout
        while True:
            counts = self.statuses(lead_ids)
            done = sum(counts.get(s, 0) for s in store.TERMINAL)
            if done >= len(lead_ids) or time.monotonic() > until:
                return counts
            time.sleep(0.2)

    def settle(self, lead_ids: list[str], timeout: float = 30.0) -> None:
        """Wait until no lead is between received and a terminal status (twice, 0.3 s apart)."""
        until, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < until and quiet < 2:
            counts = self.statuses(lead_ids)
            busy = sum(n for s, n in counts.items() if s not in store.TERMINAL and s != "received")
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(0.3)

    def latencies(self, lead_ids: list[str], posts: dict[str, dict] | None = None) -> list[float]:
        posts = posts if posts is not None else self.posts_by_lead()
        return [(posts[i]["received_at"] - self.submitted_at[i]) * 1000 for i in lead_ids if i in posts]

    # -- cost snapshots ---------------------------------------------------------------------------

    def snapshot(self) -> dict:
        stats = self.redis.info("commandstats")
        with db.transaction(self.db_url) as cur:
            cur.execute("SELECT xact_commit + xact_rollback AS xacts, tup_inserted, tup_updated,"
                        " tup_fetched FROM pg_stat_database WHERE datname = current_database()")
            pg = dict(cur.fetchone())
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()")
            backends = [r["pid"] for r in cur.fetchall()]
        return {"cpu_ms": cpu_ms(self.stack_pids()),
                "flower_cpu_ms": cpu_ms([p.pid for n, p in self.stack.procs.items() if n == "flower"]),
                "redis_cpu_ms": cpu_ms([self.redis_server.proc.pid]) if self.redis_server else None,
                "pg_backends": {pid: cpu_ms([pid]) for pid in backends},
                "buyers_cpu_ms": cpu_ms([self.buyers._popen.pid]),
                "redis": {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()},
                "pg": pg}

    def cost(self, marks: dict, lead_ids: list[str], posts: dict[str, dict]) -> dict:
        s0, s1 = marks["s0"], marks["s1"]
        t0, t1 = marks["t0"], marks["t1"]
        done = sum(1 for i in lead_ids if i in posts and t0 <= posts[i]["received_at"] <= t1)
        if not done:
            return {"leads_in_window": 0}
        redis_delta = {k: v - s0["redis"].get(k, 0) for k, v in s1["redis"].items()}
        redis_delta = {k: v for k, v in redis_delta.items() if v > 0}
        pg_cpu = sum(v - s0["pg_backends"].get(pid, 0) for pid, v in s1["pg_backends"].items())
        per = lambda x: round(x / done, 3)  # noqa: E731
        return {
            "leads_in_window": done, "window_s": round(marks["t1"] - marks["t0"], 2),
            "cpu_ms_per_lead": per(s1["cpu_ms"] - s0["cpu_ms"]),
            "flower_cpu_ms_per_lead": per(s1["flower_cpu_ms"] - s0["flower_cpu_ms"]),
            "redis_server_cpu_ms_per_lead": per(s1["redis_cpu_ms"] - s0["redis_cpu_ms"])
            if s0["redis_cpu_ms"] is not None else None,
            "postgres_cpu_ms_per_lead": per(pg_cpu),
            "mock_buyers_cpu_ms_per_lead": per(s1["buyers_cpu_ms"] - s0["buyers_cpu_ms"]),
            "redis_commands_per_lead": per(sum(redis_delta.values())),
            "redis_commands_top": {k: per(v) for k, v in sorted(redis_delta.items(),
                                                                 key=lambda kv: -kv[1])[:8]},
            "task_messages_per_lead": per(redis_delta.get("lpush", 0)),
            "events_published_per_lead": per(redis_delta.get("publish", 0)),
            "sql_transactions_per_lead": per(s1["pg"]["xacts"] - s0["pg"]["xacts"]),
            "sql_rows_written_per_lead": per(s1["pg"]["tup_inserted"] + s1["pg"]["tup_updated"]
                                             - s0["pg"]["tup_inserted"] - s0["pg"]["tup_updated"]),
        }

    def tasks_executed(self) -> dict[str, int]:
        """Tasks run so far per name, summed over every worker (`celery inspect stats`)."""
        out = subprocess.run(
            [str(Path(sys.executable).parent / "celery"), "-A", "tasks", "inspect", "stats", "-j",
             "--timeout", "1"], env={**os.environ, **self.env(True)}, cwd=ROOT,
            capture_output=True, text=True, timeout=60)
        totals: dict[str, int] = {}
        try:
            start = out.stdout.index("{")
            for stats in json.loads(out.stdout[start:]).values():
                for name, n in stats.get("total", {}).items():
                    totals[name] = totals.get(name, 0) + n
        except ValueError:
            pass
        return totals

    # -- the floor --------------------------------------------------------------------------------

    def floor(self, buyer_count: int, mode: str, *, leads: int = 100, seconds: float = 3.0) -> dict:
        ids = ",".join(f"buyer-{i:02d}" for i in range(1, buyer_count + 1))
        out = subprocess.run(
            [sys.executable, "-m", "pipeline.devtools.benchfloor", "--base-url", self.buyers.url,
             "--buyers", ids,
             "--mode", mode, "--leads", str(leads), "--duration", str(seconds)],
            cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **self.env(True)})
        if out.returncode:
            raise RuntimeError(f"the floor failed: {out.stderr[-1000:]}")
        return json.loads(out.stdout)

    def run_floor(self) -> dict:
        n = 20 if self.smoke else 200
        secs = 1.0 if self.smoke else 3.0
        result = {"latency_10": self.floor(10, "latency", leads=n)}
        for count in ((10,) if self.smoke else (1, 10, 50)):
            result[f"throughput_{count}"] = self.floor(count, "throughput", seconds=secs)
        return result

    # -- scenarios -------------------------------------------------------------------------------

    def scenario_latency(self) -> dict:
        self.load_tree([f"buyer-{i:02d}" for i in range(1, 11)])
        ids, values = [], []
        for _ in range(self.latency_leads):
            lead_id, ms = self.one_lead()
            ids.append(lead_id)
            if ms is not None:
                values.append(ms)
        self.drain(ids, 10)
        with db.transaction(self.db_url) as cur:
            cur.execute("SELECT lead_id::text AS lead_id, status, extract(epoch FROM at) AS at"
                        " FROM lead_events WHERE lead_id = ANY(%s::uuid[]) ORDER BY id", (ids,))
            events: dict[str, dict[str, float]] = {}
            for r in cur.fetchall():
                events.setdefault(r["lead_id"], {}).setdefault(r["status"], float(r["at"]))
        posts = self.posts_by_lead()
        steps = [("intake", None, "received"), ("validate", "received", "validated"),
                 ("score", "validated", "scored"), ("open auction", "scored", "auctioning"),
                 ("ping + award", "auctioning", "delivering"), ("post", "delivering", "post"),
                 ("settle", "post", "sold")]
        stages = {}
        for name, a, b in steps:
            spans = []
            for lead_id in ids:
                ev = dict(events.get(lead_id, {}))
                if lead_id in posts:
                    ev["post"] = posts[lead_id]["received_at"]
                start = self.submitted_at[lead_id] if a is None else ev.get(a)
                if start is not None and ev.get(b) is not None:
                    spans.append((ev[b] - start) * 1000)
            stages[name] = {"p50_ms": pct(spans, 50), "mean_ms": round(statistics.fmean(spans), 2)
                            if spans else None, "p99_ms": pct(spans, 99)}
        counts = self.statuses(ids)
        return {"buyers": 10, "leads": len(ids), "measured": len(values), "sold": counts.get("sold", 0),
                "p50_ms": pct(values, 50), "p95_ms": pct(values, 95), "p99_ms": pct(values, 99),
                "max_ms": pct(values, 100), "stages": stages, "samples_ms": [round(v, 2) for v in values]}

    def hold(self, buyer_count: int, *, probe: bool = True, rate: float | None = None,
             profile: bool = False) -> dict:
        """Find the highest rate the pipeline keeps up with, then hold it and measure."""
        self.load_tree([f"buyer-{i:02d}" for i in range(1, buyer_count + 1)])
        result: dict = {"buyers": buyer_count}
        if probe:
            capacity, steps = self.ramp()
            result["probe"] = {"steps": steps, "capacity_per_s": capacity}
            rate = 0.8 * capacity      # a 3 s step can hide a slow build-up: hold below it
        profiler = self.start_profile(buyer_count) if profile else None
        ids, marks = self.offer(rate, self.duration, sample=self.snapshot)
        if profiler:
            self.stop_profile(profiler)
        counts = self.drain(ids, 15)
        posts = self.posts_by_lead()
        values = self.latencies(ids, posts)
        in_window = [i for i in ids if i in posts and marks["t0"] <= posts[i]["received_at"] <= marks["t1"]]
        window_s = marks["t1"] - marks["t0"]
        result.update({
            "offered_per_s": round(rate, 1), "submitted": len(ids), "sold": counts.get("sold", 0),
            "leads_per_s": round(len(in_window) / window_s, 1) if window_s > 0 else None,
            "p50_ms": pct(values, 50), "p99_ms": pct(values, 99),
            "cost": self.cost(marks, ids, posts)})
        return result

    def ramp(self) -> tuple[float, list[dict]]:
        """Offer rising rates for a few seconds each; the capacity is the last rate kept up with.

        Kept up with: every lead sold, the last one within a second of the offer's end, p50 under
        a second. An overload is no measure: past saturation auctions miss their deadlines and
        leads end held, so a burst far above capacity shows less than the pipeline can do.
        """
        rates = (5.0, 10.0) if self.smoke else (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 130.0)
        seconds = 1.0 if self.smoke else 3.0
        capacity, steps = rates[0], []
        for rate in rates:
            start = time.time()
            ids, _ = self.offer(rate, seconds)
            counts = self.drain(ids, 20)
            posts = self.posts_by_lead()
            finished = [posts[i]["received_at"] for i in ids if i in posts]
            lag = (max(finished) - (start + seconds)) if finished else None
            p50 = pct(self.latencies(ids, posts), 50)
            kept_up = (counts.get("sold", 0) == len(ids) > 0 and lag is not None and lag < 1.0
                       and p50 is not None and p50 < 1000)
            steps.append({"offered_per_s": rate, "sold": counts.get("sold", 0), "submitted": len(ids),
                          "finish_lag_s": None if lag is None else round(lag, 2), "p50_ms": p50,
                          "kept_up": kept_up})
            self.settle(ids, 20)
            if not kept_up:
                break
            capacity = rate
        return capacity, steps

    def start_profile(self, buyer_count: int):
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if not spy:
            print("  (py-spy not installed: no profile)")
            return None
        procs = []
        for name, proc in self.stack.procs.items():
            if name == "flower":
                continue
            out = self.out / f"profile-{name}-{buyer_count}b.txt"
            procs.append(subprocess.Popen(
                [spy, "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "100", "--gil",
                 "--duration", str(int(self.duration)), "--nonblocking", "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return procs

    def stop_profile(self, procs) -> None:
        for proc in procs:
            try:
                proc.wait(self.duration + 15)
            except subprocess.TimeoutExpired:
                proc.terminate()

    def scenario_throughput(self) -> dict:
        counts = (10,) if self.smoke else (1, 10, 50)
        return {str(n): self.hold(n, profile=self.args.profile and n == 10) for n in counts}

    def scenario_deadline(self) -> dict:
        ids = [f"buyer-{i:02d}" for i in range(1, 11)] + [HANG]
        self.load_tree(ids)
        rows = []
        for _ in range(2 if self.smoke else 3):
            lead_id = self.submit(self.payload())
            post = self.post_of(lead_id, timeout=15)
            with db.transaction(self.db_url) as cur:
                cur.execute("SELECT extract(epoch FROM deadline_at) AS deadline,"
                            " extract(epoch FROM started_at) AS started,"
                            " extract(epoch FROM closed_at) AS closed FROM auctions WHERE lead_id=%s"
                            " ORDER BY started_at LIMIT 1", (lead_id,))
                a = cur.fetchone()
                cur.execute("SELECT outcome, count(*) AS n FROM pings WHERE lead_id=%s GROUP BY 1",
                            (lead_id,))
                outcomes = {r["outcome"]: r["n"] for r in cur.fetchall()}
            deadline = float(a["deadline"])
            rows.append({
                "lead_id": lead_id, "auction_s": round(deadline - float(a["started"]), 3),
                "closed_after_deadline_ms": round((float(a["closed"]) - deadline) * 1000, 1)
                if a["closed"] is not None else None,
                "post_after_deadline_ms": round((post["received_at"] - deadline) * 1000, 1) if post else None,
                "submit_to_post_ms": round((post["received_at"] - self.submitted_at[lead_id]) * 1000, 1)
                if post else None, "ping_outcomes": outcomes})
        closes = [r["closed_after_deadline_ms"] for r in rows if r["closed_after_deadline_ms"] is not None]
        posts = [r["post_after_deadline_ms"] for r in rows if r["post_after_deadline_ms"] is not None]
        return {"auction_timeout_s": NETWORK["auction_timeout_s"], "hang_s": 30, "leads": rows,
                "max_close_after_deadline_ms": max(closes) if closes else None,
                "max_post_after_deadline_ms": max(posts) if posts else None}

    def scenario_cost(self) -> dict:
        # Below saturation at every size (measured capacity: ~35/s at 1-10 buyers, ~10/s at 50,
        # where the one-process mock buyer fleet is the limit): an overloaded pipeline piles up
        # queues and misses deadlines, and its cost per lead says nothing about a healthy one.
        rates = {10: 10.0} if self.smoke else {1: 20.0, 10: 20.0, 50: 6.0}
        out: dict = {"offered_per_s": rates}
        for n, rate in rates.items():
            before = self.tasks_executed() if n == 10 else None
            r = self.hold(n, probe=False, rate=rate)
            entry = {"buyers": n, "offered_per_s": rate, **r["cost"], "sold": r["sold"]}
            if before is not None:
                after = self.tasks_executed()
                leads = max(1, r["submitted"])      # every lead of the hold, all drained
                entry["tasks_per_lead"] = {k: round((after.get(k, 0) - before.get(k, 0)) / leads, 2)
                                           for k in sorted(after) if after.get(k, 0) > before.get(k, 0)}
                entry["tasks_per_lead_total"] = round(sum(entry["tasks_per_lead"].values()), 2)
            out[str(n)] = entry
        cpu = {int(k): v["cpu_ms_per_lead"] for k, v in out.items() if k.isdigit() and "cpu_ms_per_lead" in v}
        if len(cpu) >= 2:
            xs, ys = list(cpu), list(cpu.values())
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            covariance = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            slope = covariance / sum((x - mx) ** 2 for x in xs)
            out["cpu_ms_per_extra_buyer"] = round(slope, 4)
        return out

    def scenario_scaling(self, events: bool) -> dict:
        out = {}
        for n in ((1,) if self.smoke else (1, 2, 4)):
            self.start_stack(events=events, ping_workers=n, flower=not self.args.no_flower)
            out[str(n)] = self.hold(50)
        return out

    # -- the run ---------------------------------------------------------------------------------

    def run_config(self, label: str, events: bool, scenarios: list[str]) -> dict:
        flower = events and not self.args.no_flower
        print(f"\n== run: {label} (Celery task events {'on' if events else 'off'},"
              f" Flower {'running' if flower else 'not running'}) ==", flush=True)
        self.start_stack(events=events, flower=flower)
        run: dict = {"events": events, "flower": flower}
        for name in scenarios:
            if name == "scaling":
                continue
            t = time.monotonic()
            print(f"-- {name} ...", flush=True)
            run[name] = getattr(self, f"scenario_{name}")()
            print(f"   {time.monotonic() - t:.1f} s", flush=True)
        if "scaling" in scenarios:
            t = time.monotonic()
            print("-- scaling ...", flush=True)
            run["scaling"] = self.scenario_scaling(events)
            print(f"   {time.monotonic() - t:.1f} s", flush=True)
        self.stop_stack()
        return run

    def run(self) -> dict:
        started = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        self.prepare()
        try:
            print("-- floor (one asyncio process, no broker, no database) ...", flush=True)
            self.results["floor"] = self.run_floor()
            self.buyers.reset()
            self.results["runs"]["events_on"] = self.run_config("events on", True, self.scenarios)
            if not self.args.no_events_off:
                second = [s for s in self.scenarios if s in ("latency", "throughput", "cost")]
                if second:
                    saved = (self.latency_leads, self.duration)
                    if not self.smoke:
                        self.latency_leads = min(self.latency_leads, 100)
                    self.results["runs"]["events_off"] = self.run_off(second)
                    self.latency_leads, self.duration = saved
        finally:
            self.stop_stack()
            self.buyers.stop()
            if self.redis_server:
                self.redis_server.stop()
        self.results["elapsed_s"] = round(time.monotonic() - started, 1)
        self.results["buyer_fleet"] = {"buyers": MAX_BUYERS, "latency_ms": "uniform 0-5",
                                       "accept_rate": 1.0, "hanging_buyer": HANG}
        self.results["summary"] = summary(self.results)
        return self.results

    def run_off(self, scenarios: list[str]) -> dict:
        # Events off: only the 10-buyer points, to keep the whole run short.
        original = self.scenario_throughput, self.scenario_cost
        self.scenario_throughput = lambda: {"10": self.hold(10)}  # type: ignore[method-assign]

        def cost10():
            rate = 10.0 if self.smoke else 20.0
            r = self.hold(10, probe=False, rate=rate)
            return {"offered_per_s": rate, "10": {"buyers": 10, **r["cost"], "sold": r["sold"]}}
        self.scenario_cost = cost10  # type: ignore[method-assign]
        try:
            return self.run_config("events off", False, scenarios)
        finally:
            self.scenario_throughput, self.scenario_cost = original


# ---- reporting -------------------------------------------------------------------------------

def ratio(ours, floor):
    return round(ours / floor, 1) if ours is not None and floor else None


def summary(results: dict) -> list[dict]:
    """Each target against the measured figure (events on, Flower running; events off beside)."""
    rows = []
    floor = results.get("floor", {})
    for label, run in results["runs"].items():
        lat, thr, cost = run.get("latency", {}), run.get("throughput", {}), run.get("cost", {})
        dl = run.get("deadline", {})
        c10 = cost.get("10", {}) or (thr.get("10", {}) or {}).get("cost", {})
        checks = [
            ("p50 one at a time, 10 buyers (ms)", lat.get("p50_ms"), "<=", TARGETS["p50_ms"],
             floor.get("latency_10", {}).get("p50_ms")),
            ("p99 one at a time, 10 buyers (ms)", lat.get("p99_ms"), "<=", TARGETS["p99_ms"],
             floor.get("latency_10", {}).get("p99_ms")),
            ("sustained leads/s, 10 buyers", (thr.get("10") or {}).get("leads_per_s"), ">=",
             TARGETS["leads_per_s"], floor.get("throughput_10", {}).get("leads_per_s")),
            ("CPU ms per lead, 10 buyers", c10.get("cpu_ms_per_lead"), "<=", TARGETS["cpu_ms_per_lead"],
             floor.get("throughput_10", {}).get("cpu_ms_per_lead")),
            ("CPU ms per extra buyer", cost.get("cpu_ms_per_extra_buyer"), "<=",
             TARGETS["cpu_ms_per_extra_buyer"], None),
            ("hanging buyer: close after deadline (ms)", dl.get("max_close_after_deadline_ms"), "<=",
             TARGETS["deadline_overrun_ms"], None),
        ]
        for name, value, op, target, fl in checks:
            if value is None:
                continue
            ok = value <= target if op == "<=" else value >= target
            rows.append({"run": label, "metric": name, "target": f"{op} {target}", "measured": value,
                         "floor": fl, "x_floor": ratio(value, fl) if op == "<=" else ratio(fl, value),
                         "met": ok})
    return rows


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def report(results: dict) -> str:
    out = []
    floor = results.get("floor", {})
    if floor:
        out.append("\nFloor: one asyncio process, same buyers, no broker, no database")
        out.append(table(["run", "buyers", "leads", "leads/s", "p50 ms", "p99 ms", "CPU ms/lead"],
                         [[k, v["buyers"], v["leads"], v["leads_per_s"] if v["mode"] != "latency" else "",
                           v["p50_ms"], v["p99_ms"], v["cpu_ms_per_lead"]] for k, v in floor.items()]))
    f_lat = floor.get("latency_10", {})
    for label, run in results["runs"].items():
        out.append(f"\n##### {label} (Flower {'running' if run['flower'] else 'off'})")
        if "latency" in run:
            lat = run["latency"]
            out.append(f"\n1. latency, one lead at a time, 10 buyers ({lat['measured']} leads, "
                       f"{lat['sold']} sold): submit -> post received by the buyer")
            out.append(table(["", "p50 ms", "p95 ms", "p99 ms", "max ms"],
                             [["pingtree", lat["p50_ms"], lat["p95_ms"], lat["p99_ms"], lat["max_ms"]],
                              ["floor", f_lat.get("p50_ms"), f_lat.get("p95_ms"), f_lat.get("p99_ms"), ""],
                              ["x floor", ratio(lat["p50_ms"], f_lat.get("p50_ms")),
                               ratio(lat["p95_ms"], f_lat.get("p95_ms")),
                               ratio(lat["p99_ms"], f_lat.get("p99_ms")), ""]]))
            out.append("   where the time goes (from lead_events):")
            out.append(table(["stage", "p50 ms", "mean ms", "p99 ms"],
                             [[k, v["p50_ms"], v["mean_ms"], v["p99_ms"]] for k, v in lat["stages"].items()]))
        if "throughput" in run:
            out.append("\n2. throughput: offered just below saturation")
            rows = []
            for n, r in run["throughput"].items():
                fl = floor.get(f"throughput_{n}", {})
                rows.append([n, (r.get("probe") or {}).get("capacity_per_s"), r["offered_per_s"],
                             r["leads_per_s"], fl.get("leads_per_s"), ratio(fl.get("leads_per_s"),
                                                                            r["leads_per_s"]),
                             r["p50_ms"], r["p99_ms"], r["cost"].get("cpu_ms_per_lead")])
            out.append(table(["buyers", "ramp/s", "offered/s", "leads/s", "floor/s", "floor÷ours",
                              "p50 ms", "p99 ms", "CPU ms/lead"], rows))
        if "deadline" in run:
            d = run["deadline"]
            out.append(f"\n3. deadline: 10 buyers + one hanging {d['hang_s']} s, "
                       f"{d['auction_timeout_s']} s auction")
            out.append(table(["lead", "closed after deadline ms", "post after deadline ms",
                              "submit->post ms", "ping outcomes"],
                             [[r["lead_id"][:8], r["closed_after_deadline_ms"], r["post_after_deadline_ms"],
                               r["submit_to_post_ms"], r["ping_outcomes"]] for r in d["leads"]]))
        if "scaling" in run:
            out.append("\n4. scaling: ping worker processes at 50 buyers")
            out.append(table(["ping workers", "ramp/s", "leads/s", "p50 ms", "p99 ms", "CPU ms/lead"],
                             [[n, (r.get("probe") or {}).get("capacity_per_s"), r["leads_per_s"],
                               r["p50_ms"], r["p99_ms"], r["cost"].get("cpu_ms_per_lead")]
                              for n, r in run["scaling"].items()]))
        if "cost" in run:
            c = run["cost"]
            offered = c["offered_per_s"]
            offered = ", ".join(f"{r:g}/s at {n} buyers" for n, r in offered.items()) \
                if isinstance(offered, dict) else f"{offered:g}/s"
            out.append(f"\n5. cost per lead, offered {offered} (steady-state window)")
            keys = [("cpu_ms_per_lead", "CPU ms, pingtree (API + workers)"),
                    ("flower_cpu_ms_per_lead", "CPU ms, Flower"),
                    ("postgres_cpu_ms_per_lead", "CPU ms, PostgreSQL backends"),
                    ("redis_server_cpu_ms_per_lead", "CPU ms, redis-server"),
                    ("mock_buyers_cpu_ms_per_lead", "CPU ms, mock buyers (not ours)"),
                    ("tasks_per_lead_total", "Celery tasks run"),
                    ("task_messages_per_lead", "task messages (LPUSH)"),
                    ("events_published_per_lead", "events (PUBLISH)"),
                    ("redis_commands_per_lead", "Redis commands"),
                    ("sql_transactions_per_lead", "SQL transactions"),
                    ("sql_rows_written_per_lead", "SQL rows written")]
            ns = [n for n in c if n.isdigit()]
            rows = [[label_, *[c[n].get(k) for n in ns]] for k, label_ in keys]
            out.append(table(["per lead", *[f"{n} buyers" for n in ns]], rows))
            if "cpu_ms_per_extra_buyer" in c:
                out.append(f"   CPU per extra buyer: {c['cpu_ms_per_extra_buyer']} ms")
            for n in ns:
                if "tasks_per_lead" in c[n]:
                    out.append(f"   tasks per lead ({n} buyers): {c[n]['tasks_per_lead']}")
                    out.append(f"   top Redis commands per lead ({n} buyers): {c[n]['redis_commands_top']}")
    if results.get("summary"):
        out.append("\nTargets (2 cores, everything on one box)")
        out.append(table(["run", "metric", "target", "measured", "floor", "x floor", "met"],
                         [[r["run"], r["metric"], r["target"], r["measured"], r["floor"], r["x_floor"],
                           "yes" if r["met"] else "NO"] for r in results["summary"]]))
    return "\n".join(out)


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, run in results["runs"].items():
        samples_ms = (run.get("latency") or {}).get("samples_ms")
        if samples_ms:
            ax.hist(samples_ms, bins=50, alpha=0.6, label=f"pingtree ({label})")
    ax.set_xlabel("submit -> post received by the buyer (ms), 10 buyers, one at a time")
    ax.set_ylabel("leads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main_from_args(args) -> int:
    import signal
    # A TERM (e.g. from `timeout`) unwinds like Ctrl-C, so every started process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    bench = Bench(args)
    results = bench.run()
    out = Path(args.out)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    print(report(results))
    drew = plot(results, out / "latency.png")
    print(f"\nwrote {out / 'bench.json'}{' and ' + str(out / 'latency.png') if drew else ''}"
          f" in {results['elapsed_s']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="pingtree bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
