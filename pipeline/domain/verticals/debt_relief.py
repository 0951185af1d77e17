"""Debt relief: how much unsecured debt, of which kinds, and the means to settle it."""
from __future__ import annotations

import random
from datetime import datetime

from marshmallow import fields, validate

from pipeline.domain.fields import CREDIT_RATINGS, Strict, choice, flag, whole
from pipeline.domain.verticals import Vertical

DEBT_TYPES = ("credit_card", "medical", "personal_loan", "student_loan", "collections", "other")


class Qualifiers(Strict):
    unsecured_debt = whole(0, 10_000_000, required=True)
    debt_types = fields.List(choice(DEBT_TYPES, required=True), allow_none=True,
                             validate=validate.Length(max=6))
    behind_on_payments = flag()
    monthly_income = whole(0, 1_000_000)
    employment_status = choice(("employed", "self_employed", "unemployed", "retired", "student", "other"))
    credit_rating = choice(CREDIT_RATINGS)


def fit(q: dict) -> float:
    # Settlement companies need enough debt to earn their fee.
    debt = q.get("unsecured_debt") or 0
    return 1.0 if debt >= 10000 else 0.6 if debt >= 5000 else 0.2


def sample(rng: random.Random, now: datetime) -> dict:
    return {"unsecured_debt": rng.randrange(5_000, 80_000, 500),
            "debt_types": rng.sample(("credit_card", "medical", "personal_loan"), rng.randint(1, 3)),
            "behind_on_payments": rng.random() < 0.4,
            "monthly_income": rng.randrange(1_500, 9_000, 100),
            "employment_status": rng.choice(("employed", "employed", "self_employed", "retired"))}


VERTICAL = Vertical("debt_relief", "debt relief", Qualifiers(), fit, sample)
