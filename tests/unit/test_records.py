"""Records from rows: known columns taken, others left, enums made members, defaults kept; a
lead's columns its query did not read refuse every use."""
from __future__ import annotations

import dataclasses
import json
import pickle
import uuid

import pytest

from pipeline.domain.modes import Mode
from pipeline.domain.records import TERMINAL, Auction, Lead, Outcome, Ping, Status, Tier, Unread, UnreadField


def test_a_row_becomes_a_record_with_enum_members_and_extra_columns_left():
    lead = Lead.from_row({"id": uuid.uuid4(), "vertical": "solar", "status": "held",
                          "payload_sha256": "x", "idempotency_key": None, "cycle": 2})
    assert lead.status is Status.HELD and lead.cycle == 2 and isinstance(lead.redrives, Unread)
    tier = Tier.from_row({"tier": 1, "name": "t", "mode": "round_robin", "active": True})
    assert tier.mode is Mode.ROUND_ROBIN
    ping = Ping.from_row({"id": uuid.uuid4(), "lead_id": uuid.uuid4(), "buyer_id": "a", "tier": 1,
                          "cycle": 1, "rank": 0, "outcome": "post_rejected", "at": None})
    assert ping.outcome is Outcome.POST_REJECTED and ping.kind == "ping"


def test_a_query_renaming_a_column_names_it_again():
    row = {"auction_id": uuid.uuid4(), "lead_id": uuid.uuid4(), "cycle": 1, "tier": 2, "mode": "auction",
           "deadline_at": None, "buyer_ids": ["a"], "shards": 1, "vertical": "solar"}
    auction, lead = Auction.from_row(row, id=row["auction_id"]), Lead.from_row(row, id=row["lead_id"])
    assert (auction.id, auction.mode, lead.id, lead.vertical) == (row["auction_id"], Mode.AUCTION,
                                                                 row["lead_id"], "solar")
    assert isinstance(lead.status, Unread) and auction.closed_at is None     # not read, default


def test_members_are_their_stored_strings():
    assert Status.SOLD == "sold" and f"stuck_{Status.AUCTIONING}" == "stuck_auctioning"
    assert json.dumps({"s": Status.UNSOLD, "o": Outcome.ACCEPT}) == '{"s": "unsold", "o": "accept"}'
    assert "sold" in TERMINAL and "held" not in TERMINAL


def test_a_record_from_a_row_is_the_record_its_constructor_builds():
    """from_row builds the record without the frozen dataclass's __init__ (a setattr a field):
    the same fields, defaults and equality, a fresh default for each record, still frozen."""
    lead_id = uuid.uuid4()
    full = {f.name: getattr(Lead(id=lead_id), f.name) for f in dataclasses.fields(Lead)}
    row = {**full, "vertical": "solar", "status": "sold", "score": 70, "extra": 1}
    lead = Lead.from_row(row)
    assert lead == Lead(id=lead_id, vertical="solar", status=Status.SOLD, score=70)
    assert lead.as_dict() == dataclasses.asdict(lead) and lead.contact == {} and lead.redrives == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        lead.score = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Lead.from_row({"vertical": "solar"})                # no id: as the constructor refuses
    auction_row = {"id": uuid.uuid4(), "lead_id": lead_id, "cycle": 1, "tier": 1, "mode": "auction",
                   "deadline_at": None, "buyer_ids": []}
    auction, other = Auction.from_row(auction_row), Auction.from_row(auction_row)
    assert auction == Auction(**{**auction_row, "mode": Mode.AUCTION}) and auction.skipped == []
    assert auction.skipped is not other.skipped           # a fresh default for each record


def test_a_leads_column_its_query_did_not_read_refuses_every_use():
    """A narrow claim's lead (the validate stage reads id, status, vertical, contact): a default
    in place of its score, facts or cycle would be taken for the truth."""
    lead = Lead.from_row({"id": uuid.uuid4(), "status": "received", "vertical": "solar",
                          "contact": {"zip": "33101"}})
    assert lead.contact == {"zip": "33101"} and lead.status is Status.RECEIVED
    uses = [bool, len, iter, str, hash, int, lambda v: v == 0, lambda v: v is not None and v < 1,
            lambda v: v["geo"], lambda v: "geo" in v, lambda v: v + 1, lambda v: f"{v}",
            lambda v: v.get("geo"), lambda v: json.dumps(v, default=str)]
    for use in uses:
        with pytest.raises(UnreadField, match="facts was not read"):
            use(lead.facts)
    with pytest.raises(TypeError, match="Unread is not JSON serializable"):
        json.dumps({"lead": {**lead.as_dict(), "id": str(lead.id)}})   # a body, a row's value
    assert repr(lead.score) == "<score: not read>"          # a lead still prints
    # Carried, never lost: a record built from it, and one through pickle (Celery's, a copy).
    scored = dataclasses.replace(lead, score=70)
    assert scored.score == 70 and isinstance(scored.cycle, Unread)
    assert isinstance(pickle.loads(pickle.dumps(scored)).cycle, Unread)
    assert isinstance(dataclasses.replace(scored).facts, Unread)
