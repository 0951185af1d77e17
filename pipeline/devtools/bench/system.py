"""The system under bench: database, private Redis, mock buyers, the Procfile's processes, leads in."""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests

from config import queues
from pipeline.adapters import db, store, taskstats
from pipeline.devtools.bench.measure import RedisServer, cpu_ms, cpu_wait_ms
from pipeline.devtools.embedded import program
from pipeline.devtools.mockbuyers import MockBuyersProcess, free_port, tree_for_fleet
from pipeline.devtools.stack import ROOT, Stack, procfile
from pipeline.domain import samples
from pipeline.domain.leads import VERTICALS
from pipeline.protocols.registry import parse_tree

SCENARIOS = ("latency", "throughput", "deadline", "scaling", "cost", "network")
BENCH_DB = "postgresql://postgres@127.0.0.1:5432/pingtree_bench"
MAX_BUYERS = 50
HANG = "hang-01"
NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 2,
           "rerun_interval_s": 300, "duplicate_window_h": 0, "stuck_after_s": 60}
# Where a lead's rows and bytes land, by table group (a table not named here counts as "other").
TABLE_GROUPS = {"leads": ("leads", "idempotency_keys"),
                "pings and auctions": ("pings", "auctions", "auction_shards"),
                "events": ("lead_events",), "post attempts": ("post_attempts",), "sales": ("sales",),
                "consents": ("consents",), "caps": ("cap_usage", "cap_reservations", "buyer_days")}
# The goals a run is checked against, at 10 buyers on a 2-core box with everything on it.
# Sustained leads/s: with task events on and Flower running, and with events off.
TARGETS = {"p50_ms": 25, "p99_ms": 50, "leads_per_s": {"events_on": 60, "events_off": 100},
           "cpu_ms_per_lead": 15, "postgres_cpu_ms_per_lead": 5, "flower_cpu_ms_per_lead": 4,
           "cpu_ms_per_extra_buyer": 0.5, "deadline_overrun_ms": 100}


API_THREADS = 16      # `pingtree serve`'s waitress threads (one process)


def pool_of(command: str) -> dict:
    """{"pool", "concurrency"} of a Procfile `celery worker` line (Celery's defaults: prefork, one
    child per core); `pingtree serve` is one process of API_THREADS threads."""
    words = shlex.split(command)
    if "worker" not in words:
        return {"pool": "threads", "concurrency": API_THREADS}
    pool, concurrency = "prefork", None
    for flag, value in zip(words, words[1:], strict=False):
        if flag in ("-P", "--pool"):
            pool = value
        elif flag in ("-c", "--concurrency"):
            concurrency = int(value)
    if pool == "solo":
        concurrency = 1
    return {"pool": pool, "concurrency": concurrency or 1}


def stage_of(process: str) -> str:
    """The stage a bench process serves: ping1, ping2 ... are all the ping stage."""
    return "ping" if process.startswith("ping") else process


def group_of(table: str) -> str:
    return next((g for g, names in TABLE_GROUPS.items() if table in names), "other")


