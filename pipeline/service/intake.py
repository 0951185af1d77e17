"""Intake: check a lead, store it `received` with its consent, then nudge the validate stage."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime

from config.settings import settings
from pipeline.adapters import db, publishers, store
from pipeline.adapters.publishers import Publisher
from pipeline.domain.leads import InvalidLead, parse_lead
from pipeline.domain.validation import contact_hashes
from pipeline.service import nudges
from pipeline.service.nudges import Nudge, dispatch

log = logging.getLogger("pingtree.intake")


class IdempotencyConflict(ValueError):
    """The idempotency key was used before with a different lead."""

    def __init__(self, lead_id: str):
        super().__init__(f"idempotency key already used for lead {lead_id} with another body")
        self.lead_id = lead_id


def _merge(errors: dict, more: dict) -> dict:
    out = dict(errors)
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out.setdefault(key, value)
    return out


def payload_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def _as_publisher(payload: dict, publisher: Publisher) -> tuple[dict, dict]:
    """The payload with the key's publisher as its source, and the errors this makes.

    The publisher comes from the API key: a body may leave `source.publisher_id` out or repeat
    it, never name another publisher; the lead's vertical must be one the publisher may send.
    """
    errors: dict = {}
    source = payload.get("source")
    if source is None:
        source = {}
    if isinstance(source, dict):
        claimed = source.get("publisher_id")
        if claimed is not None and claimed != publisher.id:
            errors["source"] = {"publisher_id": [
                f"Set by your API key ({publisher.id}): leave it out or send {publisher.id!r}."]}
        payload = {**payload, "source": {**source, "publisher_id": publisher.id}}
    vertical = payload.get("vertical")
    if publisher.verticals and isinstance(vertical, str) and vertical not in publisher.verticals:
        errors["vertical"] = [f"Publisher {publisher.id} may send only: "
                              f"{', '.join(publisher.verticals)}."]
    return payload, errors


def submit_lead(payload: dict, idempotency_key: str | None = None, *,
                publisher: Publisher | None = None) -> str:
    """Store a lead and start its journey; returns the lead id.

    ``publisher``: the publisher whose API key sent the lead (its `source.publisher_id`);
    without it the body's `source.publisher_id` stands (Python callers and operator keys).
    The idempotency key is scoped to that publisher and expires after the configured window.
    Raises InvalidLead (``.errors``, field by field) for bad input, IdempotencyConflict when
    the key was used for another body, db.DatabaseDown when PostgreSQL does not answer, and
    NoSender in a process whose entry point installed no nudge sender. Nothing is stored for a
    refused lead.
    """
    nudges.sender()    # checked first: a lead stored here must get its validate message
    errors: dict = {}
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        errors["idempotency_key"] = ["Must be 1 to 255 characters."]
    if publisher is not None and isinstance(payload, dict):
        payload, errors_as_publisher = _as_publisher(payload, publisher)
        errors.update(errors_as_publisher)
    try:
        lead = parse_lead(payload, datetime.now(UTC), max_future_s=settings.consent_max_future_s,
                          max_age_s=settings.consent_max_age_s)
    except InvalidLead as exc:
        raise InvalidLead(_merge(exc.errors, errors)) from None
    if errors:
        raise InvalidLead(errors)
    digest = payload_hash(payload)
    new_id = uuid.uuid4()
    # The consent record names the phone and email it covers (as hashes, like the suppression list).
    phone_sha256, email_sha256 = contact_hashes(lead["contact"])
    lead["consent"] = {**lead["consent"], "phone_sha256": phone_sha256, "email_sha256": email_sha256}

    def insert():
        with db.transaction() as cur:
            return store.insert_lead(cur, new_id, lead, digest, idempotency_key,
                                     settings.idempotency_window_h)
    # A pooled connection that PostgreSQL dropped (a restart) is retried once on a fresh one,
    # so the caller gets a 503 only while the server is really down.
    try:
        lead_id, created, stored_digest = db.retrying(insert, attempts=2, wait_s=0.05)
    except db.DataRefused as exc:
        # The schema let through a value PostgreSQL cannot hold: bad input, not a server fault.
        raise InvalidLead({"_schema": [f"A value cannot be stored (SQLSTATE {exc.pgcode});"
                                       " nothing was stored."]}) from None
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


def purge_expired_keys(limit: int = 1000) -> int:
    """Idempotency keys past their window are free again; the sweep deletes them in batches."""
    with db.transaction() as cur:
        return publishers.purge_idempotency_keys(cur, settings.idempotency_window_h, limit)


__all__ = ["submit_lead", "InvalidLead", "IdempotencyConflict"]
