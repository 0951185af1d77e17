"""Records from rows: known columns taken, others left, enums made members, defaults kept."""
from __future__ import annotations

import json
import uuid

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
