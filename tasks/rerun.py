"""Queue `rerun`: the beat's held-lead cycle, stuck-lead sweep and prune, each run once per tick."""
from pipeline.service import beat, lifecycle, retention
from tasks.app import app
from tasks.dispatch import send
from tasks.outage import housekeeping


@app.task(name="pingtree.rerun_held")
def rerun_held(scheduled: bool = False) -> None:
    with housekeeping.watch():
        send(beat.run_job("pingtree.rerun_held", lifecycle.rerun_held, once_per_tick=scheduled))


@app.task(name="pingtree.sweep_stuck")
def sweep_stuck(scheduled: bool = False) -> None:
    with housekeeping.watch():
        send(beat.run_job("pingtree.sweep_stuck", lifecycle.sweep_stuck, once_per_tick=scheduled))


@app.task(name="pingtree.prune_history")
def prune_history(scheduled: bool = False) -> None:
    send(beat.run_job("pingtree.prune_history", retention.prune_from_beat, once_per_tick=scheduled))
