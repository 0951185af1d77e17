"""Intake: check a lead, store it `received` with its consent, then nudge the validate stage."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime

from config.settings import settings
from pipeline.adapters import db, store
from pipeline.domain.leads import InvalidLead, parse_lead
from pipeline.service.nudges import Nudge, dispatch

log = logging.getLogger("pingtree.intake")


class IdempotencyConflict(ValueError):
    """The idempotency key was used before with a different lead."""

    def __init__(self, lead_id: str):
        super().__init__(f"idempotency key already used for lead {lead_id} with another body")
        self.lead_id = lead_id


def payload_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def submit_lead(payload: dict, idempotency_key: str | None = None) -> str:
    """Store a lead and start its journey; returns the lead id.

    Raises InvalidLead (``.errors``, field by field) for bad input, IdempotencyConflict when
    the key was used for another body, and db.DatabaseDown when PostgreSQL does not answer.
    Nothing is stored for a refused lead.
    """
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise InvalidLead({"idempotency_key": ["Must be 1 to 255 characters."]})
    lead = parse_lead(payload, datetime.now(UTC), max_future_s=settings.consent_max_future_s,
                      max_age_s=settings.consent_max_age_s)
    digest = payload_hash(payload)
    new_id = uuid.uuid4()

    def insert():
        with db.transaction() as cur:
            return store.insert_lead(cur, new_id, lead, digest, idempotency_key)
    # A pooled connection that PostgreSQL dropped (a restart) is retried once on a fresh one,
    # so the caller gets a 503 only while the server is really down.
    lead_id, created, stored_digest = db.retrying(insert, attempts=2, wait_s=0.05)
    if not created:
        if stored_digest != digest:
            raise IdempotencyConflict(str(lead_id))
        return str(lead_id)
    # Committed first, then the nudge: if the send is lost, the sweep re-drives the lead. So a
    # broker outage here is no reason to refuse a lead that is already safely stored.
    try:
        dispatch([Nudge("pingtree.validate_lead", (str(lead_id),))])
    except Exception as exc:
        log.warning("lead %s stored, validate nudge not sent (%s): the sweep will re-drive it",
                    lead_id, type(exc).__name__)
    return str(lead_id)


__all__ = ["submit_lead", "InvalidLead", "IdempotencyConflict"]
