"""Queue `deliver`: post the full lead to the awarded buyer."""
from pipeline.service import lifecycle
from tasks.app import app
from tasks.dispatch import send


@app.task(name="pingtree.deliver_post")
def deliver_post(lead_id: str) -> None:
    send(lifecycle.deliver_post(lead_id))
