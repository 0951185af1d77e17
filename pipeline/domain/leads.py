"""The lead: intake schemas (envelope, contact, consent, one qualifier schema per vertical)."""

from __future__ import annotations

import hashlib
import ipaddress
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import email_validator
import phonenumbers
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from marshmallow.experimental.context import Context

VERTICALS: tuple[str, ...] = (
    "auto_insurance", "home_insurance", "health_insurance", "life_insurance",
    "mortgage", "solar", "debt_relief",
)

# USPS codes of the 50 states, DC and the inhabited territories (all on the NANP).
STATES: frozenset[str] = frozenset((
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
    "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT",
    "VA", "WA", "WV", "WI", "WY", "DC", "PR", "VI", "GU", "AS", "MP",
))

CREDIT_RATINGS = ("excellent", "good", "fair", "poor")
PROPERTY_TYPES = ("single_family", "condo", "townhouse", "multi_family", "mobile_home")
TRUSTEDFORM_HOST = "cert.trustedform.com"


class InvalidLead(ValueError):
    """A payload that is not a lead; `.errors` says why, field by field."""

    def __init__(self, errors: dict):
        self.errors = errors
        problems = [f"{path}: {message}" for path, message in _flatten(errors)]
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__("invalid lead: " + "; ".join(problems[:3]) + more)


def _flatten(errors: dict, prefix: str = ""):
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _flatten(value, path)
        else:
            for message in value if isinstance(value, list) else [value]:
                yield path, message


@dataclass(frozen=True)
class _Clock:
    now: datetime
    max_future_s: int
    max_age_s: int


# marshmallow 4 dropped schema.context; the parse-time clock travels in a context variable.
_clock = Context[_Clock]


# -- fields ------------------------------------------------------------------------------------

class Text(fields.String):
    """A string, NFC-normalised and stripped, without NUL or control characters.

    An optional field sent blank counts as null: form backends send "" for empty inputs.
    """

    def __init__(self, *, max_length: int = 100, strip: bool = True, multiline: bool = False,
                 required: bool = False, validate=None, **kwargs):
        self.strip, self.multiline = strip, multiline
        checks = [validate] if callable(validate) else list(validate or ())
        kwargs.setdefault("allow_none", not required)
        super().__init__(required=required,
                         validate=[_max_length(max_length), *checks], **kwargs)

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if isinstance(value, str):
            value = unicodedata.normalize("NFC", value)
            if self.strip:
                value = value.strip()
            if not value and not self.required:
                value = None
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            raise ValidationError("May not be blank.")
        if "\x00" in text:
            raise ValidationError("NUL characters are not allowed.")
        allowed = "\t\n\r" if self.multiline else ""
        if any(unicodedata.category(c) in ("Cc", "Cs") and c not in allowed for c in text):
            raise ValidationError("Control characters are not allowed.")
        return text


