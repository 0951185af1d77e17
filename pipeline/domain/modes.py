"""Tier modes, one strategy each: how a tier orders its buyers, pings them and ranks their bids."""
from __future__ import annotations

from enum import StrEnum

from pipeline.domain.auction import Bid, open_bids, rank, shard_count
from pipeline.domain.buyers import Buyer, Usage


class Mode(StrEnum):
    AUCTION = "auction"
    WATERFALL = "waterfall"
    ROUND_ROBIN = "round_robin"


class TierMode:
    """What every mode shares; a mode overrides only where its rules differ."""

    mode: Mode
    walks = True            # buyers are pinged one at a time in order, not all at once
    rotates = False         # the order turns after the tier's previous lead (round robin)
    deadline_binds = False  # an answer after the tier closed is late (one deadline for all)

    def order(self, eligible: list[Buyer], usage: dict[str, Usage], after: Buyer | None = None
              ) -> list[Buyer]:
        """The order the tier's eligible buyers are pinged (or ranked) in."""
        return rank(eligible, usage)

    def shard_count(self, buyers: int, size: int) -> int:
        """How many ping tasks share the tier: a walk is one task stepping through buyers."""
        return 1

    def candidates(self, bids: list[Bid], floor_cents: int) -> list[Bid]:
        """Bids that may win, best first: in a walk, rank order (the first accept keeps it)."""
        return sorted(open_bids(bids, floor_cents), key=lambda b: b.rank)


class Auction(TierMode):
    """First-price sealed bid: everyone at once, the highest bid wins, ties to the higher rank."""

    mode = Mode.AUCTION
    walks = False
    deadline_binds = True

    def shard_count(self, buyers: int, size: int) -> int:
        return shard_count(buyers, size)

    def candidates(self, bids: list[Bid], floor_cents: int) -> list[Bid]:
        return sorted(open_bids(bids, floor_cents), key=lambda b: (-(b.bid_cents or 0), b.rank))


class Waterfall(TierMode):
    """One at a time in rank order; the first to accept at or above the floor wins."""

    mode = Mode.WATERFALL


class RoundRobin(Waterfall):
    """A waterfall whose start turns: each lead starts after the previous lead's place.

    The order is stable (priority desc, then id): bids and remaining capacity change after
    every win and would shift the turn. ``after`` is the tier's rotation point, a buyer that
    may not be eligible for this lead: its place in the stable order still counts.
    """

    mode = Mode.ROUND_ROBIN
    rotates = True

    def order(self, eligible: list[Buyer], usage: dict[str, Usage], after: Buyer | None = None
              ) -> list[Buyer]:
        stable = sorted(eligible, key=stable_key)
        if after is None:
            return stable
        start = next((i for i, b in enumerate(stable) if stable_key(b) > stable_key(after)), 0)
        return stable[start:] + stable[:start]


def stable_key(buyer: Buyer) -> tuple[int, str]:
    return (-buyer.priority, buyer.id)


MODES: dict[Mode, TierMode] = {m.mode: m for m in (Auction(), Waterfall(), RoundRobin())}
assert set(MODES) == set(Mode), "every mode needs its strategy"


def tier_mode(name: str | Mode) -> TierMode:
    """The strategy of a tier's mode; an unknown name is a programming error, not a default."""
    return MODES[Mode(name)]