def per_lead(s0: dict, s1: dict, done: int) -> dict:
    """What `done` leads cost between two snapshots, per lead."""
    redis_delta = {k: v - s0["redis"].get(k, 0) for k, v in s1["redis"].items()}
    redis_delta = {k: v for k, v in redis_delta.items() if v > 0}
    pg_cpu = sum(v - s0["pg_backends"].get(pid, 0) for pid, v in s1["pg_backends"].items())
    per = lambda x: round(x / done, 3)  # noqa: E731
    return {
        "cpu_ms_per_lead": per(s1["cpu_ms"] - s0["cpu_ms"]),
        "flower_cpu_ms_per_lead": per(s1["flower_cpu_ms"] - s0["flower_cpu_ms"]),
        "redis_server_cpu_ms_per_lead": per(s1["redis_cpu_ms"] - s0["redis_cpu_ms"])
        if s0["redis_cpu_ms"] is not None else None,
        "postgres_cpu_ms_per_lead": per(pg_cpu),
        "mock_buyers_cpu_ms_per_lead": per(s1["buyers_cpu_ms"] - s0["buyers_cpu_ms"]),
        "redis_commands_per_lead": per(sum(redis_delta.values())),
        "redis_commands_top": {k: per(v) for k, v in sorted(redis_delta.items(), key=lambda kv: -kv[1])[:8]},
        "task_messages_per_lead": per(redis_delta.get("lpush", 0)),
        "events_published_per_lead": per(redis_delta.get("publish", 0)),
        "sql_transactions_per_lead": per(s1["pg"]["xacts"] - s0["pg"]["xacts"]),
        "sql_rows_written_per_lead": per(s1["pg"]["tup_inserted"] + s1["pg"]["tup_updated"]
                                         - s0["pg"]["tup_inserted"] - s0["pg"]["tup_updated"]),
        **per_stage(s0, s1, done),
    }


