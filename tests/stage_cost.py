"""CPU per lead, stage by stage, with the stages run in this process (no Celery, no Redis):
what each stage body costs here and what it costs PostgreSQL, sequentially, one lead at a time,
against ten mock buyers (their own process) that all bid. Not a test (timings stay out of `make test`):

    PINGTREE_DATABASE_URL=postgresql://…/scratch .venv/bin/python -m tests.stage_cost [leads] [gap_ms]

``gap_ms`` (default 0): a pause between leads, as when leads come at a rate the box is idle
between (the bench's cost scenario: 20 a second). Every round trip then wakes a process whose
caches went cold, and a commit's flush costs the backend more (here: 2.35 ms of PostgreSQL a
lead back to back, 3.15 with 50 ms between leads).

The database named is dropped and migrated fresh. Figures per lead: this process's CPU in each
stage (the calling thread's; for ping and deliver, which send from other threads, the
process's), the CPU of this process's PostgreSQL backends and that of the server's own
processes (WAL writer, checkpointer, ...: shared with any other user of the server), read from
/proc: the server must run on this machine.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator

os.environ.setdefault("PINGTREE_ALLOW_PRIVATE_BUYERS", "1")
os.environ.setdefault("PINGTREE_SUPPRESSION_KEY", "stage-cost-key-not-secret")

from config import settings as config_settings  # noqa: E402

config_settings.settings = config_settings.load()

from pipeline import submit_lead  # noqa: E402
from pipeline.adapters import db  # noqa: E402
from pipeline.devtools.mockbuyers import MockBuyersProcess  # noqa: E402
from pipeline.service import deliver, intake, lifecycle  # noqa: E402
from tests.helpers import load_tree, make_lead  # noqa: E402

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 1, "duplicate_window_h": 24, "stuck_after_s": 30}
STAGES = ("intake", "validate", "score", "ping", "deliver")
TICK = os.sysconf("SC_CLK_TCK")
# The server's own processes: the WAL writer flushes what a commit that did not wait left behind.
SERVER = "SELECT pid FROM pg_stat_activity WHERE backend_type NOT IN ('client backend', 'walsender')"


def backend_cpu_s(query: str = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                  ) -> float:
    with db.transaction() as cur:
        cur.execute(query)
        pids = [r["pid"] for r in cur.fetchall()]
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def wal_lsn() -> int:
    """The server's WAL insert position, in bytes."""
    with db.transaction() as cur:
        cur.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS at")
        return int(cur.fetchone()["at"])


def lsn(at: int) -> str:
    return f"{at >> 32:X}/{at & 0xFFFFFFFF:X}"


def one_lead(seed: int, cpu: dict, wall: dict) -> None:
    def timed(stage, work):
        t, p, w = time.thread_time(), time.process_time(), time.perf_counter()
        out = work()
        # The ping stage pings from other threads: its CPU is the process's; the others the thread's.
        cpu[stage] += (time.process_time() - p) if stage in ("ping", "deliver") else (time.thread_time() - t)
        wall[stage] += time.perf_counter() - w
        return out
    payload = make_lead("solar", seed=seed)      # the form's lead: made before the intake's clock
    lead_id = timed("intake", lambda: submit_lead(payload))
    [score] = timed("validate", lambda: lifecycle.validate_lead(lead_id))
    [ping] = timed("score", lambda: lifecycle.score_lead(*score.args))
    [post] = timed("ping", lambda: lifecycle.ping_shard(*ping.args))
    timed("deliver", lambda: deliver.deliver_post(*post.args))


@contextlib.contextmanager
def ten_buyers() -> Iterator[MockBuyersProcess]:
    """The database named, dropped and migrated fresh, with a tree of ten mock buyers (their own
    process) that all bid, in one auction tier of one shard; no nudge is sent."""
    db.drop_database(config_settings.settings.database_url)
    db.migrate(config_settings.settings.database_url)
    intake.dispatch = lambda nudges: None
    lifecycle.settings = dataclasses.replace(lifecycle.settings, ping_shard_size=50)
    fleet = {"defaults": {"latency_ms": 0}, "buyers": [
        {"id": f"b{i}", "accept_rate": 1, "bid": 10.0 + i} for i in range(10)]}
    with MockBuyersProcess(fleet, seed=7) as buyers:
        load_tree(buyers.tree(tiers=[{"tier": 1, "mode": "auction"}], network=NETWORK))
        yield buyers


def main(leads: int, gap_ms: float = 0.0) -> None:
    with ten_buyers():
        cpu, wall = dict.fromkeys(STAGES, 0.0), dict.fromkeys(STAGES, 0.0)
        for seed in range(20):                       # warm: pools, caches, plans
            one_lead(10_000 + seed, dict(cpu), dict(wall))
        pg0, server0, wal0 = backend_cpu_s(), backend_cpu_s(SERVER), wal_lsn()
        for seed in range(leads):
            one_lead(seed, cpu, wall)
            time.sleep(gap_ms / 1000)
        wal1 = wal_lsn()
        time.sleep(0.2)
        pg, server = backend_cpu_s() - pg0, backend_cpu_s(SERVER) - server0
    print(f"{leads} leads, one at a time, {gap_ms:g} ms apart, 10 buyers;"
          f" load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':10} {'CPU ms/lead':>12} {'wall ms/lead':>13}")
    for s in STAGES:
        print(f"{s:10} {1000 * cpu[s] / leads:12.2f} {1000 * wall[s] / leads:13.2f}")
    print(f"{'total':10} {1000 * sum(cpu.values()) / leads:12.2f} {1000 * sum(wall.values()) / leads:13.2f}")
    print(f"PostgreSQL backends CPU ms/lead: {1000 * pg / leads:.2f}")
    print(f"PostgreSQL WAL bytes/lead: {(wal1 - wal0) / leads:.0f} ({lsn(wal0)} .. {lsn(wal1)}, for"
          " pg_waldump; the server's: whoever else writes meanwhile)")
    print(f"PostgreSQL server processes CPU ms/lead: {1000 * server / leads:.2f}"
          " (WAL writer, checkpointer, background writer: the server's, whoever else uses it)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
