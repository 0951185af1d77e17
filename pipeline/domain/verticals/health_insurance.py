"""Health insurance: the household and its coverage."""
from __future__ import annotations

import random
from datetime import datetime

from pipeline.domain.fields import Strict, choice, flag, whole
from pipeline.domain.verticals import Vertical


class Qualifiers(Strict):
    household_size = whole(1, 15, required=True)
    currently_insured = flag(required=True)
    age = whole(0, 120)
    annual_household_income = whole(0, 10_000_000)
    coverage_type = choice(("individual", "family", "medicare_supplement", "short_term"))
    tobacco_use = flag()
    pre_existing_conditions = flag()
    qualifying_life_event = flag()


def fit(q: dict) -> float:
    return 1.0 if q.get("currently_insured") else 0.7


def sample(rng: random.Random, now: datetime) -> dict:
    return {"household_size": rng.randint(1, 6), "currently_insured": rng.random() < 0.5,
            "age": rng.randint(21, 64),
            "annual_household_income": rng.randrange(20_000, 200_000, 1_000),
            "coverage_type": rng.choice(("individual", "family")),
            "tobacco_use": rng.random() < 0.15}


VERTICAL = Vertical("health_insurance", "health insurance", Qualifiers(), fit, sample)