class IPAddress(Text):
    """An IPv4 or IPv6 address, returned in its canonical text form."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        try:
            return str(ipaddress.ip_address(super()._deserialize(value, attr, data, **kwargs)))
        except ValueError as exc:
            raise ValidationError("Not a valid IPv4 or IPv6 address.") from exc


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
        schema = QUALIFIER_SCHEMAS.get(vertical.strip() if isinstance(vertical, str) else None)
        if schema is None:
            # Unchecked, yet never accepted: the lead already fails on its `vertical`, and that
            # one error says what to fix.
            return value
        return schema.load(value)


# -- validators --------------------------------------------------------------------------------

def _max_length(limit: int):
    return validate.Length(max=limit, error="Longer than {max} characters.")


def _nanp_phone(value: str) -> None:
    # Intake checks syntax only; whether the number is real is the validate stage's verdict.
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException as exc:
        raise ValidationError("Not a phone number.") from exc
    if number.country_code != 1 or not phonenumbers.is_possible_number(number):
        raise ValidationError("Not a US phone number.")


def _email_syntax(value: str) -> None:
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValidationError(str(exc)) from exc


def _trustedform_cert(value: str) -> None:
    url = urlsplit(value)
    if url.scheme != "https" or url.netloc.lower() != TRUSTEDFORM_HOST or len(url.path) < 2:
        raise ValidationError(f"Must be a certificate URL on https://{TRUSTEDFORM_HOST}/.")


def _not_after_next_year(year: int) -> None:
    clock = _clock.get(None)
    if clock is not None and year > clock.now.year + 1:
        raise ValidationError(f"Must be {clock.now.year + 1} or earlier.")


def _within_consent_window(value: str) -> None:
    clock = _clock.get(None)
    if clock is None:
        return
    moment = datetime.fromisoformat(value)
    if moment > clock.now + timedelta(seconds=clock.max_future_s):
        raise ValidationError("Is in the future.")
    if moment < clock.now - timedelta(seconds=clock.max_age_s):
        raise ValidationError(f"Is older than {clock.max_age_s} seconds.")


_http_url = validate.URL(schemes={"http", "https"}, error="Not a valid http(s) URL.")
_zip = validate.Regexp(r"^\d{5}(-\d{4})?$", error="Must be 5 digits or ZIP+4 (12345-6789).")
_guid = validate.Regexp(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$",
                        error="Not a Jornaya LeadiD (GUID format).")


def _int(low: int, high: int | None = None, *, required: bool = False, checks=()):
    return fields.Integer(required=required, allow_none=not required,
                          validate=[validate.Range(min=low, max=high), *checks])


def _bool(*, required: bool = False):
    return fields.Boolean(required=required, allow_none=not required)


def _choice(choices, *, required: bool = False):
    return Text(required=required, validate=validate.OneOf(choices))


# -- envelope ----------------------------------------------------------------------------------

class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ContactSchema(_Strict):
    first_name = Text(required=True)
    last_name = Text(required=True)
    email = Text(required=True, max_length=254, validate=_email_syntax)
    phone = Text(required=True, max_length=32, validate=_nanp_phone)
    address = Text(max_length=200)
    city = Text()
    state = StateCode(required=True, max_length=2)
    zip = Text(required=True, max_length=10, validate=_zip)


class ConsentSchema(_Strict):
    ip = IPAddress(required=True, max_length=64)
    timestamp = Timestamp(required=True, max_length=64, validate=_within_consent_window)
    # Verbatim: not stripped, so text_sha256 proves exactly what the consumer was shown.
    text = Text(required=True, max_length=10_000, strip=False, multiline=True)
    page_url = Text(max_length=2048, validate=_http_url)
    user_agent = Text(max_length=1024)
    trustedform_cert_url = Text(max_length=2048, validate=_trustedform_cert)
    jornaya_leadid = Text(max_length=36, validate=_guid)

    @post_load
    def add_text_hash(self, consent: dict, **kwargs) -> dict:
        return {**consent, "text_sha256": hashlib.sha256(consent["text"].encode()).hexdigest()}


class SourceSchema(_Strict):
    publisher_id = Text(required=True, max_length=64)
    page = Text(max_length=2048)
    sub_id = Text(max_length=128)


class FormSchema(_Strict):
    started_at = Timestamp(max_length=64)
    submitted_at = Timestamp(max_length=64)

    @validates_schema
    def submitted_after_start(self, form: dict, **kwargs) -> None:
        started, submitted = form.get("started_at"), form.get("submitted_at")
        if started and submitted and datetime.fromisoformat(submitted) < datetime.fromisoformat(
                started):
            raise ValidationError("Must not be earlier than started_at.", "submitted_at")


class LeadSchema(_Strict):
    vertical = Text(required=True, max_length=64, validate=validate.OneOf(
        VERTICALS, error="Unknown vertical {input!r}; must be one of: {choices}."))
    contact = fields.Nested(ContactSchema, required=True)
    qualifiers = Qualifiers(required=True)
    consent = fields.Nested(ConsentSchema, required=True)
    source = fields.Nested(SourceSchema, required=True)
    form = fields.Nested(FormSchema, allow_none=True)


# -- qualifiers, one schema per vertical -------------------------------------------------------
# Few required fields (what a buyer cannot price without), the rest optional.

class AutoInsurance(_Strict):
    vehicle_year = _int(1981, required=True, checks=[_not_after_next_year])
    currently_insured = _bool(required=True)
    vehicle_make = Text(max_length=50)
    vehicle_model = Text(max_length=50)
    current_insurer = Text()
    insured_months = _int(0, 600)
    drivers = _int(1, 8)
    vehicles = _int(1, 8)
    accidents_3y = _int(0, 20)
    violations_3y = _int(0, 20)
    dui = _bool()
    homeowner = _bool()
    credit_rating = _choice(CREDIT_RATINGS)


class HomeInsurance(_Strict):
    property_type = _choice(PROPERTY_TYPES, required=True)
    property_value = _int(10_000, 50_000_000, required=True)
    year_built = _int(1700, checks=[_not_after_next_year])
    square_feet = _int(200, 50_000)
    currently_insured = _bool()
    claims_5y = _int(0, 20)
    new_purchase = _bool()
    credit_rating = _choice(CREDIT_RATINGS)


class HealthInsurance(_Strict):
    household_size = _int(1, 15, required=True)
    currently_insured = _bool(required=True)
    age = _int(0, 120)
    annual_household_income = _int(0, 10_000_000)
    coverage_type = _choice(("individual", "family", "medicare_supplement", "short_term"))
    tobacco_use = _bool()
    pre_existing_conditions = _bool()
    qualifying_life_event = _bool()


class LifeInsurance(_Strict):
    coverage_amount = _int(5_000, 50_000_000, required=True)
    age = _int(18, 90, required=True)
    policy_type = _choice(("term", "whole", "universal", "final_expense"))
    term_years = fields.Integer(allow_none=True, validate=validate.OneOf((10, 15, 20, 25, 30)))
    tobacco_use = _bool()
    health_rating = _choice(("excellent", "good", "average", "poor"))


class Mortgage(_Strict):
    loan_purpose = _choice(("purchase", "refinance", "cash_out_refinance", "home_equity"),
                           required=True)
    loan_amount = _int(10_000, 20_000_000, required=True)
    property_value = _int(10_000, 50_000_000)
    property_type = _choice(PROPERTY_TYPES)
    occupancy = _choice(("primary", "secondary", "investment"))
    credit_rating = _choice(CREDIT_RATINGS)
    current_rate = fields.Float(allow_none=True, allow_nan=False, validate=validate.Range(0, 25))
    first_time_buyer = _bool()
    military = _bool()


class Solar(_Strict):
    homeowner = _bool(required=True)
    monthly_electric_bill = _int(0, 10_000, required=True)
    roof_shade = _choice(("no_shade", "some_shade", "full_shade", "unknown"))
    property_type = _choice(PROPERTY_TYPES)
    electric_utility = Text()
    credit_rating = _choice(CREDIT_RATINGS)


class DebtRelief(_Strict):
    unsecured_debt = _int(0, 10_000_000, required=True)
    debt_types = fields.List(
        _choice(("credit_card", "medical", "personal_loan", "student_loan", "collections",
                 "other"), required=True), allow_none=True, validate=validate.Length(max=6))
    behind_on_payments = _bool()
    monthly_income = _int(0, 1_000_000)
    employment_status = _choice(("employed", "self_employed", "unemployed", "retired",
                                 "student", "other"))
    credit_rating = _choice(CREDIT_RATINGS)


QUALIFIER_SCHEMAS: dict[str, Schema] = {
    "auto_insurance": AutoInsurance(), "home_insurance": HomeInsurance(),
    "health_insurance": HealthInsurance(), "life_insurance": LifeInsurance(),
    "mortgage": Mortgage(), "solar": Solar(), "debt_relief": DebtRelief(),
}
assert set(QUALIFIER_SCHEMAS) == set(VERTICALS)

_LEAD = LeadSchema()


def parse_lead(payload: object, now: datetime, *, max_future_s: int = 300,
               max_age_s: int = 86400) -> dict:
    """The clean lead from an intake payload, or InvalidLead with every field's error."""
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    if not isinstance(payload, dict):
        raise InvalidLead({"_schema": ["A lead must be a JSON object."]})
    try:
        with _clock(_Clock(now, max_future_s, max_age_s)):
            return _LEAD.load(payload)
    except ValidationError as exc:
        raise InvalidLead(exc.normalized_messages()) from None
