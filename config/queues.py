"""Queue names and task routes: one queue per pipeline stage."""
VALIDATE = "validate"
SCORE = "score"
PING = "ping"
AWARD = "award"
DELIVER = "deliver"
RERUN = "rerun"

ALL = (VALIDATE, SCORE, PING, AWARD, DELIVER, RERUN)

# Task names are strings so config never imports tasks.
ROUTES = {
    "pingtree.validate_lead": {"queue": VALIDATE},
    "pingtree.score_lead": {"queue": SCORE},
    "pingtree.ping_shard": {"queue": PING},
    "pingtree.walk_waterfall": {"queue": PING},
    "pingtree.award_auction": {"queue": AWARD},
    "pingtree.close_overdue": {"queue": AWARD},
    "pingtree.deliver_post": {"queue": DELIVER},
    "pingtree.rerun_held": {"queue": RERUN},
    "pingtree.sweep_stuck": {"queue": RERUN},
    "pingtree.prune_history": {"queue": RERUN},
}
