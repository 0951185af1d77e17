"""What one core of this machine does for Redis and for PostgreSQL, measured, for the capacity model.

Redis: redis-benchmark against a private redis-server, and the commands it served per second of
that server's own CPU (so a busy, shared box still gives the figure for one core). PostgreSQL:
pgbench's simple-update transactions (``-N``) in the bench database, and the transactions and
rows per second of its backends' CPU. Either is None where its program is not installed.
"""
from __future__ import annotations

import subprocess
import time

from pipeline.adapters import db
from pipeline.devtools.bench.measure import RedisServer, cpu_ms
from pipeline.devtools.embedded import program

# The Redis commands a lead uses most that redis-benchmark knows (task messages, the late-ack
# bookkeeping, metric increments and hashes); PUBLISH and BRPOP it has no test for.
REDIS_TESTS = "set,get,incr,lpush,rpop,hset,zadd"


def redis_core(requests: int = 50_000, clients: int = 50) -> dict | None:
    """Commands per CPU-second of one redis-server (single-threaded: one core), one command per
    round trip from `clients` connections, as pingtree's processes send them."""
    tool = program("redis-benchmark")
    if tool is None:
        return None
    server = RedisServer()
    try:
        server.start()
        pid = server.proc.pid
        cpu0, t0 = cpu_ms([pid]), time.monotonic()
        subprocess.run([tool, "-h", "127.0.0.1", "-p", str(server.port), "-c", str(clients),
                        "-n", str(requests), "-t", REDIS_TESTS, "-q"],
                       check=True, capture_output=True, text=True, timeout=300)
        cpu_s, wall_s = (cpu_ms([pid]) - cpu0) / 1000, time.monotonic() - t0
    finally:
        server.stop()
    commands = requests * len(REDIS_TESTS.split(","))
    return {"tool": "redis-benchmark", "tests": REDIS_TESTS, "clients": clients, "commands": commands,
            "server_cpu_s": round(cpu_s, 2), "wall_s": round(wall_s, 2),
            "commands_per_s_wall": round(commands / wall_s),
            "commands_per_core_s": round(commands / cpu_s) if cpu_s > 0 else None}


def postgres_core(db_url: str, seconds: float = 6.0, clients: int = 4) -> dict | None:
    """Transactions and rows written per CPU-second of the backends running pgbench -N (three
    writes and a read per transaction, one commit each), sampled between 1 s in and 1 s
    before the end, from pg_stat_database and the backends' own CPU."""
    tool = program("pgbench")
    if tool is None:
        return None
    subprocess.run([tool, "-i", "-s", "1", "-q", db_url], check=True, capture_output=True, timeout=300)
    try:
        run = subprocess.Popen([tool, "-n", "-N", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
                                db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        s0, t0 = _pg_sample(db_url), time.monotonic()
        time.sleep(max(0.5, seconds - 2.0))
        s1, t1 = _pg_sample(db_url), time.monotonic()
        run.communicate(timeout=seconds + 60)     # its few lines of output fit the pipe
    finally:
        subprocess.run([tool, "-i", "-I", "d", db_url], capture_output=True, timeout=120)
    cpu_s = sum(v - s0["cpu"].get(pid, 0.0) for pid, v in s1["cpu"].items()) / 1000
    xacts, rows = s1["xacts"] - s0["xacts"], s1["rows"] - s0["rows"]
    if cpu_s <= 0 or xacts <= 0:
        return None
    return {"tool": "pgbench -N", "clients": clients, "window_s": round(t1 - t0, 2), "transactions": xacts,
            "rows_written": rows, "backend_cpu_s": round(cpu_s, 2),
            "transactions_per_s_wall": round(xacts / (t1 - t0)),
            "transactions_per_core_s": round(xacts / cpu_s), "rows_per_core_s": round(rows / cpu_s)}


def _pg_sample(db_url: str) -> dict:
    with db.transaction(db_url) as cur:
        cur.execute("SELECT xact_commit AS xacts, tup_inserted + tup_updated AS rows FROM pg_stat_database"
                    " WHERE datname = current_database()")
        row = cur.fetchone()
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'pgbench'")
        pids = [r["pid"] for r in cur.fetchall()]
    return {"xacts": int(row["xacts"]), "rows": int(row["rows"]), "cpu": {pid: cpu_ms([pid]) for pid in pids}}


def measure(db_url: str, smoke: bool = False) -> dict:
    return {"redis": redis_core(requests=5_000 if smoke else 50_000),
            "postgres": postgres_core(db_url, seconds=3.0 if smoke else 6.0)}
