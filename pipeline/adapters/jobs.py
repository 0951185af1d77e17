"""The beat_jobs table: one lock and one row per beat job, so two beats run each tick once."""
from __future__ import annotations

from datetime import datetime

# The advisory-lock class of beat jobs (the migrator uses the single-key lock 727274).
LOCK_CLASS = 7274


def try_lock(cur, job: str) -> bool:
    """The job's transaction-scoped lock; False while another copy of the job holds it."""
    cur.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)) AS got", (LOCK_CLASS, job))
    return cur.fetchone()["got"]


def last_tick(cur, job: str) -> int:
    cur.execute("INSERT INTO beat_jobs (job) VALUES (%s) ON CONFLICT (job) DO NOTHING", (job,))
    cur.execute("SELECT tick FROM beat_jobs WHERE job=%s", (job,))
    return cur.fetchone()["tick"]


def register(cur, names: list[str]) -> None:
    cur.execute("INSERT INTO beat_jobs (job) SELECT unnest(%s::text[]) ON CONFLICT (job) DO NOTHING",
                (names,))


def record_run(cur, job: str, tick: int, at: datetime, duration_ms: int) -> None:
    cur.execute("UPDATE beat_jobs SET tick=%s, runs=runs+1, last_run_at=%s, duration_ms=%s"
                " WHERE job=%s", (tick, at, duration_ms, job))


def record_error(cur, job: str, at: datetime, error: str) -> None:
    cur.execute("UPDATE beat_jobs SET last_error_at=%s, last_error=%s WHERE job=%s", (at, error, job))


def all_jobs(cur) -> dict[str, dict]:
    cur.execute("SELECT * FROM beat_jobs")
    return {r["job"]: dict(r) for r in cur.fetchall()}
