"""Workers keep a snapshot of the tree and still see every change to it with the next lead.

The stages read the network, tiers and buyers from a per-process snapshot checked against the
tree's version once per transaction; any write to the tree (a tree load, a buyer paused, the
network changed by hand) moves the version. Real workers, real PostgreSQL, real buyers.
"""
from __future__ import annotations

from pipeline import submit_lead
from pipeline.adapters import db
from tests.helpers import NETWORK, fleet_of, load_tree, make_lead, setup, wait_for

FIRST = {"id": "first", "accept_rate": 1, "bid": 50.0}
SECOND = {"id": "second", "accept_rate": 1, "bid": 20.0}


def _sold_to(seed: int) -> str:
    return wait_for(submit_lead(make_lead("solar", seed=seed)), ("sold",))["sale"]["buyer_id"]


def test_the_next_lead_sees_each_change_to_the_tree(clean_db, workers, buyers):
    tiers = [{"tier": 1, "mode": "auction"}]
    setup(buyers, fleet_of(FIRST, SECOND), tiers=tiers)
    assert _sold_to(301) == "first"
    assert _sold_to(302) == "first"          # the workers hold the tree now

    with db.transaction() as cur:             # a pause, as the post-reject rule writes it
        cur.execute("UPDATE buyers SET paused_until = now() + interval '1 hour',"
                    " pause_reason = 'test' WHERE id = 'first'")
    assert _sold_to(303) == "second"

    with db.transaction() as cur:
        cur.execute("UPDATE buyers SET paused_until = NULL, pause_reason = NULL WHERE id = 'first'")
    assert _sold_to(304) == "first"

    # A tree load: the first buyer now buys mortgage leads only.
    tree = buyers.tree(tiers=tiers, network=NETWORK)
    load_tree({**tree, "buyers": [{**b, "verticals": ["mortgage"]} if b["id"] == "first" else b
                                  for b in tree["buyers"]]})
    assert _sold_to(305) == "second"

    # The network changed by hand: no lead scores above 100.
    with db.transaction() as cur:
        cur.execute("UPDATE network SET score_floor = 101")
    view = wait_for(submit_lead(make_lead("solar", seed=306)), ("rejected", "sold"))
    assert view["status"] == "rejected"