def bytes_by_group(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    grown: dict[str, int] = {}
    for name, size in after.items():
        grown[group_of(name)] = grown.get(group_of(name), 0) + size - before.get(name, 0)
    return grown


def per_stage(s0: dict, s1: dict, done: int) -> dict:
    """CPU per lead of each process (one per queue, and the API's intake), the tasks' own time,
    and rows written and bytes stored per lead by table group, between two snapshots."""
    per = lambda x: round(x / done, 3)  # noqa: E731
    groups: dict[str, dict[str, float]] = {}
    for name, after in s1["tables"].items():
        before = s0["tables"].get(name, dict.fromkeys(after, 0))
        group = groups.setdefault(group_of(name), dict.fromkeys(
            ("inserted", "updated", "hot_updated", "deleted", "bytes"), 0))
        for key, field in (("inserted", "ins"), ("updated", "upd"), ("hot_updated", "hot"),
                           ("deleted", "del"), ("bytes", "bytes")):
            group[key] += after[field] - before[field]
    return {
        "stage_cpu_ms_per_lead": {k: per(v - s0["stages"].get(k, 0.0)) for k, v in s1["stages"].items()},
        "stage_cpu_wait_ms_per_lead": {k: per(v - s0["cpu_waits"].get(k, 0.0))
                                       for k, v in s1["cpu_waits"].items()},
        "task_ms_per_lead": {k: per(1000 * (v - s0["tasks"].get(k, 0.0)))
                             for k, v in sorted(s1["tasks"].items()) if v > s0["tasks"].get(k, 0.0)},
        "task_runs_per_lead": {k: per(v - s0["task_runs"].get(k, 0))
                               for k, v in sorted(s1["task_runs"].items()) if v > s0["task_runs"].get(k, 0)},
        "rows_per_lead": {g: {k: per(v) for k, v in fig.items() if k != "bytes"}
                          for g, fig in groups.items()},
        "bytes_per_lead": {g: per(fig["bytes"]) for g, fig in groups.items()},
    }


class System:
    def __init__(self, args) -> None:
        self.args = args
        self.smoke = args.smoke
        if args.capacity:      # what the capacity model needs, and nothing else
            args.scenarios, args.no_events_off = "latency,cost,network", True
            args.leads = args.leads or (5 if args.smoke else 100)
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
                              "smoke": self.smoke, "targets": TARGETS, "runs": {},
                              "pools": {stage_of(n): pool_of(c) for n, c in procfile().items()
                                        if n in ("api", *queues.ALL)}}
        self.stack: Stack | None = None
        self.rng = __import__("random").Random(4)
        self.submitted_at: dict[str, float] = {}
        self.fleet = self._fleet()
        self.via: tuple[str, str] | None = None

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
        # Through the delay proxies while the network scenario runs, else straight.
        db_url, redis_url = self.via or (self.db_url, self.redis_url)
        return {"PINGTREE_DATABASE_URL": db_url, "PINGTREE_REDIS_URL": redis_url,
                "PINGTREE_ALLOW_PRIVATE_BUYERS": "1", "PINGTREE_DEV": "1",
                "PINGTREE_HTTP_ADDR": f"127.0.0.1:{self.api_port}",
                "FLOWER_PORT": str(self.flower_port), "PINGTREE_LOG_LEVEL": "WARNING",
                "PINGTREE_TASK_EVENTS": "1" if events else "0",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    def prepare(self) -> None:
        if not self.redis_url:
            if program("redis-server"):
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
        names = ["api", *queues.ALL]
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
            # Table + indexes + TOAST, and the rows each table took, per table.
            cur.execute("SELECT relname AS name, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot,"
                        " n_tup_del AS del, pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables")
            tables = {r["name"]: {k: int(r[k]) for k in ("ins", "upd", "hot", "del", "bytes")}
                      for r in cur.fetchall()}
        procs = list(self.stack.procs.items())
        stages: dict[str, float] = {}
        waits: dict[str, float] = {}
        for name, proc in procs:
            if name != "flower":
                stages[stage_of(name)] = stages.get(stage_of(name), 0.0) + cpu_ms([proc.pid])
                waits[stage_of(name)] = waits.get(stage_of(name), 0.0) + cpu_wait_ms([proc.pid])
        tasks = taskstats.read(self.redis)
        runs: dict[str, int] = {}
        for (task, _state), n in tasks["runs"].items():
            runs[task] = runs.get(task, 0) + n
        return {"cpu_ms": cpu_ms(self.stack_pids()),
                "flower_cpu_ms": cpu_ms([p.pid for n, p in procs if n == "flower"]),
                "redis_cpu_ms": cpu_ms([self.redis_server.proc.pid]) if self.redis_server else None,
                "pg_backends": {pid: cpu_ms([pid]) for pid in backends},
                "buyers_cpu_ms": cpu_ms([self.buyers._popen.pid]),
                "stages": stages, "cpu_waits": waits, "tasks": tasks["sums"],
                "task_runs": runs,
                "tables": tables,
                "redis": {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()},
                "pg": pg}

    def table_bytes(self) -> dict[str, int]:
        with db.transaction(self.db_url) as cur:
            cur.execute("SELECT relname AS name, pg_total_relation_size(relid) AS bytes"
                        " FROM pg_stat_user_tables")
            return {r["name"]: int(r["bytes"]) for r in cur.fetchall()}

    def idle(self, seconds: float) -> dict:
        """CPU per second of each process with no lead in flight: what it costs to sit there."""
        t0, s0 = time.time(), self.snapshot()
        time.sleep(seconds)
        t1, s1 = time.time(), self.snapshot()
        rate = lambda a, b: round((b - a) / (t1 - t0), 2)  # noqa: E731
        return {"stages": {k: rate(s0["stages"].get(k, 0.0), v) for k, v in s1["stages"].items()},
                "flower": rate(s0["flower_cpu_ms"], s1["flower_cpu_ms"]),
                "redis_server": rate(s0["redis_cpu_ms"], s1["redis_cpu_ms"])
                if s0["redis_cpu_ms"] is not None else None,
                "postgres": rate(sum(s0["pg_backends"].get(p, 0.0) for p in s1["pg_backends"]),
                                 sum(s1["pg_backends"].values()))}

    def cost(self, marks: dict, lead_ids: list[str], posts: dict[str, dict]) -> dict:
        s0, s1 = marks["s0"], marks["s1"]
        t0, t1 = marks["t0"], marks["t1"]
        done = sum(1 for i in lead_ids if i in posts and t0 <= posts[i]["received_at"] <= t1)
        if not done:
            return {"leads_in_window": 0}
        return {"leads_in_window": done, "window_s": round(marks["t1"] - marks["t0"], 2),
                **per_lead(s0, s1, done)}

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

