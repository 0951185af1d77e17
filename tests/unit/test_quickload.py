"""The quick load of a lead (pipeline/domain/quickload.py) says yes only as marshmallow would:
the same dict, key for key and in the same order, and never to a payload marshmallow refuses."""

import copy
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validates_schema

from pipeline.domain import samples
from pipeline.domain.fields import Clock, Strict, Text, clock
from pipeline.domain.leads import _LEAD, _QUICK_LEAD, VERTICALS, InvalidLead, parse_lead
from pipeline.domain.quickload import DECLINED, quick_loader

NOW = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)

# Values a field of any kind may be sent: right and wrong types, blanks, padding, controls, NUL,
# non-NFC text, other scripts' digits, edges of numbers, strings that read as numbers or flags.
ODD_VALUES = [
    None, "", "   ", " x ", "x", 0, 1, -1, 2**70, 1.0, 1.5, float("nan"), True, False, "true", "1",
    "0", [], {}, [1], {"a": 1}, "\x00", "a\x00b", "a\x85b", "a\tb", "a\nb", "e\u0301", "\u00e9",
    "\uff11\uff12\uff13\uff14\uff15", "12345", "12345-6789", "FL", " fl ", "ZZ", "x" * 300,
    "2026-11-22T10:00:00Z", "2026-11-22T10:00:00", "2026-11-22T09:59:00+00:00", "9999-12-31T23:00-05:00",
    "203.0.113.7", "fe80::1%eth0", "::ffff:1.2.3.4", "https://example.com/x", "ftp://example.com",
    "https://cert.trustedform.com/abc", "ana@example.com", "ana@@example.com", "(305) 555-0142",
    "+44 20 7946 0958", "00000000-0000-0000-0000-000000000000", "solar", " solar ", "family",
    "excellent", "term", 10, 15, 2019, 2100, 180, 350_000, "180",
]


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


def _mutate(lead: dict, rng: random.Random) -> dict:
    lead = copy.deepcopy(lead)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        paths = list(_paths(lead))
        if not paths:
            break
        *parents, last = rng.choice(paths)
        node = lead
        for part in parents:
            node = node[part]
        action = rng.random()
        if action < 0.2:
            del node[last]
        elif action < 0.3:
            node[f"extra_{rng.randrange(3)}"] = rng.choice(ODD_VALUES)
        elif action < 0.45 and isinstance(node[last], str):
            node[last] = rng.choice(("  ", " ", "\t", "\u00a0")) + node[last] + rng.choice(("", " "))
        else:
            node[last] = copy.deepcopy(rng.choice(ODD_VALUES))
    return lead


def _marshmallow(payload):
    with clock(Clock(NOW, 300, 86400)):
        try:
            return _LEAD.load(payload), None
        except ValidationError as exc:
            return None, exc.normalized_messages()


def _quick(payload):
    with clock(Clock(NOW, 300, 86400)):
        return _QUICK_LEAD(payload)


def _leads(count: int, seed: int):
    rng = random.Random(seed)
    for i in range(count):
        yield samples.make_lead(rng, VERTICALS[i % len(VERTICALS)], now=NOW - timedelta(seconds=30))


def test_every_sample_lead_loads_quickly_as_marshmallow_loads_it():
    for lead in _leads(700, seed=1):
        loaded, errors = _marshmallow(lead)
        assert errors is None
        quick = _quick(lead)
        assert quick is not DECLINED
        # The same values, the same key order (what json.dumps writes into the row).
        assert json.dumps(quick) == json.dumps(loaded)


@pytest.mark.parametrize("seed", range(4))
def test_a_mutated_lead_is_either_loaded_as_marshmallow_loads_it_or_left_to_marshmallow(seed):
    rng = random.Random(seed)
    quick_yes = refused = 0
    for lead in _leads(500, seed=100 + seed):
        payload = _mutate(lead, rng)
        loaded, errors = _marshmallow(payload)
        quick = _quick(payload)
        if quick is DECLINED:
            refused += errors is not None
            continue
        quick_yes += 1
        assert errors is None, (payload, errors)
        assert json.dumps(quick) == json.dumps(loaded)
        # parse_lead gives the same either way.
        assert parse_lead(payload, NOW) == loaded
    assert quick_yes > 50 and refused > 100           # both paths were taken, many times


def test_a_refused_payload_gets_marshmallows_errors_from_parse_lead():
    rng = random.Random(9)
    seen = 0
    for lead in _leads(300, seed=200):
        payload = _mutate(lead, rng)
        loaded, errors = _marshmallow(payload)
        if errors is None:
            continue
        seen += 1
        with pytest.raises(InvalidLead) as refused:
            parse_lead(payload, NOW)
        assert refused.value.errors == errors
    assert seen > 50


