"""Across buyers: rank a tier, shard its pings, the bids that may win, the next step of a walk."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from pipeline.domain.buyers import Buyer, Usage, remaining_daily
from pipeline.domain.frozen import one_step_init


@one_step_init
@dataclass(frozen=True)
class Bid:
    """One buyer's answer in a tier, as the award sees it."""
    ping_id: uuid.UUID | str
    buyer_id: str
    rank: int
    outcome: str          # accept, reject, timeout, error, late, post_rejected
    bid_cents: int | None


def rank(buyers: list[Buyer], usage: dict[str, Usage]) -> list[Buyer]:
    """Priority desc, then standing bid desc, then remaining daily capacity desc, then id."""
    return sorted(buyers, key=lambda b: (-b.priority, -(b.bid_cents or 0),
                                         -remaining_daily(b, usage.get(b.id, Usage())), b.id))


def shard_count(buyers: int, size: int) -> int:
    """How many ping tasks share a tier of ``buyers`` with at most ``size`` buyers each."""
    return max(1, -(-buyers // max(1, size)))


def shard(buyer_ids: list[str], count: int, index: int) -> list[str]:
    """Shard ``index`` of ``count``: found from the auction's own record, never from settings, so
    a ping worker with another shard size (a rolling restart) still pings exactly its share."""
    return buyer_ids[index::count]


def open_bids(bids: list[Bid], floor_cents: int) -> list[Bid]:
    """Accepted bids at or above the floor; bids refused at post or late are gone.

    Which of them is best first is the tier mode's rule (pipeline.domain.modes).
    """
    return [b for b in bids if b.outcome == "accept" and b.bid_cents is not None
            and b.bid_cents >= floor_cents]


def next_to_ping(ranked_ids: list[str], pinged: set[str]) -> str | None:
    """Waterfall: the next buyer in rank order not yet pinged in this tier."""
    return next((buyer_id for buyer_id in ranked_ids if buyer_id not in pinged), None)
