"""Queue `rerun`: the beat's held-lead cycle and the stuck-lead sweep."""
from pipeline.service import lifecycle
from tasks.app import app
from tasks.dispatch import send


@app.task(name="pingtree.rerun_held")
def rerun_held() -> None:
    send(lifecycle.rerun_held())


@app.task(name="pingtree.sweep_stuck")
def sweep_stuck() -> None:
    send(lifecycle.sweep_stuck())
