"""The validate stage's rules: normalise a clean lead, then judge it against its history."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass

import email_validator
import phonenumbers

from pipeline.domain import zips as zip_index

# Reason codes of a rejected lead, in the order they are reported.
REASONS = ("invalid_phone", "invalid_email", "unknown_zip", "no_consent", "suppressed",
           "duplicate")

# The US and its territories; the rest of the NANP (Canada, the Caribbean) is out of market.
US_REGIONS = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})


@dataclass(frozen=True)
class Normalised:
    """What validation learnt about a lead: the facts scoring and the auction build on."""

    vertical: str
    phone_e164: str | None
    phone_valid: bool
    phone_region: str | None
    phone_line_type: str
    phone_fictional: bool              # 555-0100..0199 is reserved for fiction
    phone_area_matches_zip: bool | None
    phone_sha256: str | None
    email: str | None
    email_valid: bool
    email_domain: str | None
    email_sha256: str | None
    zip5: str | None
    zip_exists: bool
    zip_city_match: bool | None        # None: no city declared
    zip_state_match: bool | None
    zip_city: str | None               # the ZIP's own city and state, from the USPS data
    zip_state: str | None
    zip_timezone: str | None
    zip_lat: float | None
    zip_long: float | None
    consent_complete: bool

    def facts(self) -> dict:
        # Every field is a plain value: a shallow copy is asdict()'s result, without its deep
        # copy of each value (a tenth of the cost).
        return {name: getattr(self, name) for name in _NORMALISED_FIELDS}

    @classmethod
    def from_facts(cls, facts: dict) -> Normalised:
        """Rebuild from a facts dict (e.g. the stored JSONB); extra keys are ignored."""
        return cls(**{field.name: facts[field.name] for field in dataclasses.fields(cls)})


_NORMALISED_FIELDS = tuple(field.name for field in dataclasses.fields(Normalised))


@dataclass(frozen=True)
class History:
    """What the store knows about earlier leads with the same phone or email."""

    duplicate_of: str | None = None    # earlier lead id, same vertical, within the window
    suppressed: bool = False           # phone or email on the suppression list


@dataclass(frozen=True)
class Valid:
    normalised: Normalised

    def facts(self) -> dict:
        return self.normalised.facts()


@dataclass(frozen=True)
class Rejected:
    reasons: tuple[str, ...]
    duplicate_of: str | None = None
    normalised: Normalised | None = None

    def facts(self) -> dict:
        known = self.normalised.facts() if self.normalised else {}
        return {**known, "reasons": list(self.reasons), "duplicate_of": self.duplicate_of}


def _sha256(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


def _place(name: str) -> str:
    """A city name reduced for comparison: "St. Petersburg" == "st petersburg"."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain.lower()).split())


# The intake reads a lead's phone and email twice (its schema checks them, then it hashes
# them), each read costing tens of microseconds: the last few readings are kept, by the raw text,
# one per API thread (16), so a consumer's phone and email stay in memory no longer than it takes
# sixteen more leads to arrive (never written anywhere; an evicted reading is only read again).
_RECENT = 16


@functools.lru_cache(maxsize=_RECENT)
def read_phone(raw: str) -> phonenumbers.PhoneNumber | None:
    """The phone number as read in the US, None when it cannot be read. Shared: never mutate it."""
    try:
        return phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return None


@functools.lru_cache(maxsize=_RECENT)
def read_email(raw: str) -> tuple[email_validator.ValidatedEmail | None, str | None]:
    """(the address as the validator reads it, None), or (None, why it is no address)."""
    try:
        return email_validator.validate_email(raw, check_deliverability=False), None
    except email_validator.EmailNotValidError as exc:
        return None, str(exc)


def _phone_facts(raw: str | None) -> dict:
    number = read_phone(raw or "")
    if number is None:
        return {"phone_e164": None, "phone_valid": False, "phone_region": None,
                "phone_line_type": "unknown", "phone_fictional": False}
    national = str(number.national_number)        # NANP: area code, exchange, line
    kind = phonenumbers.number_type(number)
    line_type = phonenumbers.PhoneNumberType.to_string(kind)
    return {
        "phone_e164": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        # is_valid_number() is this very test (a type of the number's region's that it
        # matches), with the region looked up once more.
        "phone_valid": kind != phonenumbers.PhoneNumberType.UNKNOWN,
        "phone_region": phonenumbers.region_code_for_number(number),
        "phone_line_type": line_type.lower(),
        "phone_fictional": number.country_code == 1 and national[3:8] == "55501",
    }