def test_schema_validators_and_post_load_run_on_the_quick_path():
    lead = next(_leads(1, seed=3))
    lead["form"] = {"started_at": "2026-11-22T10:00:00Z", "submitted_at": "2026-11-22T09:00:00Z"}
    assert _quick(lead) is DECLINED                    # submitted before started: marshmallow's
    assert _marshmallow(lead)[1] == {"form": {"submitted_at": ["Must not be earlier than started_at."]}}
    lead["form"] = None
    quick = _quick(lead)
    assert quick["form"] is None
    assert len(quick["consent"]["text_sha256"]) == 64   # ConsentSchema's post_load


def test_a_schema_it_cannot_follow_always_declines():
    class Keyed(Strict):
        name = Text(data_key="Name")

    class Defaulted(Strict):
        name = Text(load_default="x")

    class Loose(Schema):
        class Meta:
            unknown = EXCLUDE

        name = Text()

    for schema in (Keyed(), Defaulted(), Loose()):
        assert quick_loader(schema)({"name": "x"}) is DECLINED
        assert quick_loader(schema)({}) is DECLINED


def test_field_kinds_it_does_not_know_go_through_the_fields_own_deserialize():
    class Odd(Strict):
        rate = fields.Float(allow_none=True)
        tags = fields.List(fields.String(), allow_none=True)
        name = Text()

        @validates_schema
        def named(self, data, **kwargs):
            if data.get("name") == "no":
                raise ValidationError("no", "name")

        @post_load
        def mark(self, data, **kwargs):
            return {**data, "marked": True}

    load = quick_loader(Odd())
    assert load({"rate": "1.5", "tags": ["a"], "name": " x "}) == {
        "rate": 1.5, "tags": ["a"], "name": "x", "marked": True}
    assert load({"rate": "x"}) is DECLINED
    assert load({"name": "no"}) is DECLINED
    assert load({"other": 1}) is DECLINED
    assert load([]) is DECLINED


def test_a_text_fields_length_is_the_loaded_values_as_marshmallow_checks_it():
    class Tripled(Text):
        def _deserialize(self, value, attr, data, **kwargs):
            return super()._deserialize(value, attr, data, **kwargs) * 3

    class Short(Strict):
        word = Tripled(max_length=6)

    load = quick_loader(Short())
    assert load({"word": "ab"}) == Short().load({"word": "ab"}) == {"word": "ababab"}
    assert load({"word": "abc"}) is DECLINED                 # 9 characters once loaded
    with pytest.raises(ValidationError):
        Short().load({"word": "abc"})


def test_a_marshmallow_whose_private_steps_changed_gets_marshmallows_own_load(monkeypatch, caplog):
    """A later marshmallow that renamed a private step, or changed what it takes, must cost
    speed, never a lead: every loader declines and parse_lead loads as marshmallow does."""
    from pipeline.domain import leads, quickload

    def renamed_argument(self, *, errors, data, many):
        raise AssertionError("never called")

    leads_in = list(_leads(40, seed=5))
    for name, replacement in (("_invoke_field_validators", renamed_argument),
                              ("_invoke_load_processors", None)):
        with monkeypatch.context() as patched:
            patched.setattr(Schema, name, replacement) if replacement else patched.delattr(Schema, name)
            patched.setattr(quickload, "_warned", [])
            with caplog.at_level("WARNING", logger="pipeline.domain.quickload"):
                loader = quick_loader(leads.LeadSchema(), special=leads._quick_qualifiers)
            assert caplog.records and name in caplog.records[-1].getMessage()
        assert all(loader(lead) is DECLINED for lead in leads_in)
    # Every payload then goes to marshmallow's own load (here the real one): the same leads.
    monkeypatch.setattr(leads, "_QUICK_LEAD", loader)
    for lead in leads_in:
        assert parse_lead(lead, NOW) == _marshmallow(lead)[0]


def test_a_marshmallow_whose_private_modules_moved_still_loads_every_lead():
    """Its private modules gone, pipeline.domain.leads still imports and loads by marshmallow."""
    import subprocess
    import sys
    program = (
        "import sys, marshmallow; sys.modules['marshmallow.error_store'] = None\n"
        "from datetime import UTC, datetime\n"
        "import random\n"
        "from pipeline.domain import leads, quickload, samples\n"
        "assert leads._QUICK_LEAD is quickload._declines\n"
        "now = datetime.now(UTC)\n"
        "lead = samples.make_lead(random.Random(1), 'solar', now=now)\n"
        "print(leads.parse_lead(lead, now)['vertical'])\n")
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "solar"
    assert "loaded by marshmallow itself" in ran.stderr
