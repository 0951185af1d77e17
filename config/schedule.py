"""The beat schedule: the held-lead cycle, the stuck-lead sweep, the overdue close, the prune.

Two beats may run (one may die): each job takes a lock and runs once per tick of its period
(pipeline/service/beat.py), so a second beat's copy does nothing.
"""
from config import queues

RERUN_EVERY_S = 5.0
SWEEP_EVERY_S = 10.0
CLOSE_EVERY_S = 0.25
PRUNE_EVERY_S = 300.0

# Entries expire before the next one is due, so a backlog never piles up copies. `scheduled`
# marks a beat's message: those run once per tick; one sent by hand always runs.
SCHEDULED = {"scheduled": True}
BEAT_SCHEDULE = {
    # The deadline close for auctions whose pings started late or never finished.
    "close-overdue-auctions": {
        "task": "pingtree.close_overdue", "schedule": CLOSE_EVERY_S, "kwargs": SCHEDULED,
        "options": {"queue": queues.AWARD, "expires": CLOSE_EVERY_S * 0.9}},
    "rerun-held-leads": {
        "task": "pingtree.rerun_held", "schedule": RERUN_EVERY_S, "kwargs": SCHEDULED,
        "options": {"queue": queues.RERUN, "expires": RERUN_EVERY_S * 0.9}},
    "sweep-stuck-leads": {
        "task": "pingtree.sweep_stuck", "schedule": SWEEP_EVERY_S, "kwargs": SCHEDULED,
        "options": {"queue": queues.RERUN, "expires": SWEEP_EVERY_S * 0.9}},
    # Retention: a short, budgeted prune often, rather than a long one that holds the queue.
    "prune-history": {
        "task": "pingtree.prune_history", "schedule": PRUNE_EVERY_S, "kwargs": SCHEDULED,
        "options": {"queue": queues.RERUN, "expires": PRUNE_EVERY_S * 0.9}},
}


def job_of(task: str) -> tuple[str, float]:
    """The beat entry (its name and period in seconds) that runs ``task``."""
    for name, entry in BEAT_SCHEDULE.items():
        if entry["task"] == task:
            return name, float(entry["schedule"])
    raise KeyError(f"{task} is not a beat job")
