"""Mortgage: the loan, the property and the borrower's credit."""
from __future__ import annotations

import random
from datetime import datetime

from marshmallow import fields, validate

from pipeline.domain.fields import CREDIT_RATINGS, PROPERTY_TYPES, Strict, choice, flag, whole
from pipeline.domain.verticals import Vertical

CREDIT_FIT = {"excellent": 1.0, "good": 0.8, "fair": 0.5, "poor": 0.2}


class Qualifiers(Strict):
    loan_purpose = choice(("purchase", "refinance", "cash_out_refinance", "home_equity"), required=True)
    loan_amount = whole(10_000, 20_000_000, required=True)
    property_value = whole(10_000, 50_000_000)
    property_type = choice(PROPERTY_TYPES)
    occupancy = choice(("primary", "secondary", "investment"))
    credit_rating = choice(CREDIT_RATINGS)
    current_rate = fields.Float(allow_none=True, allow_nan=False, validate=validate.Range(0, 25))
    first_time_buyer = flag()
    military = flag()


def fit(q: dict) -> float:
    # Lenders price on credit; an unanswered rating is a middling one.
    return CREDIT_FIT.get(q.get("credit_rating") or "", 0.5)


def sample(rng: random.Random, now: datetime) -> dict:
    value = rng.randrange(180_000, 1_500_000, 5_000)
    return {"loan_purpose": rng.choice(("purchase", "refinance", "cash_out_refinance")),
            "loan_amount": value * rng.randint(50, 90) // 100, "property_value": value,
            "property_type": "single_family", "occupancy": "primary",
            "credit_rating": rng.choice(("excellent", "good", "good", "fair", "fair", "poor")),
            "military": rng.random() < 0.1}


VERTICAL = Vertical("mortgage", "mortgage offers", Qualifiers(), fit, sample)
