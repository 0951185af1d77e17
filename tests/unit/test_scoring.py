"""The score: signals read from what validation learnt, weighted to 0..100."""
from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

from pipeline.domain import scoring
from pipeline.domain.leads import parse_lead
from pipeline.domain.samples import make_lead
from pipeline.domain.validation import normalise

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def clean(seed: int = 3, vertical: str = "solar") -> tuple[dict, object]:
    lead = parse_lead(make_lead(random.Random(seed), vertical, now=NOW), NOW)
    return lead, normalise(lead)


def test_the_weights_sum_to_100_and_every_signal_is_weighted():
    lead, found = clean()
    assert set(scoring.signals(lead, found, {})) == set(scoring.WEIGHTS)
    assert sum(scoring.WEIGHTS.values()) == 100


def test_a_clean_sample_lead_scores_high_with_its_breakdown():
    lead, found = clean()
    result = scoring.score(lead, found, {"same_ip_24h": 0})
    assert result.total >= 80
    assert all(0.0 <= v <= 1.0 for v in result.signals.values())
    assert result.signals["phone_valid"] == 1.0 and result.signals["email_valid"] == 1.0


def test_each_bad_fact_costs_its_weight():
    lead, found = clean()
    base = scoring.score(lead, found, {}).total
    fictional = dataclasses.replace(found, phone_fictional=True)
    assert base - scoring.score(lead, fictional, {}).total == scoring.WEIGHTS["phone_valid"]
    throwaway = dataclasses.replace(found, email_domain="mailinator.com")
    assert base - scoring.score(lead, throwaway, {}).total == scoring.WEIGHTS["email_domain"]
    # Unknown (None) city match scores the middle; a mismatch scores nothing.
    unknown = scoring.signals(lead, dataclasses.replace(found, zip_city_match=None), {})
    wrong = scoring.signals(lead, dataclasses.replace(found, zip_city_match=False), {})
    assert unknown["zip_city_match"] == 0.5 and wrong["zip_city_match"] == 0.0


def test_many_leads_from_one_address_in_a_day_look_like_a_farm():
    lead, found = clean()
    alone = scoring.signals(lead, found, {"same_ip_24h": 0})["form_time"]
    farm = scoring.signals(lead, found, {"same_ip_24h": 25})["form_time"]
    assert alone > 0 and farm == 0.0


def test_a_bot_fast_form_scores_lower_than_a_person():
    lead, found = clean()
    person = scoring.signals(lead, found, {})["form_time"]
    bot = {**lead, "form": {"started_at": "2026-11-22T09:59:58Z", "submitted_at": "2026-11-22T10:00:00Z"}}
    assert scoring.signals(bot, found, {})["form_time"] == 0.0 < person
