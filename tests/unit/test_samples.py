"""The sample generator: realistic leads that pass intake and validation, deterministically."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest

from pipeline.domain.leads import VERTICALS, InvalidLead, parse_lead
from pipeline.domain.samples import SAMPLE_NOW, make_bad_leads, make_lead
from pipeline.domain.validation import History, Valid, normalise, verdict

NOW = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample_leads() -> list[tuple[dict, dict]]:
    rng = random.Random(2026)
    payloads = [make_lead(rng, now=NOW) for _ in range(500)]
    return [(payload, parse_lead(payload, NOW)) for payload in payloads]


def test_500_sample_leads_pass_intake_and_validation(sample_leads):
    for payload, clean in sample_leads:
        facts = normalise(clean)
        assert isinstance(verdict(facts, History()), Valid), payload
        # Consistent places: the ZIP is real and agrees with the city, state and area code.
        assert facts.zip_city_match and facts.zip_state_match and facts.phone_area_matches_zip


def test_sample_phones_are_real_numbers_not_fiction(sample_leads):
    for payload, _ in sample_leads:
        number = phonenumbers.parse(payload["contact"]["phone"], "US")
        assert phonenumbers.is_valid_number(number)
        assert str(number.national_number)[3:6] != "555"


def test_sample_phones_and_emails_rarely_collide(sample_leads):
    facts = [normalise(clean) for _, clean in sample_leads]
    assert len({f.phone_e164 for f in facts}) == len(facts)
    assert len({f.email for f in facts}) == len(facts)


def test_sample_mix_covers_every_vertical_and_leans_on_florida(sample_leads):
    verticals = Counter(clean["vertical"] for _, clean in sample_leads)
    states = Counter(clean["contact"]["state"] for _, clean in sample_leads)
    assert set(verticals) == set(VERTICALS)
    assert states.most_common(1)[0][0] == "FL" and len(states) > 20


def test_sample_form_timing_and_consent(sample_leads):
    for payload, clean in sample_leads:
        started = datetime.fromisoformat(payload["form"]["started_at"])
        assert timedelta(seconds=20) <= NOW - started <= timedelta(seconds=300)
        assert datetime.fromisoformat(clean["consent"]["timestamp"]) == NOW
        assert clean["consent"]["text"] and clean["consent"]["ip"]


def test_same_seed_same_lead_and_a_chosen_vertical():
    first = make_lead(random.Random(5), "mortgage", now=NOW)
    assert first == make_lead(random.Random(5), "mortgage", now=NOW)
    assert first != make_lead(random.Random(6), "mortgage", now=NOW)
    assert first["vertical"] == "mortgage"


def error_paths(errors: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    return [path for key, value in errors.items()
            for path in (error_paths(value, (*prefix, key)) if isinstance(value, dict)
                         else [(*prefix, key)])]


@pytest.mark.parametrize("name, payload, path", make_bad_leads(),
                         ids=[name for name, _, _ in make_bad_leads()])
def test_each_bad_lead_fails_at_its_path_and_only_there(name, payload, path):
    with pytest.raises(InvalidLead) as caught:
        parse_lead(payload, SAMPLE_NOW)
    assert error_paths(caught.value.errors) == [path]


def test_bad_leads_are_stamped_with_the_clock_they_are_given():
    later = SAMPLE_NOW + timedelta(days=30)
    for _, payload, path in make_bad_leads(later):
        with pytest.raises(InvalidLead) as caught:
            parse_lead(payload, later)
        assert error_paths(caught.value.errors) == [path]
