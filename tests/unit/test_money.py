"""Money and the score as numbers: what a buyer is charged, what a bid may look like, rounding."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pipeline.domain import scoring
from pipeline.domain.auction import Bid
from pipeline.domain.modes import tier_mode
from pipeline.domain.money import parse_bid, to_cents
from pipeline.protocols.native import read_ping_answer


@pytest.mark.parametrize("said,cents", [
    (10.005, 1000), ("10.005", 1000), (Decimal("10.009"), 1000), (0.995, 99), (0.29, 29),
    (22.4, 2240), ("22.40", 2240), (12, 1200), ("12", 1200), (0, 0),
])
def test_a_sub_cent_bid_is_rounded_down_never_up(said, cents):
    assert parse_bid(said) == cents
    assert to_cents(Decimal(str(said))) == cents


def test_a_sub_floor_bid_never_wins_by_rounding():
    answer = read_ping_answer(200, json.dumps({"accept": True, "bid": 0.995}).encode(), None, 1)
    assert answer.bid_cents == 99
    bids = [Bid("p", "b", 0, answer.outcome, answer.bid_cents)]
    assert tier_mode("auction").candidates(bids, 100) == []


@pytest.mark.parametrize("said", [
    "1_000", "١٢", "１２", " 12", "12 ", "+12", "-1", "1e3", "12.", ".5", "0x10", "NaN", "Infinity",
    "$22.40", "22,40", "", True, None, [12], {"amount": 12}, float("nan"), float("inf"), -0.01,
    10 ** 400, "9" * 5000,
])
def test_a_bid_is_a_json_number_or_a_plain_decimal_string_nothing_else(said):
    assert parse_bid(said) is None


def test_an_integration_may_allow_a_dollar_sign():
    assert parse_bid("$22.40", currency_sign=True) == 2240
    assert parse_bid("22.40", currency_sign=True) == 2240
    assert parse_bid("$$22.40", currency_sign=True) is None


@pytest.mark.parametrize("weight,total", [(49.5, 50), (50.5, 51), (51.5, 52), (49.49, 49), (72.5, 73)])
def test_the_score_rounds_half_up(weight, total):
    assert scoring.total({"phone_valid": 1.0}, {"phone_valid": weight}) == total
