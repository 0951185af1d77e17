"""The vertical registry: one module per vertical, each whole, none forgotten."""
from __future__ import annotations

import pkgutil
import random
from datetime import UTC, datetime

import pytest

from pipeline.domain import scoring, verticals
from pipeline.domain.leads import parse_lead
from pipeline.domain.samples import make_lead
from pipeline.domain.validation import normalise

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_every_module_in_the_package_is_a_registered_vertical():
    modules = {m.name for m in pkgutil.iter_modules(verticals.__path__)}
    assert modules == set(verticals.REGISTRY), "a vertical module is missing from verticals._MODULES"
    for name, vertical in verticals.REGISTRY.items():
        assert vertical.name == name


@pytest.mark.parametrize("name", verticals.NAMES)
def test_each_verticals_samples_pass_its_own_schema_and_fit_between_0_and_1(name):
    vertical = verticals.get(name)
    rng = random.Random(5)
    for _ in range(20):
        answers = vertical.sample(rng, NOW)
        assert vertical.qualifiers.load(answers) == answers
        assert 0.0 <= vertical.fit(answers) <= 1.0
    lead = parse_lead(make_lead(random.Random(1), name, now=NOW), NOW)
    assert vertical.topic in lead["consent"]["text"]


def test_the_fit_signal_follows_what_buyers_pay_for():
    solar = verticals.get("solar")
    assert solar.fit({"homeowner": True, "monthly_electric_bill": 250}) == 1.0
    assert solar.fit({"homeowner": False, "monthly_electric_bill": 250}) == pytest.approx(0.4)
    debt = verticals.get("debt_relief")
    assert debt.fit({"unsecured_debt": 12_000}) > debt.fit({"unsecured_debt": 6_000}) > debt.fit(
        {"unsecured_debt": 1_000})


def test_an_unknown_vertical_fails_loudly_instead_of_scoring_a_default():
    lead = parse_lead(make_lead(random.Random(2), "solar", now=NOW), NOW)
    found = normalise(lead)
    with pytest.raises(KeyError):
        scoring.signals({**lead, "vertical": "timeshare"}, found, {})
