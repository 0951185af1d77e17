"""Beat jobs that may be sent twice (two beats) or late: each tick of a job's period runs once.

A job runs inside a transaction holding its PostgreSQL advisory lock: a copy that finds the
lock taken does nothing (another copy is running), and so does a beat's copy whose tick was
run already (the other beat's message for the same tick; a tick is floor(epoch / period)).
The lock dies with its connection, so a worker killed mid-job blocks nobody. The job's own
work commits in its own transactions.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from config import schedule
from config.settings import settings
from pipeline.adapters import db, jobs
from pipeline.service.nudges import Fanout, Nudge

log = logging.getLogger("pingtree.beat")

Nudges = list[Nudge | Fanout]


def run_job(task: str, work: Callable[[], Nudges], once_per_tick: bool = True) -> Nudges:
    """Run ``work`` for beat task ``task`` unless another copy runs it (or, for a beat's
    message, ran this tick already: an operator's message sent by hand always runs)."""
    job, period = schedule.job_of(task)
    failure: Exception | None = None
    nudges: Nudges = []
    with db.transaction() as cur:
        if not jobs.try_lock(cur, job):
            return []
        started = datetime.now(UTC)
        tick = int(started.timestamp() // period)
        if jobs.last_tick(cur, job) >= tick and once_per_tick:
            return []
        clock = time.monotonic()
        try:
            nudges = work()
        except Exception as exc:  # recorded for /healthz/beat, then raised to Celery
            failure = exc
            jobs.record_error(cur, job, started, type(exc).__name__)
        else:
            jobs.record_run(cur, job, tick, started, round((time.monotonic() - clock) * 1000))
    if failure is not None:
        raise failure
    return nudges


def register_jobs() -> None:
    """A beat came up: from now on, a job that never ran is late once it waited past its limit."""
    with db.transaction() as cur:
        jobs.register(cur, list(schedule.BEAT_SCHEDULE))


def late_after_s(period_s: float, slack_s: float) -> float:
    """How old a job's last run may be before the job counts as late."""
    return 2 * period_s + slack_s


def status(rows: dict[str, dict], now: datetime, slack_s: float | None = None) -> dict[str, dict]:
    """Each scheduled job's last run, its age and whether it is late: a job never run is late
    once it has waited past its limit since a beat registered it, or when no beat ever did."""
    slack_s = settings.beat_late_s if slack_s is None else slack_s
    out = {}
    for job, entry in schedule.BEAT_SCHEDULE.items():
        row = rows.get(job) or {}
        last, since = row.get("last_run_at"), row.get("last_run_at") or row.get("registered_at")
        age = (now - last).total_seconds() if last else None
        waited = (now - since).total_seconds() if since else None
        limit = late_after_s(float(entry["schedule"]), slack_s)
        out[job] = {"last_run_at": last.isoformat() if last else None,
                    "age_s": None if age is None else round(age, 3),
                    "late_after_s": limit, "late": waited is None or waited > limit,
                    "runs": row.get("runs", 0), "last_error": row.get("last_error")}
    return out


def current_status(slack_s: float | None = None) -> dict[str, dict]:
    with db.transaction() as cur:
        rows = jobs.all_jobs(cur)
    return status(rows, datetime.now(UTC), slack_s)
