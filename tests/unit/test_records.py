"""Records from rows: known columns taken, others left, enums made members, defaults kept."""
from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from pipeline.domain.modes import Mode
from pipeline.domain.records import TERMINAL, Auction, Lead, Outcome, Ping, Status, Tier


def test_a_row_becomes_a_record_with_enum_members_and_extra_columns_left():
    lead = Lead.from_row({"id": uuid.uuid4(), "vertical": "solar", "status": "held",
                          "payload_sha256": "x", "idempotency_key": None, "cycle": 2})
    assert lead.status is Status.HELD and lead.cycle == 2 and lead.redrives == 0
    tier = Tier.from_row({"tier": 1, "name": "t", "mode": "round_robin", "active": True})
    assert tier.mode is Mode.ROUND_ROBIN
    ping = Ping.from_row({"id": uuid.uuid4(), "lead_id": uuid.uuid4(), "buyer_id": "a", "tier": 1,
                          "cycle": 1, "rank": 0, "outcome": "post_rejected", "at": None})
    assert ping.outcome is Outcome.POST_REJECTED and ping.kind == "ping"


def test_a_query_renaming_a_column_names_it_again():
    row = {"auction_id": uuid.uuid4(), "lead_id": uuid.uuid4(), "cycle": 1, "tier": 2, "mode": "auction",
           "deadline_at": None, "buyer_ids": ["a"], "shards": 1, "vertical": "solar"}
    auction, lead = Auction.from_row(row, id=row["auction_id"]), Lead.from_row(row, id=row["lead_id"])
    assert (auction.id, auction.mode, lead.id, lead.status) == (row["auction_id"], Mode.AUCTION,
                                                               row["lead_id"], None)


def test_members_are_their_stored_strings():
    assert Status.SOLD == "sold" and f"stuck_{Status.AUCTIONING}" == "stuck_auctioning"
    assert json.dumps({"s": Status.UNSOLD, "o": Outcome.ACCEPT}) == '{"s": "unsold", "o": "accept"}'
    assert "sold" in TERMINAL and "held" not in TERMINAL


def test_a_record_from_a_row_is_the_record_its_constructor_builds():
    """from_row builds the record without the frozen dataclass's __init__ (a setattr a field):
    the same fields, defaults and equality, a fresh default for each record, still frozen."""
    lead_id = uuid.uuid4()
    row = {"id": lead_id, "vertical": "solar", "status": "sold", "score": 70, "extra": 1}
    lead = Lead.from_row(row)
    assert lead == Lead(id=lead_id, vertical="solar", status=Status.SOLD, score=70)
    assert lead.as_dict() == dataclasses.asdict(lead) and lead.contact == {} and lead.redrives == 0
    other = Lead.from_row(row)
    assert lead.contact is not other.contact and lead.reject_reasons is not other.reject_reasons
    with pytest.raises(dataclasses.FrozenInstanceError):
        lead.score = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Lead.from_row({"vertical": "solar"})                # no id: as the constructor refuses
