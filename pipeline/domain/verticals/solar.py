"""Solar: home ownership and the electric bill that pays for the panels."""
from __future__ import annotations

import random
from datetime import datetime

from pipeline.domain.fields import CREDIT_RATINGS, PROPERTY_TYPES, Strict, Text, choice, flag, whole
from pipeline.domain.verticals import Vertical


class Qualifiers(Strict):
    homeowner = flag(required=True)
    monthly_electric_bill = whole(0, 10_000, required=True)
    roof_shade = choice(("no_shade", "some_shade", "full_shade", "unknown"))
    property_type = choice(PROPERTY_TYPES)
    electric_utility = Text()
    credit_rating = choice(CREDIT_RATINGS)


def fit(q: dict) -> float:
    # Installers need an owner, and a bill large enough for the savings to sell.
    bill = q.get("monthly_electric_bill") or 0
    return (0.6 if q.get("homeowner") else 0.0) + (0.4 if bill >= 100 else 0.2 if bill >= 50 else 0)


def sample(rng: random.Random, now: datetime) -> dict:
    return {"homeowner": rng.random() < 0.85,
            "monthly_electric_bill": rng.randrange(60, 450, 10),
            "roof_shade": rng.choice(("no_shade", "some_shade", "unknown")),
            "credit_rating": rng.choice(("excellent", "good", "good", "fair", "fair", "poor"))}


VERTICAL = Vertical("solar", "solar energy", Qualifiers(), fit, sample)
