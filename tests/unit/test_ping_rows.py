"""A shard's answers as rows and as the arrays its statement writes: made without the records'
constructors (a frozen dataclass sets each field through object.__setattr__), the same values."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from pipeline.adapters.store.auctions import PING_COLUMNS, _ping_arrays
from pipeline.domain.buyers import Buyer
from pipeline.domain.modes import Mode
from pipeline.domain.records import Auction, Outcome, Ping
from pipeline.protocols import native
from pipeline.protocols.interface import Answer
from pipeline.service.pinging import ping_row

AUCTION = Auction(id=uuid.UUID(int=3), lead_id=uuid.UUID(int=4), cycle=2, tier=1, mode=Mode.AUCTION,
                  deadline_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC), buyer_ids=["b1", "b2"])
ANSWERS = [Answer("accept", bid_cents=1250, ref="r-1", latency_ms=12),
           Answer(Outcome.REJECT, ref=None, reason="budget", latency_ms=3),
           Answer("timeout", reason="timeout", latency_ms=900), Answer("not_pinged")]


def buyer_named(buyer_id: str) -> Buyer:
    return Buyer(id=buyer_id, name=buyer_id, tier=1, verticals=("solar",), ping_url=None, post_url=None)


def made_by_the_constructor(buyer: Buyer, rank: int, answer: Answer, kind: str) -> Ping:
    return Ping(id=native.ping_id(str(AUCTION.id), buyer.id, kind), auction_id=AUCTION.id,
                lead_id=AUCTION.lead_id, buyer_id=buyer.id, tier=AUCTION.tier, cycle=AUCTION.cycle,
                rank=rank, kind=kind, outcome=Outcome(answer.outcome), bid_cents=answer.bid_cents,
                ref=answer.ref, latency_ms=answer.latency_ms, reason=answer.reason)


def test_a_ping_row_is_the_record_its_constructor_makes():
    buyer = buyer_named("b1")
    for rank, answer in enumerate(ANSWERS):
        for kind in ("ping", "pre_ping"):
            for text in (None, str(AUCTION.id)):
                row = ping_row(AUCTION, buyer, rank, answer, kind, text)
                expected = made_by_the_constructor(buyer, rank, answer, kind)
                assert row == expected and vars(row) == vars(expected) and repr(row) == repr(expected)
                assert type(row.outcome) is Outcome and hash(row) == hash(expected)
    with pytest.raises(ValueError):
        ping_row(AUCTION, buyer, 0, Answer("maybe"), "ping")


def test_a_shards_arrays_are_its_rows_column_by_column():
    rows = [ping_row(AUCTION, buyer_named(f"b{i}"), i, a, "ping")
            for i, a in enumerate(ANSWERS)]
    assert _ping_arrays(rows) == {name: [getattr(r, name) for r in rows] for name, _ in PING_COLUMNS}
    assert _ping_arrays([]) == {name: [] for name, _ in PING_COLUMNS}
