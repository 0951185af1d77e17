"""A hostile buyer's answer never costs an honest buyer its sale: auction, waterfall and post."""
from __future__ import annotations

import pytest

from pipeline import submit_lead
from tests.helpers import LocalBuyer, load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 300, "duplicate_window_h": 0, "stuck_after_s": 60}

# What a hostile buyer answers a ping with: each broke a whole shard's answers before.
PING_ANSWERS = {
    "deep": b"[" * 5000,
    "nul_reason": b'{"accept": false, "reason": "no\\u0000thanks"}',
    "surrogate_ref": b'{"accept": false, "reason": "cap", "ref": "\\ud800"}',
    "invalid_utf8": b'{"accept": false, "reason": "\xff\xfe"}',
    "escape_reason": b'{"accept": false, "reason": "\\u001b[2J\\u001b]0;pwned\\u0007"}',
}
# What it answers a post with, after bidding more than the honest buyer.
POST_ANSWERS = {
    "deep": b"[" * 5000,
    "nul_reason": b'{"accepted": false, "reason": "no\\u0000thanks"}',
    "surrogate_reason": b'{"accepted": false, "reason": "\\udc00"}',
    "invalid_utf8": b'{"accepted": true, "ref": "\xff"}',
}


@pytest.fixture(scope="module")
def hostile_server():
    server = LocalBuyer()
    yield server
    server.close()


@pytest.fixture
def hostile(hostile_server):
    hostile_server.reset()
    return hostile_server


def network_of(buyers, hostile: LocalBuyer, mode: str, **hostile_fields) -> None:
    """The honest buyer (accepts every ping at $50) and the hostile one in one tier."""
    buyers.set_fleet({"defaults": {"latency_ms": 2},
                      "buyers": [{"id": "honest", "accept_rate": 1, "bid": 50.0,
                                  "tree": {"priority": 10}}]})
    tree = buyers.tree(tiers=[{"tier": 1, "mode": mode}], network=NETWORK)
    tree["buyers"].append(hostile.entry("hostile", bid=60.0, **hostile_fields))
    load_tree(tree)


def assert_safe(text: str | None) -> None:
    assert text is None or not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
    assert text is None or text.encode("utf-8")


@pytest.mark.parametrize("answer", sorted(PING_ANSWERS))
def test_a_hostile_ping_answer_in_the_same_auction_shard_leaves_the_honest_bid(
        clean_db, workers, buyers, hostile, answer):
    hostile.answers["ping"] = PING_ANSWERS[answer]
    network_of(buyers, hostile, "auction", priority=20)     # two buyers, one shard of two
    lead_id = submit_lead(make_lead("solar", seed=31))
    view = wait_for(lead_id, ("sold", "unsold"))
    assert view["sale"]["buyer_id"] == "honest" and view["sale"]["price"] == 50.0
    pings = {p["buyer_id"]: p for p in view["pings"]}
    assert pings["honest"]["outcome"] == "accept"
    assert pings["hostile"]["outcome"] in ("error", "reject") and pings["hostile"]["reason"]
    assert_safe(pings["hostile"]["reason"])
    assert hostile.received["ping"] == 1 and hostile.received["post"] == 0


@pytest.mark.parametrize("answer", ["deep", "nul_reason", "surrogate_ref"])
def test_a_hostile_ping_answer_first_in_a_waterfall_moves_the_walk_on(
        clean_db, workers, buyers, hostile, answer):
    hostile.answers["ping"] = PING_ANSWERS[answer]
    network_of(buyers, hostile, "waterfall", priority=20)   # the hostile buyer is asked first
    lead_id = submit_lead(make_lead("solar", seed=32))
    view = wait_for(lead_id, ("sold", "unsold"))
    assert view["sale"]["buyer_id"] == "honest"
    assert [p["buyer_id"] for p in view["pings"]] == ["hostile", "honest"]
    assert hostile.received["ping"] == 1


@pytest.mark.parametrize("answer", sorted(POST_ANSWERS))
def test_a_hostile_post_answer_is_a_rejection_and_the_next_bid_buys(
        clean_db, workers, buyers, hostile, answer):
    hostile.answers["ping"] = b'{"accept": true, "bid": 60, "ref": "H-1"}'
    hostile.answers["post"] = POST_ANSWERS[answer]
    network_of(buyers, hostile, "auction", priority=20)
    lead_id = submit_lead(make_lead("solar", seed=33))
    view = wait_for(lead_id, ("sold", "unsold"))
    assert view["sale"]["buyer_id"] == "honest" and view["sale"]["price"] == 50.0
    rejected = next(p for p in view["pings"] if p["buyer_id"] == "hostile")
    assert rejected["outcome"] == "post_rejected" and rejected["reason"]
    assert_safe(rejected["reason"])
    assert hostile.received["post"] == 1
    assert [p["buyer_id"] for p in buyers.posts(lead_id)] == ["honest"]
