"""Queue `score`: score a validated lead and open its first auction."""
from pipeline.service import lifecycle
from tasks.app import STAGE_RETRY, app
from tasks.dispatch import send


@app.task(name="pingtree.score_lead", **STAGE_RETRY)
def score_lead(lead_id: str) -> None:
    send(lifecycle.score_lead(lead_id))
