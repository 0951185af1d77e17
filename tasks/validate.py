"""Queue `validate`: normalise and verify a received lead."""
from pipeline.service import lifecycle
from tasks.app import app
from tasks.dispatch import send


@app.task(name="pingtree.validate_lead")
def validate_lead(lead_id: str) -> None:
    send(lifecycle.validate_lead(lead_id))
