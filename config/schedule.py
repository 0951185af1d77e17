"""The beat schedule: the held-lead cycle and the stuck-lead sweep (only one beat may run)."""
from config import queues

RERUN_EVERY_S = 5.0
SWEEP_EVERY_S = 10.0

# Entries expire before the next one is due, so a backlog never piles up copies.
BEAT_SCHEDULE = {
    "rerun-held-leads": {"task": "pingtree.rerun_held", "schedule": RERUN_EVERY_S,
                         "options": {"queue": queues.RERUN, "expires": RERUN_EVERY_S * 0.9}},
    "sweep-stuck-leads": {"task": "pingtree.sweep_stuck", "schedule": SWEEP_EVERY_S,
                          "options": {"queue": queues.RERUN, "expires": SWEEP_EVERY_S * 0.9}},
}
