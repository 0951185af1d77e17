"""The beat schedule: the held-lead cycle and the stuck-lead sweep (only one beat may run)."""
from config import queues

RERUN_EVERY_S = 5.0
SWEEP_EVERY_S = 10.0
CLOSE_EVERY_S = 0.25

# Entries expire before the next one is due, so a backlog never piles up copies.
BEAT_SCHEDULE = {
    # The deadline close for auctions whose pings started late or never finished.
    "close-overdue-auctions": {"task": "pingtree.close_overdue", "schedule": CLOSE_EVERY_S,
                               "options": {"queue": queues.AWARD, "expires": CLOSE_EVERY_S * 0.9}},
    "rerun-held-leads": {"task": "pingtree.rerun_held", "schedule": RERUN_EVERY_S,
                         "options": {"queue": queues.RERUN, "expires": RERUN_EVERY_S * 0.9}},
    "sweep-stuck-leads": {"task": "pingtree.sweep_stuck", "schedule": SWEEP_EVERY_S,
                          "options": {"queue": queues.RERUN, "expires": SWEEP_EVERY_S * 0.9}},
}
