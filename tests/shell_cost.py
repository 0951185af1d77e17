"""What Celery's worker spends around a task (its "shell"): a worker of the pingtree app (its
consumer, event batching, transport) runs no-op tasks of the stage tasks' kind (STAGE_RETRY, the
default route, sent as the stages send). Not a test (timings stay out of `make test`):

    PINGTREE_REDIS_URL=redis://127.0.0.1:6392/5 .venv/bin/python -m tests.shell_cost instructions
    PINGTREE_REDIS_URL=redis://127.0.0.1:6392/5 .venv/bin/python -m tests.shell_cost paced

`instructions`: the worker under callgrind runs N1 then N2 queued tasks and stops itself after
the last; (I(N2) - I(N1)) / (N2 - N1) is a task's instruction count, start-up excluded.
`paced`: the worker runs tasks sent at --rate a second (each finds it idle, its caches cold, as
the bench's cost scenario does); its CPU from /proc over them, less its idle CPU over as long.
The Redis db named is flushed. Both take --pool solo|threads, and --celery-strategy: the task
taken by Celery's default strategy instead of the flat path (tasks/flat.py), for comparison.
"""
from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time

from tasks import app
from tasks.app import STAGE_RETRY

NAME = "pingtree.shell_noop"
_done = itertools.count(1)
TICK = os.sysconf("SC_CLK_TCK")


# The worker's strategy for the task: pingtree's (tasks/flat.py), or Celery's default.
_CELERY_STRATEGY = "PINGTREE_SHELL_COST_CELERY_STRATEGY"
_strategy = ({"Strategy": "celery.worker.strategy:default"} if os.environ.get(_CELERY_STRATEGY) == "1"
             else {})


@app.task(name=NAME, **STAGE_RETRY, **_strategy)
def shell_noop(stop_after: int) -> None:
    """Nothing; the worker stops itself after its ``stop_after``-th task (0: never)."""
    if next(_done) == stop_after:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_argv(pool: str) -> list[str]:
    argv = [sys.executable, "-m", "celery", "-A", "tests.shell_cost", "worker", "-Q", "validate",
            "-n", f"shellcost-{os.getpid()}@%h", "-P", pool, "-l", "WARNING",
            "--without-gossip", "--without-mingle"]
    return argv + (["-c", "64"] if pool == "threads" else [])


def _send(count: int, stop_after: int, rate: float | None = None) -> None:
    from pipeline.service.nudges import Nudge
    from tasks.dispatch import send
    start = time.monotonic()
    for i in range(count):
        if rate:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        send([Nudge(NAME, (stop_after,))])


def _redis():
    import redis

    from config.settings import settings
    return redis.Redis.from_url(settings.redis_url)


def instructions(pool: str, counts: tuple[int, int]) -> float:
    totals = []
    for count in counts:
        _redis().flushdb()
        _send(count, count)
        with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
                            *_worker_argv(pool)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=1800)
            total = next(int(line.split()[1]) for line in open(out.name) if line.startswith("totals:"))
        left = _redis().llen("validate")
        assert left == 0, f"{left} tasks left in the queue"
        totals.append(total)
        print(f"  {pool} {count} tasks: {total / 1e6:.1f} M instructions", flush=True)
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _drained(client) -> bool:
    return client.llen("validate") == 0 and client.hlen("unacked") == 0


def paced(pool: str, rate: float, count: int) -> tuple[float, float]:
    client = _redis()
    client.flushdb()
    worker = subprocess.Popen(_worker_argv(pool), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _send(20, 0, rate)                          # warm up: the worker is up once they are taken
        while not _drained(client):
            time.sleep(0.1)
        time.sleep(1)
        seconds = count / rate
        idle0 = _cpu_s(worker.pid)
        time.sleep(seconds)
        idle = _cpu_s(worker.pid) - idle0
        busy0 = _cpu_s(worker.pid)
        _send(count, 0, rate)
        while not _drained(client):
            time.sleep(0.05)
        time.sleep(0.3)                             # the last event batch
        busy = _cpu_s(worker.pid) - busy0
        return (busy - idle * (seconds + 0.3) / seconds) / count * 1000, idle / seconds * 1000
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.shell_cost")
    parser.add_argument("mode", choices=("instructions", "paced"))
    parser.add_argument("--pool", choices=("solo", "threads"), default="solo")
    parser.add_argument("--counts", type=int, nargs=2, default=(100, 600))
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--celery-strategy", action="store_true")
    args = parser.parse_args()
    os.environ[_CELERY_STRATEGY] = "1" if args.celery_strategy else "0"     # the worker's
    if args.mode == "instructions":
        per_task = instructions(args.pool, tuple(args.counts))
        print(f"{args.pool}: {per_task / 1e6:.3f} M instructions a task")
    else:
        per_task, idle = paced(args.pool, args.rate, args.tasks)
        print(f"{args.pool}: {per_task:.3f} ms CPU a task at {args.rate:g}/s (idle {idle:.2f} ms/s)")


if __name__ == "__main__":
    main()
