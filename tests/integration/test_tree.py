"""The tree file: checked whole, loaded as an upsert, buyers left out deactivated."""
from __future__ import annotations

import json

from pipeline.adapters import db, store
from tests.helpers import cli

BUYER = {"id": "provider-a", "tier": 1, "verticals": ["solar"], "bid": 34.00,
         "ping_url": "https://buyer.example/ping", "post_url": "https://buyer.example/post",
         "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
TREE = {"network": {"score_floor": 50, "bid_floor": 1.00}, "tiers": [{"tier": 1, "mode": "auction"}],
        "buyers": [BUYER]}


def test_bad_tree_file_is_refused_whole_and_nothing_changes(clean_db, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(TREE))
    assert cli("tree", "load", str(good)).returncode == 0
    with db.transaction() as cur:
        before = store.tree_document(cur)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TREE, "network": {"score_floor": 10},
                               "buyers": [{**BUYER, "bid": 99.0},
                                          {**BUYER, "id": "b", "tier": 7},
                                          {**BUYER, "id": "c", "bid": -5},
                                          {**BUYER, "id": "d", "post_url": "not a url"},
                                          {**BUYER, "id": "e", "mystery": 1}]}))
    result = cli("tree", "load", str(bad))
    assert result.returncode == 2
    assert "nothing was loaded" in result.stderr
    for expected in ("buyers.c.bid", "buyers.e.mystery"):
        assert expected in result.stderr
    with db.transaction() as cur:
        assert store.tree_document(cur) == before

    cross = tmp_path / "cross.json"
    cross.write_text(json.dumps({**TREE, "buyers": [{**BUYER, "id": "b", "tier": 7},
                                                    {**BUYER, "id": "d", "post_url": "not a url"}]}))
    result = cli("tree", "load", str(cross))
    assert result.returncode == 2
    assert "buyers.b.tier: unknown tier 7" in result.stderr
    assert "buyers.d.post_url" in result.stderr
    with db.transaction() as cur:
        assert store.tree_document(cur) == before


def test_loading_twice_changes_nothing_and_left_out_buyers_are_deactivated(clean_db, tmp_path):
    two = {**TREE, "buyers": [BUYER, {**BUYER, "id": "provider-b"}]}
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(two))
    assert "2 changed" in cli("tree", "load", str(path)).stdout
    assert "0 changed, 0 deactivated" in cli("tree", "load", str(path)).stdout
    path.write_text(json.dumps(TREE))
    assert "1 deactivated" in cli("tree", "load", str(path)).stdout
    shown = json.loads(cli("tree", "show").stdout)
    assert {b["id"]: b["active"] for b in shown["buyers"]} == {"provider-a": True, "provider-b": False}
