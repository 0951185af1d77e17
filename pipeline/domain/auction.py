"""Across buyers: rank a tier, pick the winner of an auction or the next step of a waterfall."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.domain.buyers import Buyer, Usage, remaining_daily


@dataclass(frozen=True)
class Bid:
    """One buyer's answer in a tier, as the award sees it."""
    ping_id: str
    buyer_id: str
    rank: int
    outcome: str          # accept, reject, timeout, error, late, post_rejected
    bid_cents: int | None


def rank(buyers: list[Buyer], usage: dict[str, Usage]) -> list[Buyer]:
    """Priority desc, then standing bid desc, then remaining daily capacity desc, then id."""
    return sorted(buyers, key=lambda b: (-b.priority, -(b.bid_cents or 0),
                                         -remaining_daily(b, usage.get(b.id, Usage())), b.id))


def rotate(ranked: list[Buyer], last_winner: str | None) -> list[Buyer]:
    """Round robin: start after the tier's previous winner, keeping rank order otherwise."""
    ids = [b.id for b in ranked]
    if last_winner not in ids:
        return ranked
    start = ids.index(last_winner) + 1
    return ranked[start:] + ranked[:start]


def shard_count(buyers: int, size: int) -> int:
    """How many ping tasks share a tier of ``buyers`` with at most ``size`` buyers each."""
    return max(1, -(-buyers // max(1, size)))


def shard(buyer_ids: list[str], count: int, index: int) -> list[str]:
    """Shard ``index`` of ``count``: found from the auction's own record, never from settings, so
    a ping worker with another shard size (a rolling restart) still pings exactly its share."""
    return buyer_ids[index::count]


def candidates(bids: list[Bid], floor_cents: int, mode: str) -> list[Bid]:
    """Accepted bids at or above the floor, best first; bids already refused at post are gone.

    First-price auction: highest bid first, ties to the higher rank. Waterfall and round robin:
    rank order, so the first buyer to accept keeps the lead.
    """
    open_bids = [b for b in bids if b.outcome == "accept" and b.bid_cents is not None
                 and b.bid_cents >= floor_cents]
    if mode == "auction":
        return sorted(open_bids, key=lambda b: (-b.bid_cents, b.rank))
    return sorted(open_bids, key=lambda b: b.rank)


def next_to_ping(ranked_ids: list[str], pinged: set[str]) -> str | None:
    """Waterfall: the next buyer in rank order not yet pinged in this tier."""
    return next((buyer_id for buyer_id in ranked_ids if buyer_id not in pinged), None)
