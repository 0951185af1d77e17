"""The stages' branching on an in-memory store (tests/unit/fakes.py), no services: who wins an
award when caps are full or bids are low, when a lead is held or given up, how many buyers may
see its contact data, and what the sweep does with a lead stuck in each status."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from pipeline.domain.modes import Mode
from pipeline.domain.records import Outcome, Status, Tier
from pipeline.service import deliver, lifecycle
from pipeline.service.nudges import Nudge
from tests.unit.fakes import NOW, FakeStore, NullDb, buyer

ACCEPT, REJECT, TIMEOUT = Outcome.ACCEPT, Outcome.REJECT, Outcome.TIMEOUT


@pytest.fixture
def fake(monkeypatch) -> FakeStore:
    """Tier 1 (an auction) has buyers a, b and c, tier 2 has t2; the bid floor is 5.00,
    max_cycles 2, max_post_buyers 3, max_redrives 3; a tier is pinged in one shard."""
    store = FakeStore(tier_list=[Tier(1, "first", Mode.AUCTION), Tier(2, "second", Mode.AUCTION)],
                      buyer_list=[buyer("a"), buyer("b"), buyer("c"), buyer("t2", tier=2)])
    for module in (lifecycle, deliver):
        monkeypatch.setattr(module, "store", store)
    monkeypatch.setattr(lifecycle, "db", NullDb)
    monkeypatch.setattr(lifecycle, "settings", replace(lifecycle.settings, ping_shard_size=50))
    monkeypatch.setattr(lifecycle, "now_utc", lambda: NOW)
    monkeypatch.setattr(lifecycle.intake, "purge_expired_keys", lambda: 0)
    return store


def delivered_to(fake: FakeStore, lead, auction) -> str:
    """The buyer the lead went to delivery with (its last move is to delivering)."""
    move = fake.last_move(lead)
    assert move.status == Status.DELIVERING, move
    return next(p.buyer_id for p in fake.pings[auction.id] if p.id == move.columns["award_ping_id"])


# ---- the award ------------------------------------------------------------------------------

def test_the_highest_bid_wins_and_its_caps_are_reserved(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 700), ("b", ACCEPT, 900), ("c", REJECT, None)])
    assert lifecycle.award_auction(auction.id) == [Nudge(lifecycle.DELIVER, (str(lead.id),))]
    assert delivered_to(fake, lead, auction) == "b"
    assert fake.reserved == [("b", 900)] and fake.marked == []


def test_a_full_cap_passes_the_award_to_the_next_bid(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 700), ("b", ACCEPT, 900)])
    fake.full_caps["b"] = "cap_daily"
    assert lifecycle.award_auction(auction.id) == [Nudge(lifecycle.DELIVER, (str(lead.id),))]
    assert delivered_to(fake, lead, auction) == "a"
    assert fake.marked == [(fake.ping_of(auction, "b").id, Outcome.REJECT, "cap_daily")]
    assert fake.reserved == [("a", 700)]


def test_a_bid_below_the_floor_is_skipped_even_first_in_a_walk(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 499), ("b", ACCEPT, 500)], mode=Mode.WATERFALL)
    lifecycle.award_auction(auction.id)
    assert delivered_to(fake, lead, auction) == "b"          # 5.00 is the floor: at it is enough


def test_no_bid_at_or_above_the_floor_opens_the_next_tier(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", REJECT, None), ("b", TIMEOUT, None), ("c", ACCEPT, 400)])
    nudges = lifecycle.award_auction(auction.id)
    [opened] = fake.opened()
    assert (opened.tier, opened.cycle, opened.buyer_ids) == (2, 1, ["t2"])
    assert nudges == [Nudge(lifecycle.PING_SHARD, (str(opened.id), 0))]
    move = fake.last_move(lead)
    assert (move.status, move.columns["auction_id"]) == (Status.AUCTIONING, opened.id)
    assert fake.reserved == [] and auction.id in fake.closed


@pytest.mark.parametrize(("cycle", "ends"), [(1, Status.HELD), (2, Status.UNSOLD)])
def test_no_tier_left_holds_the_lead_until_its_last_cycle_then_gives_up(fake, cycle, ends):
    lead = fake.add_lead(Status.AUCTIONING, cycle=cycle)
    auction = fake.add_auction(lead, [("t2", REJECT, None)], tier=2)
    assert lifecycle.award_auction(auction.id) == []
    move = fake.last_move(lead)
    assert (move.status, move.columns["cycle"], move.columns["auction_id"]) == (ends, cycle, None)
    if ends == Status.HELD:
        assert move.columns["next_run_at"] == NOW + timedelta(seconds=60)
    else:
        assert "next_run_at" not in move.columns
    assert fake.opened() == []


def test_a_new_buyer_past_max_post_buyers_never_gets_the_post(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 900)])
    fake.posted[lead.id] = {"x", "y", "z"}                   # three buyers had it: the maximum
    assert lifecycle.award_auction(auction.id) == []
    move = fake.last_move(lead)
    assert (move.status, move.detail["reason"]) == (Status.HELD, "max_post_buyers")
    assert fake.reserved == [] and auction.id in fake.closed and fake.opened() == []


def test_a_buyer_that_had_the_post_may_have_it_again_past_max_post_buyers(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 900)])
    fake.posted[lead.id] = {"a", "y", "z"}
    lifecycle.award_auction(auction.id)
    assert delivered_to(fake, lead, auction) == "a"


def test_an_award_for_a_lead_that_moved_on_does_nothing(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 900)])
    fake.leads[lead.id] = replace(fake.leads[lead.id], status=Status.DELIVERING)
    assert lifecycle.award_auction(auction.id) == [] and fake.moves == []


# ---- the sweep's re-drive table -------------------------------------------------------------

@pytest.mark.parametrize(("status", "task"), [(Status.RECEIVED, lifecycle.VALIDATE),
                                              (Status.VALIDATED, lifecycle.SCORE),
                                              (Status.DELIVERING, lifecycle.DELIVER)])
def test_the_sweep_sends_the_stages_message_again(fake, status, task):
    lead = fake.add_lead(status, redrives=2)                 # the third re-drive: still allowed
    assert lifecycle.sweep_stuck() == [Nudge(task, (str(lead.id),))]
    assert fake.moves == [] and fake.leads[lead.id].redrives == 3


@pytest.mark.parametrize("status", [Status.HELD, Status.SOLD, Status.REJECTED, Status.UNSOLD])
def test_the_sweep_leaves_held_and_finished_leads_alone(fake, status):
    fake.add_lead(status)
    assert lifecycle.sweep_stuck() == [] and fake.moves == []


def test_the_sweep_starts_a_scored_leads_first_cycle(fake):
    lead = fake.add_lead(Status.SCORED)
    nudges = lifecycle.sweep_stuck()
    [opened] = fake.opened()
    assert (opened.tier, opened.cycle, sorted(opened.buyer_ids)) == (1, 1, ["a", "b", "c"])
    assert nudges == [Nudge(lifecycle.PING_SHARD, (str(opened.id), 0))]
    assert fake.last_move(lead).status == Status.AUCTIONING


def test_the_sweep_awards_a_stuck_auction(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 900), ("b", TIMEOUT, None)])
    assert lifecycle.sweep_stuck() == [Nudge(lifecycle.AWARD, (str(auction.id),))]
    assert fake.released_shards == [] and fake.moves == []


@pytest.mark.parametrize("mode", [Mode.WATERFALL, Mode.ROUND_ROBIN])
def test_the_sweep_reopens_a_dead_walks_step_and_walks_on(fake, mode):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", REJECT, None), ("b", TIMEOUT, None)], mode=mode)
    assert lifecycle.sweep_stuck() == [Nudge(lifecycle.WALK, (str(auction.id), 2))]
    assert fake.released_shards == [(auction.id, 2)]         # two buyers pinged: step 2 again


def test_past_max_redrives_the_sweep_ends_the_lead_unsold_with_nothing_reserved(fake):
    lead = fake.add_lead(Status.AUCTIONING, cycle=1)
    auction = fake.add_auction(lead, [("a", ACCEPT, 900)])
    award = fake.ping_of(auction, "a").id
    fake.leads[lead.id] = replace(fake.leads[lead.id], status=Status.DELIVERING, award_ping_id=award,
                                  redrives=3)
    fake.open_posts[lead.id] = {"id": 7, "live": False}
    assert lifecycle.sweep_stuck() == []
    move = fake.last_move(lead)
    assert (move.status, move.detail, move.columns) == (
        Status.UNSOLD, {"reason": "stuck_delivering", "redrives": 4},
        {"reject_reasons": ["stuck_delivering"], "award_ping_id": None})
    assert fake.released == [award] and fake.expired_posts == [7] and fake.closed == [auction.id]
