"""The lead: intake schemas (envelope, contact, consent, one qualifier schema per vertical)."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import urlsplit

import phonenumbers
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from marshmallow import missing as _missing

from pipeline.domain import verticals
from pipeline.domain.fields import Clock, Strict, Text, clock, error_lines
from pipeline.domain.quickload import DECLINED, quick_loader
from pipeline.domain.validation import read_email, read_phone

VERTICALS: tuple[str, ...] = verticals.NAMES
QUALIFIER_SCHEMAS: dict[str, Schema] = {name: v.qualifiers for name, v in verticals.REGISTRY.items()}

# USPS codes of the 50 states, DC and the inhabited territories (all on the NANP).
STATES: frozenset[str] = frozenset((
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
    "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT",
    "VA", "WA", "WV", "WI", "WY", "DC", "PR", "VI", "GU", "AS", "MP",
))

TRUSTEDFORM_HOST = "cert.trustedform.com"


class InvalidLead(ValueError):
    """A payload that is not a lead; `.errors` says why, field by field."""

    def __init__(self, errors: dict):
        self.errors = errors
        problems = list(error_lines(errors))
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__("invalid lead: " + "; ".join(problems[:3]) + more)


# -- fields ------------------------------------------------------------------------------------

class IPAddress(Text):
    """An IPv4 or IPv6 address, returned in its canonical text form."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        try:
            address = ipaddress.ip_address(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as exc:
            raise ValidationError("Not a valid IPv4 or IPv6 address.") from exc
        if getattr(address, "scope_id", None) is not None:
            # fe80::1%eth0 names an interface of the sender's host: not where a consumer was.
            raise ValidationError("An IPv6 zone (%...) is not allowed: send the address alone.")
        return str(address)


class StateCode(Text):
    """A USPS state code; "fl" is taken as "FL"."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        state = super()._deserialize(value, attr, data, **kwargs).upper()
        if state not in STATES:
            raise ValidationError("Not a 2-letter USPS state code.")
        return state


class Timestamp(Text):
    """An ISO 8601 date-time with a timezone, returned as a UTC ISO string (JSON-safe)."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        try:
            moment = datetime.fromisoformat(super()._deserialize(value, attr, data, **kwargs))
            if moment.tzinfo is None:
                raise ValidationError("Must carry a timezone (e.g. 2026-11-22T10:00:00Z).")
            return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        except (ValueError, OverflowError) as exc:   # 9999-12-31T23:00-05:00 overflows in UTC
            raise ValidationError("Not an ISO 8601 date-time.") from exc


class Qualifiers(fields.Field):
    """The qualifiers, checked by the schema of the lead's own vertical."""

    def _deserialize(self, value, attr, data, **kwargs) -> dict:
        vertical = data.get("vertical") if isinstance(data, dict) else None
        schema = QUALIFIER_SCHEMAS.get(vertical.strip()) if isinstance(vertical, str) else None
        if schema is None:
            # Unchecked, yet never accepted: the lead already fails on its `vertical`, and that
            # one error says what to fix.
            return value
        return schema.load(value)


# -- validators --------------------------------------------------------------------------------

def _nanp_phone(value: str) -> None:
    # Intake checks syntax only; whether the number is real is the validate stage's verdict.
    number = read_phone(value)
    if number is None:
        raise ValidationError("Not a phone number.")
    if number.country_code != 1 or not phonenumbers.is_possible_number(number):
        raise ValidationError("Not a US phone number.")


def _email_syntax(value: str) -> None:
    _, problem = read_email(value)
    if problem is not None:
        raise ValidationError(problem)


def _trustedform_cert(value: str) -> None:
    url = urlsplit(value)
    if url.scheme != "https" or url.netloc.lower() != TRUSTEDFORM_HOST or len(url.path) < 2:
        raise ValidationError(f"Must be a certificate URL on https://{TRUSTEDFORM_HOST}/.")


def _within_consent_window(value: str) -> None:
    now = clock.get(None)
    if now is None:
        return
    moment = datetime.fromisoformat(value)
    if moment > now.now + timedelta(seconds=now.max_future_s):
        raise ValidationError("Is in the future.")
    if moment < now.now - timedelta(seconds=now.max_age_s):
        raise ValidationError(f"Is older than {now.max_age_s} seconds.")


_http_url = validate.URL(schemes={"http", "https"}, error="Not a valid http(s) URL.")
# ASCII digits only, to the very end: Python's \d takes any script's digits, and $ a final newline.
_zip = validate.Regexp(r"^[0-9]{5}(-[0-9]{4})?\Z", error="Must be 5 digits or ZIP+4 (12345-6789).")
_guid = validate.Regexp(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$",
                        error="Not a Jornaya LeadiD (GUID format).")


# -- envelope ----------------------------------------------------------------------------------

class ContactSchema(Strict):
    first_name = Text(required=True)
    last_name = Text(required=True)
    email = Text(required=True, max_length=254, validate=_email_syntax)
    phone = Text(required=True, max_length=32, validate=_nanp_phone)
    address = Text(max_length=200)
    city = Text()
    state = StateCode(required=True, max_length=2)
    zip = Text(required=True, max_length=10, validate=_zip)


class ConsentSchema(Strict):
    ip = IPAddress(required=True, max_length=64)
    timestamp = Timestamp(required=True, max_length=64, validate=_within_consent_window)
    # Verbatim: not stripped, not normalised (validated, never transformed), so text_sha256
    # is over the bytes the consumer was shown.
    text = Text(required=True, max_length=10_000, strip=False, multiline=True, normalize=False)
    page_url = Text(max_length=2048, validate=_http_url)
    user_agent = Text(max_length=1024)
    trustedform_cert_url = Text(max_length=2048, validate=_trustedform_cert)
    jornaya_leadid = Text(max_length=36, validate=_guid)

    @post_load
    def add_text_hash(self, consent: dict, **kwargs) -> dict:
        return {**consent, "text_sha256": hashlib.sha256(consent["text"].encode()).hexdigest()}


class SourceSchema(Strict):
    publisher_id = Text(required=True, max_length=64)
    page = Text(max_length=2048)
    sub_id = Text(max_length=128)


class FormSchema(Strict):
    started_at = Timestamp(max_length=64)
    submitted_at = Timestamp(max_length=64)

    @validates_schema
    def submitted_after_start(self, form: dict, **kwargs) -> None:
        started, submitted = form.get("started_at"), form.get("submitted_at")
        if started and submitted and datetime.fromisoformat(submitted) < datetime.fromisoformat(
                started):
            raise ValidationError("Must not be earlier than started_at.", "submitted_at")


class LeadSchema(Strict):
    vertical = Text(required=True, max_length=64, validate=validate.OneOf(
        VERTICALS, error="Unknown vertical {input!r}; must be one of: {choices}."))
    contact = fields.Nested(ContactSchema, required=True)
    qualifiers = Qualifiers(required=True)
    consent = fields.Nested(ConsentSchema, required=True)
    source = fields.Nested(SourceSchema, required=True)
    form = fields.Nested(FormSchema, allow_none=True)


_LEAD = LeadSchema()


def _quick_qualifiers(field: fields.Field):
    """The quick load's part for the qualifiers: the lead's own vertical's quick load."""
    if not isinstance(field, Qualifiers) or not field.required or field.allow_none or field.validators:
        return None
    loaders = {name: quick_loader(schema) for name, schema in QUALIFIER_SCHEMAS.items()}

    def part(value, data):
        vertical = data.get("vertical")
        loader = loaders.get(vertical.strip()) if isinstance(vertical, str) else None
        if loader is None or value is _missing or value is None:
            return DECLINED                  # refused: marshmallow says why
        return loader(value)
    return part


# A lead that loads cleanly is loaded without marshmallow's machinery around each field; any
# other payload goes through _LEAD.load, which gives its errors (pipeline/domain/quickload.py).
_QUICK_LEAD = quick_loader(_LEAD, special=_quick_qualifiers)


def parse_lead(payload: object, now: datetime, *, max_future_s: int = 300,
               max_age_s: int = 86400) -> dict:
    """The clean lead from an intake payload, or InvalidLead with every field's error."""
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    if not isinstance(payload, dict):
        raise InvalidLead({"_schema": ["A lead must be a JSON object."]})
    try:
        with clock(Clock(now, max_future_s, max_age_s)):
            lead = _QUICK_LEAD(payload)
            return _LEAD.load(payload) if lead is DECLINED else cast(dict, lead)
    except ValidationError as exc:
        raise InvalidLead(exc.normalized_messages()) from None
