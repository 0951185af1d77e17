"""Home insurance: the property and its claims history."""
from __future__ import annotations

import random
from datetime import datetime

from pipeline.domain.fields import (
    CREDIT_RATINGS,
    PROPERTY_TYPES,
    Strict,
    choice,
    flag,
    not_after_next_year,
    whole,
)
from pipeline.domain.verticals import Vertical


class Qualifiers(Strict):
    property_type = choice(PROPERTY_TYPES, required=True)
    property_value = whole(10_000, 50_000_000, required=True)
    year_built = whole(1700, checks=[not_after_next_year])
    square_feet = whole(200, 50_000)
    currently_insured = flag()
    claims_5y = whole(0, 20)
    new_purchase = flag()
    credit_rating = choice(CREDIT_RATINGS)


def fit(q: dict) -> float:
    return 1.0 if q.get("currently_insured") else 0.7


def sample(rng: random.Random, now: datetime) -> dict:
    return {"property_type": rng.choice(("single_family", "single_family", "condo", "townhouse")),
            "property_value": rng.randrange(150_000, 1_200_000, 5_000),
            "year_built": rng.randint(1950, now.year),
            "currently_insured": rng.random() < 0.8, "claims_5y": rng.choice((0, 0, 0, 1)),
            "credit_rating": rng.choice(("excellent", "good", "good", "fair", "fair", "poor"))}


VERTICAL = Vertical("home_insurance", "home insurance", Qualifiers(), fit, sample)
