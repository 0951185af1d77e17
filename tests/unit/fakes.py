"""An in-memory store for the stages (the Store protocol of pipeline/service/ports.py) and a
null database, so the stages' branching runs in milliseconds without PostgreSQL.

It keeps the records the real store keeps, and writes down what the stages asked of it
(moves, closes, cap reservations and releases, marked pings) for the tests to read.
Only what the stages call is here: anything else is an AttributeError, never a silent pass.
"""
from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pipeline.domain.auction import Bid
from pipeline.domain.buyers import Buyer
from pipeline.domain.modes import Mode
from pipeline.domain.records import MOVING, Auction, Lead, Network, Outcome, Ping, Status, Tier

NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)

NETWORK = Network(score_floor=0, bid_floor_cents=500, auction_timeout_ms=2000, max_cycles=2,
                  rerun_interval_s=60, duplicate_window_h=0, stuck_after_s=60, max_redrives=3,
                  max_post_buyers=3, post_reject_pause_rate=0.5, post_reject_pause_min_posts=10,
                  post_reject_pause_h=24)

FACTS = {"geo": {"zip": "33131", "state": "FL", "city": "Miami"}}


class NullDb:
    """db.transaction() yields no cursor (the fake store needs none); retrying runs once."""

    @staticmethod
    def transaction(**_):
        return contextlib.nullcontext(None)

    @staticmethod
    def retrying(work, **_):
        return work()


def buyer(buyer_id: str, tier: int = 1, bid_cents: int = 1000, **more) -> Buyer:
    return Buyer(id=buyer_id, name=buyer_id, tier=tier, verticals=("solar",),
                 ping_url=f"https://{buyer_id}.example/ping", post_url=f"https://{buyer_id}.example/post",
                 bid_cents=bid_cents, **more)


@dataclass
class Move:
    lead_id: uuid.UUID
    status: Status
    detail: dict | None
    columns: dict


