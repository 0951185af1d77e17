"""Queue `deliver`: post the full lead to the awarded buyer, one post in flight per lead."""
from pipeline.service import deliver
from tasks.app import STAGE_RETRY, app
from tasks.dispatch import send


@app.task(name="pingtree.deliver_post", **STAGE_RETRY)
def deliver_post(lead_id: str) -> None:
    send(deliver.deliver_post(lead_id))
