"""Per-task run counts and durations, kept in one Redis hash that every worker process adds to.

Fed from Celery's task signals (tasks/signals.py), so they hold with task events off, and read
at scrape by /metrics: correct across any number of worker processes and machines.
"""
from __future__ import annotations

import bisect
import logging
import os
import threading

import redis

from config.settings import settings

KEY = "pingtree:metrics:tasks"
# Upper bounds (seconds) of the task duration histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

log = logging.getLogger("pingtree.metrics")
_clients: dict[int, redis.Redis] = {}
_lock = threading.Lock()


def _client() -> redis.Redis:
    pid = os.getpid()        # a forked child opens its own connections
    if pid not in _clients:
        with _lock:
            _clients.setdefault(pid, redis.Redis.from_url(settings.redis_url, socket_timeout=2))
    return _clients[pid]


def record(task: str, state: str, duration_s: float) -> None:
    """One round trip: the run's count, its duration's bucket and the sum. Never raises."""
    slot = bisect.bisect_left(BUCKETS, duration_s)
    bucket = str(BUCKETS[slot]) if slot < len(BUCKETS) else "+Inf"
    try:
        pipe = _client().pipeline(transaction=False)
        pipe.hincrby(KEY, f"runs|{task}|{state}", 1)
        pipe.hincrby(KEY, f"le|{task}|{bucket}", 1)
        pipe.hincrbyfloat(KEY, f"sum|{task}", duration_s)
        pipe.execute()
    except redis.RedisError as exc:   # a figure lost is better than a task failed
        log.debug("task figures not recorded: %s", type(exc).__name__)


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
