"""Tier modes without a worker: who wins an auction, a waterfall, and whose turn it is in round robin."""
from __future__ import annotations

from collections import Counter

import pytest

from pipeline.domain.auction import Bid
from pipeline.domain.buyers import Buyer, Usage
from pipeline.domain.modes import MODES, Mode, tier_mode

BIDS = [Bid("p1", "a", 0, "accept", 2000), Bid("p2", "b", 1, "accept", 3000),
        Bid("p3", "c", 2, "accept", 3000), Bid("p4", "d", 3, "reject", None),
        Bid("p5", "e", 4, "accept", 50), Bid("p6", "f", 5, "post_rejected", 9000),
        Bid("p7", "g", 6, "late", 9999)]


def buyer(id_: str, **kw) -> Buyer:
    return Buyer(id=id_, name=id_, tier=1, verticals=("solar",), ping_url="https://b/ping",
                 post_url="https://b/post", **kw)


def test_every_mode_has_a_strategy_and_an_unknown_one_is_refused():
    assert set(MODES) == {"auction", "waterfall", "round_robin"}
    assert tier_mode("round_robin").mode is Mode.ROUND_ROBIN
    with pytest.raises(ValueError):
        tier_mode("lottery")


def test_first_price_auction_takes_highest_bid_above_floor_ties_to_rank():
    assert [b.buyer_id for b in tier_mode("auction").candidates(BIDS, 100)] == ["b", "c", "a"]


@pytest.mark.parametrize("mode", ["waterfall", "round_robin"])
def test_a_walk_keeps_rank_order_so_the_first_accept_wins(mode):
    assert [b.buyer_id for b in tier_mode(mode).candidates(BIDS, 100)] == ["a", "b", "c"]


def test_only_an_auction_pings_everyone_at_once_in_shards():
    auction, waterfall = tier_mode("auction"), tier_mode("waterfall")
    assert (auction.walks, auction.shard_count(5, 2), auction.deadline_binds) == (False, 3, True)
    assert (waterfall.walks, waterfall.shard_count(5, 2), waterfall.deadline_binds) == (True, 1, False)


def test_round_robin_starts_after_the_previous_place_even_when_it_is_not_eligible():
    robin = tier_mode("round_robin")
    every = {i: buyer(i) for i in "abcd"}
    eligible = [every[i] for i in "abd"]                 # c is capped / paused / filtered out
    assert [b.id for b in robin.order(eligible, {}, every["c"])] == ["d", "a", "b"]
    assert [b.id for b in robin.order(eligible, {}, every["b"])] == ["d", "a", "b"]
    assert [b.id for b in robin.order(eligible, {}, every["d"])] == ["a", "b", "d"]
    assert [b.id for b in robin.order(eligible, {}, None)] == ["a", "b", "d"]


def test_round_robin_turns_over_priority_then_id_not_bid():
    robin = tier_mode("round_robin")
    eligible = [buyer("a", priority=1, bid_cents=9000), buyer("b", priority=5, bid_cents=100),
                buyer("c", priority=1, bid_cents=100)]
    assert [b.id for b in robin.order(eligible, {}, None)] == ["b", "a", "c"]
    assert [b.id for b in robin.order(eligible, {}, eligible[1])] == ["a", "c", "b"]


def test_round_robin_shares_evenly_whatever_the_remaining_capacity():
    """Caps 100/50/50 once shifted the order after every win (6/3/3 of 12 leads)."""
    robin = tier_mode("round_robin")
    buyers = [buyer("a", caps={"daily": 100}), buyer("b", caps={"daily": 50}),
              buyer("c", caps={"daily": 50})]
    usage: dict[str, Usage] = {}
    won: Counter = Counter()
    last = None
    for _ in range(12):
        winner = robin.order(buyers, usage, last)[0]
        won[winner.id] += 1
        usage[winner.id] = Usage({"daily": won[winner.id]}, {})
        last = winner
    assert won == {"a": 4, "b": 4, "c": 4}
