"""The lead score: 14 signals, each 0..1, weighted to a total of 0..100 with its breakdown."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from pipeline.domain import verticals
from pipeline.domain.validation import Normalised

# Weights sum to 100; the vertical's own part is its fit signal (pipeline/domain/verticals/).
WEIGHTS: dict[str, float] = {
    "phone_valid": 14, "phone_line_type": 8, "phone_area_matches_zip": 5,
    "email_valid": 10, "email_domain": 4,
    "zip_exists": 8, "zip_city_match": 6, "zip_state_match": 6,
    "contact_complete": 6, "name_quality": 5,
    "qualifiers_complete": 8, "vertical_fit": 8,
    "form_time": 6, "consent_strength": 2 + 4,  # consent evidence weighs double for TCPA buyers
}
assert abs(sum(WEIGHTS.values()) - 100) < 1e-9

LINE_TYPE = {"mobile": 1.0, "fixed_line_or_mobile": 0.85, "fixed_line": 0.7, "voip": 0.3,
             "toll_free": 0.1, "premium_rate": 0.0, "unknown": 0.5}
# Throw-away inbox domains: a lead with one is rarely a reachable consumer.
DISPOSABLE = frozenset({"mailinator.com", "guerrillamail.com", "10minutemail.com", "tempmail.com",
                        "yopmail.com", "trashmail.com", "sharklasers.com", "getnada.com"})


@dataclass(frozen=True)
class Score:
    total: int
    signals: dict[str, float]


def _form_time(form: dict | None) -> float:
    """Seconds spent on the form: bots take under five, people a minute or a few."""
    if not form or not form.get("started_at") or not form.get("submitted_at"):
        return 0.5
    spent = (datetime.fromisoformat(form["submitted_at"].replace("Z", "+00:00"))
             - datetime.fromisoformat(form["started_at"].replace("Z", "+00:00"))).total_seconds()
    if spent < 5:
        return 0.0
    if spent < 15:
        return 0.4
    if spent <= 1800:
        return 1.0
    return 0.6


def _name_quality(contact: dict) -> float:
    first, last = (contact.get("first_name") or "").strip(), (contact.get("last_name") or "").strip()
    if not first or not last:
        return 0.0
    if first.lower() == last.lower() or len(first) < 2 or len(last) < 2:
        return 0.3
    letters = all(ch.isalpha() or ch in " '-." for ch in first + last)
    return 1.0 if letters else 0.4


def _consent_strength(consent: dict) -> float:
    if consent.get("trustedform_cert_url") or consent.get("jornaya_leadid"):
        return 1.0
    return 0.7 if consent.get("page_url") and consent.get("user_agent") else 0.5


def _tri(value: bool | None, yes: float, no: float) -> float:
    """A check that may not apply: None (nothing to compare) scores in the middle."""
    return 0.5 if value is None else yes if value else no


def signals(lead: dict, found: Normalised, context: dict) -> dict[str, float]:
    """Each signal 0..1. ``lead`` is the stored lead; ``found`` what validation learnt of it."""
    contact, q = lead["contact"], lead["qualifiers"]
    vertical = verticals.get(lead["vertical"])
    answered = sum(1 for v in q.values() if v is not None)
    same_ip = context.get("same_ip_24h", 0)
    return {
        "phone_valid": 1.0 if found.phone_valid and not found.phone_fictional else 0.0,
        "phone_line_type": LINE_TYPE.get(found.phone_line_type or "unknown", 0.5),
        "phone_area_matches_zip": _tri(found.phone_area_matches_zip, 1.0, 0.3),
        "email_valid": 1.0 if found.email_valid else 0.0,
        "email_domain": 0.0 if (found.email_domain or "") in DISPOSABLE else 1.0,
        "zip_exists": 1.0 if found.zip_exists else 0.0,
        "zip_city_match": _tri(found.zip_city_match, 1.0, 0.0),
        "zip_state_match": _tri(found.zip_state_match, 1.0, 0.0),
        "contact_complete": sum(1 for k in ("address", "city", "state", "zip") if contact.get(k)) / 4,
        "name_quality": _name_quality(contact),
        "qualifiers_complete": min(1.0, answered / max(1, len(vertical.qualifiers.fields))),
        "vertical_fit": min(1.0, vertical.fit(q)),
        # Many leads from one IP in a day look like a farm, not a consumer.
        "form_time": _form_time(lead.get("form")) * (1.0 if same_ip < 3 else 0.5 if same_ip < 10 else 0.0),
        "consent_strength": _consent_strength(lead.get("consent") or {}),
    }


def total(each: dict[str, float], weights: dict[str, float] = WEIGHTS) -> int:
    """The weighted sum as a whole score 0..100, a half rounded up (49.5 is 50, 50.5 is 51).

    The float sum is first cut to 6 places, so 49.4999999 from float noise still counts as 49.5.
    """
    exact = Decimal(repr(round(sum(weights[name] * value for name, value in each.items()), 6)))
    return max(0, min(100, int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))))


def score(lead: dict, found: Normalised, context: dict, weights: dict[str, float] = WEIGHTS) -> Score:
    each = signals(lead, found, context)
    return Score(total=total(each, weights), signals={k: round(v, 3) for k, v in each.items()})
