"""The tree file's checks, without a database: money in cents, every problem at once, cross checks.
(Loading it into PostgreSQL: tests/integration/test_tree.py.)"""
from __future__ import annotations

import json

import pytest

from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import InvalidTree, parse_tree

BUYER = {"id": "provider-a", "tier": 1, "verticals": ["solar"], "bid": 34.00,
         "ping_url": "https://buyer.example/ping", "post_url": "https://buyer.example/post",
         "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
TREE = {"network": {"score_floor": 50, "bid_floor": 1.00}, "tiers": [{"tier": 1, "mode": "auction"}],
        "buyers": [BUYER]}


def test_spec_example_parses_with_money_in_cents():
    tree = parse_tree(json.dumps(TREE), VERTICALS)
    assert tree["buyers"][0]["bid_cents"] == 3400
    assert tree["network"]["bid_floor_cents"] == 100
    assert tree["network"]["auction_timeout_ms"] == 10000


def test_float_bid_is_exact():
    tree = parse_tree(json.dumps({**TREE, "buyers": [{**BUYER, "bid": 0.29}]}), VERTICALS)
    assert tree["buyers"][0]["bid_cents"] == 29


def test_every_problem_is_listed_at_once():
    bad = {**TREE, "buyers": [
        {**BUYER, "id": "x", "tier": 9},
        {**BUYER, "id": "y", "ping_url": "ftp://nope"},
        {**BUYER, "id": "z", "bid": -1},
        {**BUYER, "id": "w", "colour": "red"},
    ]}
    with pytest.raises(InvalidTree) as caught:
        parse_tree(json.dumps(bad), VERTICALS)
    errors = caught.value.errors["buyers"]
    # Field problems are reported first (marshmallow), cross checks after a clean load.
    assert "bid" in errors["z"] and "colour" in errors["w"]


def test_cross_checks_name_unknown_tier_and_insecure_url():
    bad = {**TREE, "buyers": [{**BUYER, "id": "x", "tier": 9},
                              {**BUYER, "id": "y", "ping_url": "http://buyer.example/ping"},
                              {**BUYER, "id": "x", "verticals": ["pets"]}]}
    with pytest.raises(InvalidTree) as caught:
        parse_tree(json.dumps(bad), VERTICALS)
    errors = caught.value.errors["buyers"]
    # Buyers are named by id; one whose id is listed twice, by its place in the list.
    assert errors[0] == {"tier": ["unknown tier 9"]}
    assert errors["y"] == {"ping_url": ["must be https"]}
    assert "listed twice" in errors[2]["id"][0] and "pets" in errors[2]["verticals"][0]
    assert caught.value.private_urls


def test_private_flag_allows_plain_http_for_local_buyers():
    local = {**TREE, "buyers": [{**BUYER, "ping_url": "http://127.0.0.1:9100/a/ping"}]}
    assert parse_tree(json.dumps(local), VERTICALS, allow_private=True)
    with pytest.raises(InvalidTree):
        parse_tree(json.dumps(local), VERTICALS, allow_private=False)



@pytest.mark.parametrize(("url", "position"), [
    ("https://buyer.example/my ping", 25), ("https://buyer.example/ping\t", 27),
    ("https://buyer.example/p\x00ing", 24), ("https://buyer.example/\u00a0ping", 23)])
def test_a_url_with_a_space_or_control_character_is_refused_by_its_place(url, position):
    # The HTTP engine sends a URL as it is written and refuses one with a space at every ping:
    # the tree refuses it at load, naming the field and the character's place.
    with pytest.raises(InvalidTree) as caught:
        parse_tree(json.dumps({**TREE, "buyers": [{**BUYER, "post_url": url}]}), VERTICALS)
    problem = caught.value.errors["buyers"]["provider-a"]["post_url"][0]
    assert f"at position {position}: percent-encode it" in problem
    encoded = {**BUYER, "post_url": "https://buyer.example/my%20ping"}
    assert parse_tree(json.dumps({**TREE, "buyers": [encoded]}), VERTICALS)
