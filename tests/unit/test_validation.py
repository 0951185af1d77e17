"""normalise and verdict: the validate stage's facts and reasons, without a worker."""

import dataclasses
import hashlib
import json
import random
from datetime import UTC, datetime

import phonenumbers
import pytest

from pipeline.domain.leads import parse_lead
from pipeline.domain.samples import make_lead
from pipeline.domain.validation import (
    _US_FIRST,
    History,
    Normalised,
    Rejected,
    Valid,
    _phone_facts,
    _valid,
    normalise,
    normalise_phone,
    verdict,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
MIAMI = {"first_name": "Ana", "last_name": "Lopez", "email": "ana@example.com",
         "phone": "(305) 375-0142", "address": "1200 Brickell Ave", "city": "Miami",
         "state": "FL", "zip": "33131"}


def clean_lead(**contact) -> dict:
    payload = make_lead(random.Random(3), "solar", now=NOW)
    payload["contact"] = {**MIAMI, **contact}
    return parse_lead(payload, NOW)


def facts_of(**contact) -> Normalised:
    return normalise(clean_lead(**contact))


def test_phone_is_normalised_to_e164_with_its_hash():
    facts = facts_of(phone="(305) 375-0142")
    assert facts.phone_e164 == "+13053750142"
    assert facts.phone_valid and facts.phone_region == "US"
    assert facts.phone_sha256 == hashlib.sha256(b"+13053750142").hexdigest()


@pytest.mark.parametrize("spelling", ["305.375.0142", "+1 305 375 0142", "1-305-375-0142"])
def test_every_spelling_of_a_number_has_the_same_hash(spelling):
    # Duplicate detection and the buyers' pre-ping both depend on this.
    assert facts_of(phone=spelling).phone_sha256 == facts_of(phone="(305) 375-0142").phone_sha256


def test_the_intakes_phone_hash_is_the_validate_stages():
    # The consent record's phone_sha256 (intake) and the lead's (validate stage) must agree.
    rng = random.Random(5)
    phones = [make_lead(rng, now=NOW)["contact"]["phone"] for _ in range(200)]
    phones += ["", "12", "call me", "+44 20 7946 0958", "(305) 375-014", "(800) 375-0142",
               "+1 787 555 0100", "(305) 555-0142", "1-305-375-0142 ext. 7", "(555) 375-0142"]
    for phone in phones:
        facts = _phone_facts(phone)
        assert normalise_phone(phone) == (facts["phone_e164"] if facts["phone_valid"] else None)
    assert normalise_phone(MIAMI["phone"]) == facts_of().phone_e164 == "+13053750142"


def test_a_phone_is_valid_exactly_when_phonenumbers_says_so():
    # phone_valid is read from the number's type (one region look-up fewer than
    # is_valid_number()): the same answer for US, territory, foreign, toll-free and bad numbers.
    rng = random.Random(11)
    phones = [f"{rng.randrange(2 * 10**9, 10**10)}" for _ in range(300)]
    phones += [f"+{rng.randrange(1, 999)} {rng.randrange(10**6, 10**11)}" for _ in range(300)]
    phones += ["(305) 375-0142", "(800) 375-0142", "+1 787 555 0100", "+44 20 7946 0958",
               "+800 1234 5678", "(555) 375-0142", "12", "call me"]
    checked = 0
    for phone in phones:
        try:
            number = phonenumbers.parse(phone, "US")
        except phonenumbers.NumberParseException:
            assert _phone_facts(phone)["phone_valid"] is False
            continue
        checked += 1
        assert _phone_facts(phone)["phone_valid"] is phonenumbers.is_valid_number(number), phone
        # The intake's hash asks "US" first (pipeline/domain/validation.py _valid): the same answer.
        assert _valid(number) is phonenumbers.is_valid_number(number), phone
    assert checked > 500
    assert _US_FIRST          # else _valid only ever asks is_valid_number, and this test says nothing


def test_facts_are_the_dataclass_fields_as_a_dict():
    facts = facts_of()
    assert facts.facts() == dataclasses.asdict(facts)
    assert Normalised.from_facts(facts.facts()) == facts


@pytest.mark.parametrize("phone, line_type", [
    ("(305) 375-0142", "fixed_line_or_mobile"), ("(800) 375-0142", "toll_free")])
def test_line_type_is_recorded(phone, line_type):
    assert facts_of(phone=phone).phone_line_type == line_type


def test_email_is_lower_cased_and_hashed():
    facts = facts_of(email="Ana.Lopez@Gmail.COM")
    assert facts.email == "ana.lopez@gmail.com" and facts.email_domain == "gmail.com"
    assert facts.email_sha256 == hashlib.sha256(b"ana.lopez@gmail.com").hexdigest()


def test_spec_example_is_valid_though_its_number_is_a_fictional_one():
    # 555-01xx is reserved for fiction: recorded for scoring, not a reject, so the SPEC example
    # (and demos built on it) can be sold.
    facts = facts_of(phone="(305) 555-0142")
    assert facts.phone_fictional
    assert isinstance(verdict(facts, History()), Valid)
    assert not facts_of(phone="(305) 375-0142").phone_fictional


def test_zip_facts_come_from_the_zip_data():
    facts = facts_of(zip="33131-1234")
    assert (facts.zip5, facts.zip_exists, facts.zip_city, facts.zip_state) == (
        "33131", True, "Miami", "FL")
    assert facts.zip_city_match and facts.zip_state_match and facts.phone_area_matches_zip
    assert facts.zip_timezone == "America/New_York" and round(facts.zip_lat) == 26


@pytest.mark.parametrize("city, state, city_match, state_match", [
    ("Tampa", "FL", False, True),
    ("Miami", "GA", True, False),
    ("  miami ", "FL", True, True),
])
def test_zip_city_and_state_mismatch_is_recorded_not_rejected(city, state, city_match,
                                                              state_match):
    facts = facts_of(city=city, state=state)
    assert (facts.zip_city_match, facts.zip_state_match) == (city_match, state_match)
    assert isinstance(verdict(facts, History()), Valid)


def test_acceptable_city_names_match():
    assert facts_of(city="St. Petersburg", zip="33701").zip_city_match is True


def test_no_city_declared_is_no_mismatch():
    assert facts_of(city=None).zip_city_match is None


@pytest.mark.parametrize("zip_code", ["99999", "00000"])
def test_a_zip_that_does_not_exist_is_rejected(zip_code):
    facts = facts_of(zip=zip_code)
    assert not facts.zip_exists and facts.zip_city is None
    assert verdict(facts, History()) == Rejected(("unknown_zip",), None, facts)


@pytest.mark.parametrize("phone", [
    "(305) 155-0142",     # exchange cannot start with 1: not a real number
    "(204) 555-1234",     # Winnipeg: NANP, but Canada
])
def test_invalid_or_foreign_phone_is_rejected(phone):
    assert verdict(facts_of(phone=phone), History()).reasons == ("invalid_phone",)


def test_us_territory_phone_is_valid():
    facts = facts_of(phone="(787) 375-0142", city="San Juan", state="PR", zip="00901")
    assert facts.phone_region == "PR" and isinstance(verdict(facts, History()), Valid)


def test_email_that_does_not_validate_is_rejected():
    clean = clean_lead()
    facts = normalise({**clean, "contact": {**clean["contact"], "email": "not-an-email"}})
    assert facts.email is None and verdict(facts, History()).reasons == ("invalid_email",)


def test_duplicate_names_the_earlier_lead():
    result = verdict(facts_of(), History(duplicate_of="lead-1"))
    assert isinstance(result, Rejected)
    assert (result.reasons, result.duplicate_of) == (("duplicate",), "lead-1")


def test_suppressed_is_rejected():
    assert verdict(facts_of(), History(suppressed=True)).reasons == ("suppressed",)


def test_a_lead_without_consent_is_rejected():
    clean = clean_lead()
    facts = normalise({key: value for key, value in clean.items() if key != "consent"})
    assert verdict(facts, History()).reasons == ("no_consent",)


def test_every_reason_is_reported_in_a_stable_order():
    facts = facts_of(phone="(204) 555-1234", zip="99999")
    result = verdict(facts, History(duplicate_of="lead-1", suppressed=True))
    assert result.reasons == ("invalid_phone", "unknown_zip", "suppressed", "duplicate")


def test_facts_are_json_and_round_trip():
    facts = facts_of()
    stored = json.loads(json.dumps(verdict(facts, History()).facts()))
    assert Normalised.from_facts(stored) == facts
    rejected = json.loads(json.dumps(verdict(facts, History(suppressed=True)).facts()))
    assert rejected["reasons"] == ["suppressed"] and rejected["phone_e164"] == facts.phone_e164
    assert Normalised.from_facts(rejected) == facts

