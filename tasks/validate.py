"""Queue `validate`: normalise and verify a received lead."""
from pipeline.service import lifecycle
from tasks.app import STAGE_RETRY, app
from tasks.dispatch import send


@app.task(name="pingtree.validate_lead", **STAGE_RETRY)
def validate_lead(lead_id: str) -> None:
    send(lifecycle.validate_lead(lead_id))
