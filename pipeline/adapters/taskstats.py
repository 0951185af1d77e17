"""Per-task run counts and durations, kept in one Redis hash that every worker process adds to.

Fed from Celery's task signals (tasks/signals.py), so they hold with task events off, and read
at scrape by /metrics: correct across any number of worker processes and machines. A process
adds its figures up in memory and writes them at most once every ``FLUSH_EVERY_S`` (one
pipelined round trip for everything since the last write) instead of three commands per task
run; an idle process writes nothing. /metrics is then up to ``FLUSH_EVERY_S`` behind, and a
process killed outright (SIGKILL, OOM) loses at most that much of its figures; a worker that
stops (warm shutdown, exit) writes what it holds first.
"""
from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time

import redis

from config.settings import settings

KEY = "pingtree:metrics:tasks"
# Upper bounds (seconds) of the task duration histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FLUSH_EVERY_S = 1.0

log = logging.getLogger("pingtree.metrics")


class Figures:
    """One process' figures not yet in Redis, and the thread that writes them."""

    def __init__(self, every_s: float = FLUSH_EVERY_S, client=None):
        self.every_s = every_s
        self._client = client
        self.pending: dict[str, float] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        return self._client

    def add(self, task: str, state: str, duration_s: float) -> None:
        slot = bisect.bisect_left(BUCKETS, duration_s)
        bucket = str(BUCKETS[slot]) if slot < len(BUCKETS) else "+Inf"
        with self.lock:
            for field, n in ((f"runs|{task}|{state}", 1), (f"le|{task}|{bucket}", 1),
                             (f"sum|{task}", duration_s)):
                self.pending[field] = self.pending.get(field, 0) + n
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="taskstats", daemon=True)
                self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()          # idle: asleep until a task ran
            self.wake.clear()
            time.sleep(self.every_s)  # everything recorded meanwhile goes in this write
            self.flush()

    def flush(self) -> None:
        """Write what this process holds in one round trip. Never raises: on a Redis error the
        figures stay held for the next write (a figure late is better than a task failed)."""
        with self.lock:
            taken, self.pending = self.pending, {}
        if not taken:
            return
        try:
            pipe = self.client().pipeline(transaction=False)
            for field, n in taken.items():
                if field.startswith("sum|"):
                    pipe.hincrbyfloat(KEY, field, n)
                else:
                    pipe.hincrby(KEY, field, int(n))
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("task figures not written yet: %s", type(exc).__name__)
            with self.lock:
                for field, n in taken.items():
                    self.pending[field] = self.pending.get(field, 0) + n
            self.wake.set()


_figures = Figures()


def _forked() -> None:
    # A forked child starts empty (its parent writes what it held) and opens its own connection.
    global _figures
    _figures = Figures()


os.register_at_fork(after_in_child=_forked)
atexit.register(lambda: _figures.flush())


def record(task: str, state: str, duration_s: float) -> None:
    """Count one run: its state, its duration's bucket and the sum (written within FLUSH_EVERY_S)."""
    _figures.add(task, state, duration_s)


def flush() -> None:
    """Write this process' figures now (a worker stopping)."""
    _figures.flush()


def read(client: redis.Redis) -> dict:
    """{"runs": {(task, state): n}, "buckets": {task: [(le, cumulative)]}, "sums": {task: s}}."""
    raw = {k.decode(): v.decode() for k, v in client.hgetall(KEY).items()}
    runs, sums, counts = {}, {}, {}
    for field, value in raw.items():
        kind, _, rest = field.partition("|")
        if kind == "runs":
            task, _, state = rest.rpartition("|")
            runs[(task, state)] = int(value)
        elif kind == "sum":
            sums[rest] = float(value)
        elif kind == "le":
            task, _, le = rest.rpartition("|")
            counts.setdefault(task, {})[le] = int(value)
    buckets = {}
    for task, by_le in counts.items():
        total, rows = 0, []
        for le in [*map(str, BUCKETS), "+Inf"]:
            total += by_le.get(le, 0)
            rows.append((le, total))
        buckets[task] = rows
    return {"runs": runs, "buckets": buckets, "sums": sums}
