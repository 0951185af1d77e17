"""Queue `score`: score a validated lead and open its first auction."""
from pipeline.service import lifecycle
from tasks.app import app
from tasks.dispatch import send


@app.task(name="pingtree.score_lead")
def score_lead(lead_id: str) -> None:
    send(lifecycle.score_lead(lead_id))
