"""pingtree: real-time, exclusive lead distribution. Form backends call ``submit_lead``."""
from pipeline.domain.leads import InvalidLead


def submit_lead(payload: dict, idempotency_key: str | None = None) -> str:
    """Store a lead and start its auction; returns the lead id (see pipeline.service.intake).

    The validate message goes out through the Celery app (unless this process installed its own
    sender with pipeline.service.nudges.install_sender)."""
    from pipeline.entrypoints import wiring  # lazy: keeps `import pipeline` light
    from pipeline.service.intake import submit_lead as submit

    wiring.install_nudge_sender(unless_installed=True)
    return submit(payload, idempotency_key)


__all__ = ["submit_lead", "InvalidLead"]
