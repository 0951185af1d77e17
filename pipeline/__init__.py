"""pingtree: real-time, exclusive lead distribution. Form backends call ``submit_lead``."""
from pipeline.domain.leads import InvalidLead


def submit_lead(payload: dict, idempotency_key: str | None = None) -> str:
    """Store a lead and start its auction; returns the lead id (see pipeline.service.intake)."""
    from pipeline.service.intake import submit_lead as submit  # lazy: keeps `import pipeline` light

    return submit(payload, idempotency_key)


__all__ = ["submit_lead", "InvalidLead"]
