"""The tree file's checks without a database: every mistake refused at load, by its path."""
from __future__ import annotations

import json

import pytest

from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import InvalidTree, parse_tree

BUYER = {"id": "b1", "tier": 1, "verticals": ["solar"], "bid": 34.00,
         "ping_url": "https://buyer.example/ping", "post_url": "https://buyer.example/post",
         "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
TREE = {"network": {"score_floor": 50, "bid_floor": 1.00}, "tiers": [{"tier": 1}], "buyers": [BUYER]}


def errors_of(text: str) -> dict:
    with pytest.raises(InvalidTree) as caught:
        parse_tree(text, VERTICALS)
    return caught.value.errors


def with_buyer(**changes) -> str:
    return json.dumps({**TREE, "buyers": [{**BUYER, **changes}]})


def refused_at(changes: dict, path: tuple) -> list[str]:
    """The messages at ``path`` of the one buyer changed by ``changes``."""
    [found] = errors_of(with_buyer(**changes))["buyers"].values()   # by id, or place if no id
    for key in path:
        found = found[key]
    return found


def test_a_file_without_network_takes_the_defaults():
    tree = parse_tree(json.dumps({"tiers": [{"tier": 1}], "buyers": [BUYER]}), VERTICALS)
    assert tree["network"] == {**tree["network"], "score_floor": 50, "bid_floor_cents": 100,
                               "auction_timeout_ms": 10000, "max_cycles": 2, "rerun_interval_s": 300,
                               "duplicate_window_h": 24, "stuck_after_s": 60}


@pytest.mark.parametrize("changes,path", [
    ({"min_score": 72.9}, ("min_score",)),
    ({"min_score": 72.0}, ("min_score",)),
    ({"min_score": "72"}, ("min_score",)),
    ({"min_score": True}, ("min_score",)),
    ({"tier": 1.9}, ("tier",)),
    ({"caps": {"daily": 10.7}}, ("caps", "daily")),
    ({"caps": {"daily": 2**31}}, ("caps", "daily")),
    ({"priority": 2**31}, ("priority",)),
    ({"priority": -(2**31) - 1}, ("priority",)),
    ({"timeout_ms": 3000.5}, ("timeout_ms",)),
])
def test_an_integer_field_is_never_truncated_nor_too_wide_for_the_database(changes, path):
    assert refused_at(changes, path)


def test_a_network_integer_is_refused_by_name():
    assert "max_cycles" in errors_of(json.dumps({**TREE, "network": {"max_cycles": 2.5}}))["network"]


def test_the_widest_integers_the_database_takes_are_fine():
    tree = parse_tree(with_buyer(priority=2**31 - 1, caps={"daily": 2**31 - 1}), VERTICALS)
    assert tree["buyers"][0]["priority"] == 2**31 - 1


def test_a_duplicate_key_is_refused_not_last_one_wins():
    text = json.dumps(TREE).replace('"bid": 34.0', '"bid": 10, "bid": 1000')
    assert '"bid": 10, "bid": 1000' in text
    assert errors_of(text)["buyers"]["b1"]["bid"] == ["is given twice in one object: say it once"]
    nested = json.dumps(TREE).replace('"score_floor": 50', '"score_floor": 50, "score_floor": 0')
    assert "score_floor" in errors_of(nested)["network"]


@pytest.mark.parametrize("changes,path", [
    ({"geo": {"radius": {"zip": "00000", "miles": 50}}}, ("geo", "radius", "zip")),
    ({"geo": {"states": ["FL\n"]}}, ("geo", "states", 0)),
    ({"geo": {"states": ["ZZ"]}}, ("geo", "states", 0)),
    ({"geo": {"zips": ["33131\n"]}}, ("geo", "zips", 0)),
    ({"id": "b1\n"}, ("id",)),
    ({"schedule": {"start": "08:00\n"}}, ("schedule", "start")),
    ({"schedule": {"start": "08:00", "end": "08:00"}}, ("schedule", "end")),
    ({"schedule": {"start": "24:00", "end": "08:00"}}, ("schedule", "start")),
    ({"rules": [{"field": "qualifiers.homeowner\n", "op": "exists"}]}, ("rules", 0, "field")),
    ({"bid": 10.005}, ("bid",)),
    ({"caps": {"daily_budget": 0.001}}, ("caps", "daily_budget")),
])
def test_a_value_that_cannot_work_is_refused_at_load(changes, path):
    assert refused_at(changes, path)


def test_nan_anywhere_is_refused_by_path():
    text = with_buyer(rules=[{"field": "qualifiers.monthly_electric_bill", "op": "gt", "value": 1}])
    text = text.replace('"value": 1', '"value": NaN')
    assert errors_of(text)["buyers"]["b1"]["rules"][0]["value"][0] == "NaN is not a number"
    assert "bid_floor" in errors_of(json.dumps(TREE).replace("1.0", "Infinity"))["network"]


def test_a_budget_is_not_bounded_by_the_largest_bid():
    tree = parse_tree(with_buyer(caps={"monthly_budget": 250000.00}), VERTICALS)
    assert tree["buyers"][0]["caps"] == {"monthly_budget": 25000000}


def test_schema_mistakes_and_cross_checks_are_reported_together():
    bad = {**TREE, "tiers": [{"tier": 1}, {"tier": 1}], "buyers": [
        {**BUYER, "id": "x", "tier": 9},                     # a cross check: unknown tier
        {**BUYER, "id": "y", "bid": -1},                     # a field
        {**BUYER, "id": "x", "verticals": ["pets"], "colour": "red"},   # both kinds at once
        {**BUYER, "id": "z", "ping_url": "ftp://nope", "min_score": 1.5}]}
    errors = errors_of(json.dumps(bad))
    assert errors["tiers"][1]["tier"] == ["tier 1 is listed twice"]
    assert errors["buyers"][0] == {"tier": ["unknown tier 9"]}
    assert list(errors["buyers"]["y"]) == ["bid"]
    assert set(errors["buyers"][2]) == {"id", "verticals", "colour"}
    assert set(errors["buyers"]["z"]) == {"ping_url", "min_score"}


@pytest.mark.parametrize("verticals,rule,key", [
    (["solar"], {"field": "qualifiers.homeowner", "op": "eq", "value": 1}, "value"),
    (["solar"], {"field": "qualifiers.homeowner", "op": "gt", "value": 0}, "value"),
    (["solar"], {"field": "qualifiers.homeowner", "op": "in", "value": [1, 0]}, "value"),
    (["auto_insurance"], {"field": "qualifiers.drivers", "op": "eq", "value": True}, "value"),
    (["auto_insurance"], {"field": "qualifiers.drivers", "op": "eq", "value": "2"}, "value"),
    (["mortgage"], {"field": "qualifiers.credit_rating", "op": "eq", "value": "poorr"}, "value"),
    (["mortgage"], {"field": "qualifiers.credit_rating", "op": "ne", "value": None}, "value"),
    (["debt_relief"], {"field": "qualifiers.debt_types", "op": "eq", "value": "medical"}, "op"),
    (["debt_relief"], {"field": "qualifiers.debt_types", "op": "not_in", "value": ["studentloan"]},
     "value"),
    (["solar"], {"field": "qualifiers.colour", "op": "exists"}, "field"),
    (["solar"], {"field": "contact.email", "op": "exists"}, "field"),
    (["solar"], {"field": "score", "op": "gte", "value": "50"}, "value"),
    (["solar"], {"field": "qualifiers.homeowner", "op": "exists", "value": "yes"}, "value"),
])
def test_a_rule_that_cannot_match_the_verticals_types_is_refused_naming_it(verticals, rule, key):
    errors = errors_of(with_buyer(verticals=verticals, rules=[{"field": "score", "op": "gte", "value": 1},
                                                              rule]))
    assert list(errors["buyers"]["b1"]["rules"]) == [1]
    assert key in errors["buyers"]["b1"]["rules"][1]


@pytest.mark.parametrize("verticals,rule,message", [
    (["solar", "mortgage"], {"field": "qualifiers.colour", "op": "eq", "value": "red"},
     {"field": ["qualifiers.colour is not a field of a solar / mortgage lead"]}),
    (["solar"], {"field": "qualifiers.homeowner.x", "op": "eq", "value": True},
     {"field": ["qualifiers.homeowner.x is not a field of a solar lead"]}),
    (["solar"], {"field": "qualifiers.homeowner", "op": "exists", "value": 1},
     {"value": ["exists takes true, false or null"]}),
    (["debt_relief"], {"field": "qualifiers.debt_types", "op": "ne", "value": "medical"},
     {"op": ["qualifiers.debt_types is a list: use in, not_in or exists"]}),
    (["debt_relief"], {"field": "qualifiers.debt_types", "op": "in", "value": []},
     {"value": ["qualifiers.debt_types is list of text: in needs text among credit_card, medical,"
                " personal_loan, student_loan, collections, other"]}),
    (["mortgage"], {"field": "qualifiers.credit_rating", "op": "in", "value": ["good", "poorr"]},
     {"value": ["qualifiers.credit_rating is text: in needs text among excellent, good, fair, poor"]}),
    (["life_insurance"], {"field": "qualifiers.term_years", "op": "eq", "value": 12},
     {"value": ["qualifiers.term_years is number: eq needs number among 10, 15, 20, 25, 30"]}),
    (["solar"], {"field": "vertical", "op": "eq", "value": "pets"},
     {"value": ["vertical is text: eq needs text among auto_insurance, home_insurance, health_insurance,"
                " life_insurance, mortgage, solar, debt_relief"]}),
    (["solar"], {"field": "qualifiers.homeowner", "op": "gt", "value": 0},
     {"value": ["qualifiers.homeowner is boolean: gt needs a number field"]}),
    (["solar"], {"field": "qualifiers.homeowner", "op": "eq", "value": 1},
     {"value": ["qualifiers.homeowner is boolean: eq needs boolean"]}),
])
def test_a_refused_rule_says_what_would_match(verticals, rule, message):
    assert errors_of(with_buyer(verticals=verticals, rules=[rule]))["buyers"]["b1"]["rules"][0] == message


@pytest.mark.parametrize("verticals,rule", [
    (["life_insurance"], {"field": "qualifiers.term_years", "op": "gt", "value": 12}),
    (["life_insurance"], {"field": "qualifiers.term_years", "op": "eq", "value": 20}),
    (["solar"], {"field": "qualifiers.homeowner", "op": "eq", "value": True}),
    (["solar"], {"field": "qualifiers.monthly_electric_bill", "op": "gte", "value": 99.5}),
    (["solar", "mortgage"], {"field": "qualifiers.credit_rating", "op": "in", "value": ["good", "fair"]}),
    (["debt_relief"], {"field": "qualifiers.debt_types", "op": "not_in", "value": ["student_loan"]}),
    (["debt_relief"], {"field": "qualifiers.debt_types", "op": "in", "value": ["medical", "other"]}),
    (["debt_relief"], {"field": "qualifiers.debt_types", "op": "exists", "value": False}),
    (["solar"], {"field": "geo.state", "op": "in", "value": ["FL", "GA"]}),
    (["solar"], {"field": "vertical", "op": "eq", "value": "solar"}),
    (["solar", "mortgage"], {"field": "qualifiers.loan_amount", "op": "gte", "value": 100000}),
])
def test_rules_that_can_match_load(verticals, rule):
    assert parse_tree(with_buyer(verticals=verticals, rules=[rule]), VERTICALS)["buyers"][0]["rules"]


def _parse(**buyer) -> dict:
    return parse_tree(with_buyer(**buyer), VERTICALS)


def test_state_codes_and_times_are_taken_as_intake_takes_them():
    buyer = _parse(geo={"states": ["fl", "Ny"]}, schedule={"start": "8:00", "end": "20:30"})["buyers"][0]
    assert buyer["geo"] == {"states": ["FL", "NY"]}
    assert (buyer["schedule"]["start"], buyer["schedule"]["end"]) == ("08:00", "20:30")


@pytest.mark.parametrize("buyer, path, words", [
    ({"geo": {"states": ["Florida"]}}, ("geo", "states", 0), "2-letter USPS state code"),
    ({"schedule": {"start": "8am"}}, ("schedule", "start"), "HH:MM, e.g. 08:00"),
    ({"geo": {"zips": ["3313"]}}, ("geo", "zips", 0), "5-digit ZIP code"),
])
def test_a_pattern_error_says_what_the_pattern_is(buyer, path, words):
    with pytest.raises(InvalidTree) as caught:
        _parse(**buyer)
    node = caught.value.errors["buyers"]["b1"]
    for key in path:
        node = node[key]
    assert words in " ".join(node)


@pytest.mark.parametrize("url", ["https://127.0.0.1/ping", "https://10.1.2.3/p", "https://localhost/p",
                                 "https://[::1]/p", "http://buyer.example/p"])
def test_private_or_plain_urls_are_refused_unless_allowed(url):
    with pytest.raises(InvalidTree) as caught:
        _parse(ping_url=url)
    assert caught.value.private_urls
    assert parse_tree(json.dumps({"tiers": [{"tier": 1}], "buyers": [{**BUYER, "ping_url": url}]}),
                      VERTICALS, allow_private=True)


def test_the_json_schema_takes_what_tree_load_takes_and_refuses_what_it_refuses():
    import jsonschema

    from pipeline.entrypoints.cli.tree import json_schema
    from tests.unit.test_docs import ROOT, _json_blocks
    validator = jsonschema.Draft7Validator(json_schema())
    trees = [json.loads((ROOT / "config" / "examples" / "tree.json").read_text())]
    trees += [json.loads(block) for _, block in _json_blocks(ROOT / "docs" / "tree.md") if '"tiers"' in block]
    for tree in trees:
        assert not list(validator.iter_errors(tree))
    good = {"tiers": [{"tier": 1}], "buyers": [BUYER]}
    for bad in ({**good, "colour": "red"}, {"buyers": [BUYER]},
                {**good, "buyers": [{**BUYER, "timeout_ms": 10}]},
                {**good, "tiers": [{"tier": 1, "mode": "lottery"}]}):
        assert list(validator.iter_errors(bad)), bad
