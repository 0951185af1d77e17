"""Queue `award`: the chord callback and the beat's deadline close try the one conditional close."""
from pipeline.service import beat, lifecycle
from tasks.app import STAGE_RETRY, app
from tasks.dispatch import send
from tasks.outage import housekeeping


@app.task(name="pingtree.award_auction", **STAGE_RETRY)
def award_auction(auction_id: str) -> None:
    send(lifecycle.award_auction(auction_id))


# Four times a second: without events, so Flower shows lead tasks, not this.
@app.task(name="pingtree.close_overdue", send_events=False)
def close_overdue(scheduled: bool = False) -> None:
    with housekeeping.watch():
        send(beat.run_job("pingtree.close_overdue", lifecycle.close_overdue, once_per_tick=scheduled))
