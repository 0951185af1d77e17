"""Do-not-contact entries: a keyed hash (HMAC-SHA256 with the server's key) of a phone or email.

A plain SHA-256 of a phone number is no protection: the ~10^7 numbers of an area code are
tried in seconds. Keyed with a secret that is not in the database, the list reveals nothing
to whoever reads the database alone.
"""
from __future__ import annotations

import hashlib
import hmac

from pipeline.domain.validation import normalise_email, normalise_phone


def keyed_hash(key: str, kind: str, value: str) -> str:
    """The entry for a normalised value (E.164 phone, normalised email) of ``kind``."""
    return hmac.new(key.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def entry(key: str, raw: str) -> tuple[str, str] | None:
    """(kind, keyed hash) for a phone or an email as a person types it; None if it is neither."""
    raw = raw.strip()
    if "@" in raw:
        email = normalise_email(raw)
        return ("email", keyed_hash(key, "email", email)) if email else None
    phone = normalise_phone(raw)
    return ("phone", keyed_hash(key, "phone", phone)) if phone else None


def contact_entries(key: str, phone_e164: str | None, email: str | None) -> tuple[str | None, str | None]:
    """The keyed hashes a lead's contact would be listed under."""
    return (keyed_hash(key, "phone", phone_e164) if phone_e164 else None,
            keyed_hash(key, "email", email) if email else None)
