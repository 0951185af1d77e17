"""Each score signal at its edges: what a lead must look like to earn 1, something between, or 0."""
from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.domain import scoring
from pipeline.domain.leads import parse_lead
from pipeline.domain.samples import make_lead
from pipeline.domain.validation import normalise

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LEAD = parse_lead(make_lead(random.Random(3), "solar", now=NOW), NOW)
FOUND = normalise(LEAD)


def signal(name: str, lead_changes: dict | None = None, context: dict | None = None, **facts) -> float:
    lead = {**LEAD, **(lead_changes or {})}
    return scoring.signals(lead, dataclasses.replace(FOUND, **facts), context or {})[name]


def form(seconds: float) -> dict:
    return {"form": {"started_at": (NOW - timedelta(seconds=seconds)).isoformat(),
                     "submitted_at": NOW.isoformat()}}


@pytest.mark.parametrize("seconds,value", [(0, 0.0), (4.9, 0.0), (5, 0.4), (14.9, 0.4), (15, 1.0),
                                           (1800, 1.0), (1801, 0.6)])
def test_form_time(seconds, value):
    assert signal("form_time", form(seconds)) == value


def test_form_time_unknown_is_the_middle():
    assert signal("form_time", {"form": None}) == 0.5
    assert signal("form_time", {"form": {"started_at": None, "submitted_at": NOW.isoformat()}}) == 0.5


@pytest.mark.parametrize("same_ip,factor", [(0, 1.0), (2, 1.0), (3, 0.5), (9, 0.5), (10, 0.0)])
def test_many_leads_from_one_ip_cut_the_form_time(same_ip, factor):
    assert signal("form_time", form(60), {"same_ip_24h": same_ip}) == factor


@pytest.mark.parametrize("first,last,value", [
    ("Ana", "Lopez", 1.0), (" Ana ", " Lopez ", 1.0), ("Mary-Jo", "O'Neil Jr.", 1.0),
    ("", "Lopez", 0.0), ("Ana", "  ", 0.0), ("ana", "ANA", 0.3), ("A", "Lopez", 0.3), ("Ana", "L", 0.3),
    ("Ana", "L0pez", 0.4), ("An@", "Lopez", 0.4), ("Ana", "Lo", 1.0), ("Al", "Lopez", 1.0),
])
def test_name_quality(first, last, value):
    contact = {**LEAD["contact"], "first_name": first, "last_name": last}
    assert signal("name_quality", {"contact": contact}) == value


@pytest.mark.parametrize("consent,value", [
    ({"trustedform_cert_url": "https://cert.trustedform.com/abc"}, 1.0),
    ({"jornaya_leadid": "F1A2B3C4-0000-4000-8000-000000000000"}, 1.0),
    ({"page_url": "https://x.example/", "user_agent": "Mozilla"}, 0.7),
    ({"page_url": "https://x.example/"}, 0.5), ({"user_agent": "Mozilla"}, 0.5), ({}, 0.5),
])
def test_consent_strength(consent, value):
    assert signal("consent_strength", {"consent": consent}) == value
    assert signal("consent_strength", {"consent": None}) == 0.5


@pytest.mark.parametrize("line,value", [("mobile", 1.0), ("fixed_line", 0.7), ("voip", 0.3),
                                        ("premium_rate", 0.0), ("unknown", 0.5), ("pager", 0.5)])
def test_phone_line_type(line, value):
    assert signal("phone_line_type", phone_line_type=line) == value


@pytest.mark.parametrize("name,facts,value", [
    ("phone_valid", {"phone_valid": True, "phone_fictional": False}, 1.0),
    ("phone_valid", {"phone_valid": False, "phone_fictional": False}, 0.0),
    ("phone_valid", {"phone_valid": True, "phone_fictional": True}, 0.0),
    ("phone_area_matches_zip", {"phone_area_matches_zip": True}, 1.0),
    ("phone_area_matches_zip", {"phone_area_matches_zip": False}, 0.3),
    ("phone_area_matches_zip", {"phone_area_matches_zip": None}, 0.5),
    ("email_valid", {"email_valid": False}, 0.0),
    ("email_valid", {"email_valid": True}, 1.0),
    ("email_domain", {"email_domain": "gmail.com"}, 1.0),
    ("email_domain", {"email_domain": "yopmail.com"}, 0.0),
    ("email_domain", {"email_domain": None}, 1.0),
    ("zip_exists", {"zip_exists": False}, 0.0),
    ("zip_exists", {"zip_exists": True}, 1.0),
    ("zip_state_match", {"zip_state_match": True}, 1.0),
    ("zip_state_match", {"zip_state_match": False}, 0.0),
    ("zip_state_match", {"zip_state_match": None}, 0.5),
    ("zip_city_match", {"zip_city_match": True}, 1.0),
])
def test_facts_signals(name, facts, value):
    assert signal(name, **facts) == value


def test_contact_and_qualifier_completeness():
    contact = {**LEAD["contact"], "address": None, "city": ""}
    assert signal("contact_complete", {"contact": contact}) == 0.5
    assert signal("contact_complete") == 1.0
    # Solar asks 6 questions: two answered of six, a None not counted.
    answers = {"homeowner": True, "monthly_electric_bill": 120, "roof_shade": None}
    assert signal("qualifiers_complete", {"qualifiers": answers}) == pytest.approx(2 / 6)
    assert signal("vertical_fit", {"qualifiers": answers}) == 1.0
    assert signal("vertical_fit", {"qualifiers": {"homeowner": False, "monthly_electric_bill": 60}}) \
        == pytest.approx(0.2)


def test_the_score_is_the_weighted_sum_clamped_to_0_100_with_signals_to_3_places():
    assert scoring.total({"a": 1.0, "b": 0.5}, {"a": 10, "b": 20}) == 20
    assert scoring.total({"a": 1.0}, {"a": 150}) == 100
    assert scoring.total({"a": 1.0}, {"a": -5}) == 0
    result = scoring.score(LEAD, FOUND, {}, weights={**dict.fromkeys(scoring.WEIGHTS, 0), "phone_valid": 37})
    assert result.total == 37
    odd = scoring.score({**LEAD, "qualifiers": {"homeowner": True}}, FOUND, {})
    assert odd.signals["qualifiers_complete"] == 0.167