@dataclass
class FakeStore:
    net: Network = NETWORK
    tier_list: list[Tier] = field(default_factory=list)
    buyer_list: list[Buyer] = field(default_factory=list)
    leads: dict[uuid.UUID, Lead] = field(default_factory=dict)
    auctions: dict[uuid.UUID, Auction] = field(default_factory=dict)
    pings: dict[uuid.UUID, list[Ping]] = field(default_factory=dict)
    full_caps: dict[str, str] = field(default_factory=dict)        # buyer id -> the cap that is full
    posted: dict[uuid.UUID, set[str]] = field(default_factory=dict)
    open_posts: dict[uuid.UUID, dict] = field(default_factory=dict)
    # What the stages did:
    moves: list[Move] = field(default_factory=list)
    closed: list[uuid.UUID] = field(default_factory=list)
    reserved: list[tuple[str, int]] = field(default_factory=list)  # (buyer id, price)
    released: list = field(default_factory=list)                  # ping ids whose caps went back
    marked: list[tuple[str, Outcome, str | None]] = field(default_factory=list)
    released_shards: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    expired_posts: list[int] = field(default_factory=list)
    rotation: dict[int, str] = field(default_factory=dict)

    # ---- building a scene

    def add_lead(self, status: Status, **fields) -> Lead:
        lead = Lead(id=uuid.uuid4(), vertical="solar", status=status, score=70, facts=FACTS,
                    source={"publisher_id": "pub"}, **fields)
        self.leads[lead.id] = lead
        return lead

    def add_auction(self, lead: Lead, answers: list[tuple[str, Outcome, int | None]], *,
                    tier: int = 1, mode: Mode = Mode.AUCTION, kind: str = "ping") -> Auction:
        """An auction tier the lead is in, with each buyer's answer in rank order."""
        auction = Auction(id=uuid.uuid4(), lead_id=lead.id, cycle=lead.cycle or 1, tier=tier, mode=mode,
                          deadline_at=NOW - timedelta(seconds=1), buyer_ids=[b for b, _, _ in answers])
        self.auctions[auction.id] = auction
        self.pings[auction.id] = [
            Ping(id=uuid.uuid4(), auction_id=auction.id, lead_id=lead.id, buyer_id=b, tier=tier,
                 cycle=auction.cycle, rank=rank, kind=kind, outcome=outcome, bid_cents=bid)
            for rank, (b, outcome, bid) in enumerate(answers)]
        self.leads[lead.id] = replace(lead, status=Status.AUCTIONING, auction_id=auction.id,
                                      cycle=auction.cycle)
        return auction

    def ping_of(self, auction: Auction, buyer_id: str) -> Ping:
        return next(p for p in self.pings[auction.id] if p.buyer_id == buyer_id)

    def last_move(self, lead: Lead) -> Move:
        return [m for m in self.moves if m.lead_id == lead.id][-1]

    def opened(self) -> list[Auction]:
        """Auctions the stages opened (not the ones the test added)."""
        return [a for a in self.auctions.values() if a.id not in self.pings]

    # ---- leads

    def claim(self, cur, lead_id, from_status):
        statuses = (from_status,) if isinstance(from_status, str) else from_status
        lead = self.leads.get(uuid.UUID(str(lead_id)))
        return lead if lead is not None and lead.status in statuses else None

    def claim_to_validate(self, cur, lead_id):
        lead = self.claim(cur, lead_id, Status.RECEIVED)
        return None if lead is None else (lead, {}, (None, None))

    def claim_to_score(self, cur, lead_id, now):
        lead = self.claim(cur, lead_id, Status.VALIDATED)
        return None if lead is None else (lead, {}, {"same_ip_24h": 0})

    def move(self, cur, lead_id, to_status, detail=None, *, passing=None, last=False, **columns):
        if passing is not None:           # the status passed through, written with this move
            self.moves.append(Move(lead_id, passing.status, passing.detail, passing.columns))
            columns = {**passing.columns, **columns}
        self.moves.append(Move(lead_id, to_status, detail, columns))
        known = {k: v for k, v in columns.items() if k in Lead.__dataclass_fields__}
        self.leads[lead_id] = replace(self.leads[lead_id], status=to_status, **known)

    def record_event(self, cur, lead_id, status, detail=None):
        pass

    # ---- the tree

    def network(self, cur):
        return self.net

    def tiers(self, cur):
        return [t for t in self.tier_list if t.active]

    def buyers(self, cur, ids=None):
        return [b for b in self.buyer_list if ids is None or b.id in ids]

    # ---- auctions

    def usage(self, cur, buyer_list, now):
        return {}

    def lock_rotation(self, cur, tier):
        return self.rotation.get(tier)

    def set_rotation(self, cur, tier, buyer_id, unless_moved_from=None):
        if unless_moved_from is None or self.rotation.get(tier) == unless_moved_from:
            self.rotation[tier] = buyer_id

    def open_auction(self, cur, *, lead_id, cycle, tier, mode, buyer_ids, shard_count, deadline_at,
                     skipped, timeout_ms=None, passing=None, last=False):
        auction = Auction(id=uuid.uuid4(), lead_id=lead_id, cycle=cycle, tier=tier, mode=mode,
                          deadline_at=deadline_at, buyer_ids=buyer_ids, shards=shard_count,
                          skipped=skipped, timeout_ms=timeout_ms)
        self.auctions[auction.id] = auction
        self.move(cur, lead_id, Status.AUCTIONING, {"cycle": cycle, "tier": tier}, passing=passing,
                  cycle=cycle, auction_id=auction.id, award_ping_id=None)
        return auction.id

    def auction(self, cur, auction_id, lock=False):
        return self.auctions.get(uuid.UUID(str(auction_id)))

    def unfinished_shards(self, cur, auction):
        return 0

    def release_shard(self, cur, auction_id, shard):
        self.released_shards.append((auction_id, shard))

    def auction_pings(self, cur, auction_id, kind="ping"):
        return sorted((p for p in self.pings.get(auction_id, []) if p.kind == kind), key=lambda p: p.rank)

    def auction_bids(self, cur, auction_id):
        return [Bid(p.id, p.buyer_id, p.rank, p.outcome, p.bid_cents)
                for p in self.auction_pings(cur, auction_id)]

    def mark_ping(self, cur, ping_id, outcome, reason):
        self.marked.append((ping_id, outcome, reason))
        for auction_id, pings in self.pings.items():
            self.pings[auction_id] = [replace(p, outcome=outcome, reason=reason) if p.id == ping_id else p
                                      for p in pings]

    def close_auction(self, cur, auction_id):
        auction = self.auctions[auction_id]
        if auction.closed_at is not None:
            return None
        self.auctions[auction_id] = replace(auction, closed_at=NOW)
        self.closed.append(auction_id)
        return self.auctions[auction_id]

    def reserve_caps(self, cur, lead_id, ping_id, buyer, price_cents, now):
        if buyer.id in self.full_caps:
            return self.full_caps[buyer.id]
        self.reserved.append((buyer.id, price_cents))
        return None

    def release_caps(self, cur, ping_id):
        self.released.append(ping_id)

    def posted_buyers(self, cur, lead_id):
        return set(self.posted.get(lead_id, set()))

    # ---- cycles and the sweep

    def stuck(self, cur, stuck_after_s, limit=500):
        return [(lead, self.auctions[lead.auction_id].mode if lead.auction_id in self.auctions else None)
                for lead in self.leads.values() if lead.status in MOVING][:limit]

    def count_redrive(self, cur, lead_id):
        lead = self.leads[lead_id]
        self.leads[lead_id] = replace(lead, redrives=lead.redrives + 1)
        return lead.redrives + 1

    def touch(self, cur, lead_id):
        pass

    def open_post(self, cur, lead_id):
        return self.open_posts.get(lead_id)

    def expire_post(self, cur, lead_id, attempt_id):
        self.expired_posts.append(attempt_id)
