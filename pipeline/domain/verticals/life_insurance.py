"""Life insurance: the coverage asked for and the applicant's age and health."""
from __future__ import annotations

import random
from datetime import datetime

from marshmallow import fields, validate

from pipeline.domain.fields import Strict, choice, flag, whole
from pipeline.domain.verticals import Vertical


class Qualifiers(Strict):
    coverage_amount = whole(5_000, 50_000_000, required=True)
    age = whole(18, 90, required=True)
    policy_type = choice(("term", "whole", "universal", "final_expense"))
    term_years = fields.Integer(allow_none=True, validate=validate.OneOf((10, 15, 20, 25, 30)))
    tobacco_use = flag()
    health_rating = choice(("excellent", "good", "average", "poor"))


def fit(q: dict) -> float:
    # A life lead carries no current-policy answer: every one fits alike.
    return 0.7


def sample(rng: random.Random, now: datetime) -> dict:
    return {"coverage_amount": rng.choice((100_000, 250_000, 500_000, 1_000_000)),
            "age": rng.randint(25, 75), "policy_type": rng.choice(("term", "term", "whole")),
            "term_years": rng.choice((10, 20, 30)), "tobacco_use": rng.random() < 0.15,
            "health_rating": rng.choice(("excellent", "good", "average"))}


VERTICAL = Vertical("life_insurance", "life insurance", Qualifiers(), fit, sample)
