"""The beat schedule: the held-lead cycle, the stuck-lead sweep, the prune; the close's period.

Two beats may run (one may die): each job takes a lock and runs once per tick of its period
(pipeline/service/beat.py), so a second beat's copy does nothing. The overdue-auction close is
not a beat job: every award worker runs it every CLOSE_EVERY_S in a thread (tasks/award.py).
"""
from config import queues

RERUN_EVERY_S = 5.0
SWEEP_EVERY_S = 10.0
CLOSE_EVERY_S = 0.25
PRUNE_EVERY_S = 300.0


def _every(task: str, seconds: float, queue: str) -> dict:
    """A beat entry that expires before the next one is due (a backlog never piles up copies),
    marked `scheduled`: a beat's message runs once per tick; one sent by hand always runs."""
    return {"task": task, "schedule": seconds, "kwargs": {"scheduled": True},
            "options": {"queue": queue, "expires": seconds * 0.9}}


BEAT_SCHEDULE = {
    "rerun-held-leads": _every("pingtree.rerun_held", RERUN_EVERY_S, queues.RERUN),
    "sweep-stuck-leads": _every("pingtree.sweep_stuck", SWEEP_EVERY_S, queues.RERUN),
    # Retention: a short, budgeted prune often, rather than a long one that holds the queue.
    "prune-history": _every("pingtree.prune_history", PRUNE_EVERY_S, queues.RERUN),
}


def job_of(task: str) -> tuple[str, float]:
    """The beat entry (its name and period in seconds) that runs ``task``."""
    for name, entry in BEAT_SCHEDULE.items():
        if entry["task"] == task:
            return name, float(entry["schedule"])
    raise KeyError(f"{task} is not a beat job")
