"""Auto insurance: the vehicle, the current policy, the drivers' record."""
from __future__ import annotations

import random
from datetime import datetime

from pipeline.domain.fields import CREDIT_RATINGS, Strict, Text, choice, flag, not_after_next_year, whole
from pipeline.domain.verticals import Vertical


class Qualifiers(Strict):
    vehicle_year = whole(1981, required=True, checks=[not_after_next_year])
    currently_insured = flag(required=True)
    vehicle_make = Text(max_length=50)
    vehicle_model = Text(max_length=50)
    current_insurer = Text()
    insured_months = whole(0, 600)
    drivers = whole(1, 8)
    vehicles = whole(1, 8)
    accidents_3y = whole(0, 20)
    violations_3y = whole(0, 20)
    dui = flag()
    homeowner = flag()
    credit_rating = choice(CREDIT_RATINGS)


def fit(q: dict) -> float:
    # Carriers pay most for drivers switching from a current policy.
    return 1.0 if q.get("currently_insured") else 0.7


def sample(rng: random.Random, now: datetime) -> dict:
    insured = rng.random() < 0.75
    return {"vehicle_year": rng.randint(now.year - 18, now.year + 1),
            "currently_insured": insured,
            "vehicle_make": rng.choice(("Toyota", "Honda", "Ford", "Chevrolet", "Nissan",
                                        "Hyundai", "Tesla", "BMW")),
            "drivers": rng.randint(1, 3), "vehicles": rng.randint(1, 3),
            "insured_months": rng.randint(6, 120) if insured else 0,
            "accidents_3y": rng.choice((0, 0, 0, 0, 1, 2)),
            "homeowner": rng.random() < 0.6,
            "credit_rating": rng.choice(("excellent", "good", "good", "fair", "fair", "poor"))}


VERTICAL = Vertical("auto_insurance", "auto insurance", Qualifiers(), fit, sample)