def _email_facts(raw: str | None) -> dict:
    email, _ = read_email(raw or "")
    if email is None:
        return {"email": None, "email_valid": False, "email_domain": None}
    return {"email": email.normalized.lower(), "email_valid": True,
            "email_domain": email.domain.lower()}


def normalise_phone(raw: str | None) -> str | None:
    """The E.164 form of a valid phone number ("(305) 555-0142" -> "+13055550142"), else None."""
    # As _phone_facts, without the line type and region nobody asks for here (the intake
    # hashes every lead's phone; the number type alone is most of _phone_facts' cost).
    number = read_phone(raw or "")
    if number is None or not _valid(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# is_valid_number() finds the number's region first: for +1, the first of the NANP regions whose
# patterns the number matches, "US" the first of them and matched on its patterns alone (no
# leading digits). So a +1 number valid for "US" is valid, and is_valid_number would have
# matched it against US's patterns twice; any other number is asked as it always was.
_US = phonenumbers.PhoneMetadata.metadata_for_region("US")
_US_FIRST = (phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(1, ())[:1] == ("US",)
             and _US is not None and _US.leading_digits is None)


def _valid(number: phonenumbers.PhoneNumber) -> bool:
    """phonenumbers.is_valid_number(number), asked once instead of twice for a US number."""
    if _US_FIRST and number.country_code == 1 and phonenumbers.is_valid_number_for_region(number, "US"):
        return True
    return phonenumbers.is_valid_number(number)


def normalise_email(raw: str | None) -> str | None:
    """The normalised, lower-cased form of a syntactically valid email address, else None."""
    return _email_facts(raw)["email"]


@functools.lru_cache(maxsize=65536)
def _zip_record(raw: str | None) -> dict | None:
    """The active USPS record of a ZIP (cached: one look-up costs about a millisecond)."""
    try:
        records = zip_index.matching(raw or "")
    except (TypeError, ValueError):
        return None
    # A decommissioned ZIP gets no mail: as good as unknown.
    return next((record for record in records if record["active"]), None)


def _zip_facts(contact: dict, e164: str | None) -> dict:
    record = _zip_record(contact.get("zip"))
    city, state = contact.get("city"), contact.get("state")
    if record is None:
        return {"zip_exists": False, "zip_city_match": None, "zip_state_match": None,
                "zip_city": None, "zip_state": None, "zip_timezone": None, "zip_lat": None,
                "zip_long": None, "phone_area_matches_zip": None}
    cities = {_place(name) for name in [record["city"], *record["acceptable_cities"]]}
    return {
        "zip_exists": True,
        "zip_city_match": _place(city) in cities if city else None,
        "zip_state_match": record["state"] == state if state else None,
        "zip_city": record["city"],
        "zip_state": record["state"],
        "zip_timezone": record["timezone"],
        "zip_lat": float(record["lat"]),
        "zip_long": float(record["long"]),
        "phone_area_matches_zip": (e164[2:5] in record["area_codes"]
                                   if e164 and e164.startswith("+1") else None),
    }


def contact_hashes(contact: dict) -> tuple[str | None, str | None]:
    """SHA-256 of the E.164 phone and of the normalised email (None for an invalid one)."""
    return (_sha256(normalise_phone(contact.get("phone"))),
            _sha256(normalise_email(contact.get("email"))))


def normalise(lead: dict) -> Normalised:
    """The facts of a clean lead (as parse_lead returns it); no network, no clock."""
    contact, consent = lead.get("contact") or {}, lead.get("consent") or {}
    phone, email = _phone_facts(contact.get("phone")), _email_facts(contact.get("email"))
    return Normalised(
        vertical=lead.get("vertical", ""),
        **phone,
        phone_sha256=_sha256(phone["phone_e164"]),
        **email,
        email_sha256=_sha256(email["email"]),
        zip5=(contact.get("zip") or "")[:5] or None,
        **_zip_facts(contact, phone["phone_e164"]),
        consent_complete=all(consent.get(key) for key in ("ip", "timestamp", "text")),
    )


def verdict(normalised: Normalised, history: History) -> Valid | Rejected:
    """Valid, or Rejected with every reason that applies (a ZIP/city mismatch is no reason)."""
    failed = {
        "invalid_phone": not normalised.phone_valid or normalised.phone_region not in US_REGIONS,
        "invalid_email": not normalised.email_valid,
        "unknown_zip": not normalised.zip_exists,
        "no_consent": not normalised.consent_complete,
        "suppressed": history.suppressed,
        "duplicate": history.duplicate_of is not None,
    }
    reasons = tuple(reason for reason in REASONS if failed[reason])
    if reasons:
        return Rejected(reasons, history.duplicate_of, normalised)
    return Valid(normalised)
