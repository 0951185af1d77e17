"""What one buyer may get: hashes only by opt-in, a pause for post-then-reject, safe text on screen."""
from __future__ import annotations

import json

import pytest

from pipeline import submit_lead
from pipeline.adapters import db, views
from tests.helpers import LocalBuyer, cli, load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 300, "duplicate_window_h": 0, "stuck_after_s": 60}


@pytest.fixture
def local():
    server = LocalBuyer()
    yield server
    server.close()


def test_pre_ping_hashes_go_only_to_a_buyer_that_opted_in(clean_db, workers, local):
    local.answers.update(pre_ping=b'{"eligible": true}', ping=b'{"accept": false, "reason": "no"}')
    def with_pre_ping(buyer_id: str, **extra) -> dict:
        return local.entry(buyer_id, bid=10.0, pre_ping_url=f"{local.url}/{buyer_id}/pre_ping", **extra)
    load_tree({"network": NETWORK, "tiers": [{"tier": 1, "mode": "waterfall"}],
               "buyers": [with_pre_ping("agreed", pre_ping_hashes=True), with_pre_ping("plain")]})
    lead_id = submit_lead(make_lead("solar", seed=51))
    wait_for(lead_id, ("unsold",))
    pre_pings = {headers["webhook-id"]: json.loads(body) for kind, headers, body in local.requests
                 if kind == "pre_ping"}
    assert len(pre_pings) == 2
    with_hashes = [b for b in pre_pings.values() if "phone_sha256" in b or "email_sha256" in b]
    assert len(with_hashes) == 1
    assert len(with_hashes[0]["phone_sha256"]) == 64
    plain = next(b for b in pre_pings.values() if b not in with_hashes)
    assert not {"phone_sha256", "email_sha256"} & set(plain)


PAUSE = {"post_reject_pause_rate": 0.5, "post_reject_pause_min_posts": 2, "post_reject_pause_h": 24}


def test_a_buyer_that_takes_posts_and_rejects_them_is_paused(clean_db, workers, local):
    local.answers.update(ping=b'{"accept": true, "bid": 60}',
                         post=b'{"accepted": false, "reason": "duplicate"}')
    honest = LocalBuyer()
    honest.answers.update(ping=b'{"accept": true, "bid": 50}', post=b'{"accepted": true}')
    try:
        load_tree({"network": {**NETWORK, **PAUSE}, "tiers": [{"tier": 1, "mode": "auction"}],
                   "buyers": [local.entry("harvester"), honest.entry("honest")]})
        for seed in (52, 53):
            view = wait_for(submit_lead(make_lead("solar", seed=seed)), ("sold",))
            assert view["sale"]["buyer_id"] == "honest"
        assert local.received["post"] == 2
        third = wait_for(submit_lead(make_lead("solar", seed=54)), ("sold",))
        assert third["sale"]["buyer_id"] == "honest"
        assert [s["reason"] for s in third["skipped"] if s["buyer_id"] == "harvester"] == [
            "paused_post_rejects"]
        assert local.received["ping"] == 2 and local.received["post"] == 2
        with db.transaction() as cur:
            report = {b["buyer_id"]: b for b in views.report(cur)["buyers"]}
        assert report["harvester"]["post_reject_rate"] == 1.0
        assert report["harvester"]["paused_until"] is not None
        assert report["honest"]["post_reject_rate"] == 0.0 and report["honest"]["paused_until"] is None
        assert "paused until" in cli("report").stdout
    finally:
        honest.close()


def test_pingtree_lead_escapes_control_characters_from_a_buyer(clean_db, workers, local):
    local.answers.update(ping=b'{"accept": false, "reason": "cap"}')
    load_tree({"network": NETWORK, "tiers": [{"tier": 1, "mode": "auction"}],
               "buyers": [local.entry("sly", bid=10.0)]})
    lead_id = submit_lead(make_lead("solar", seed=55))
    wait_for(lead_id, ("unsold",))
    with db.transaction() as cur:   # as an older version stored it, before answers were made safe
        cur.execute("UPDATE pings SET reason = %s WHERE lead_id = %s",
                    ("\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil", lead_id))
    shown = cli("lead", lead_id)
    assert shown.returncode == 0
    assert not any(c in shown.stdout for c in "\x1b\x07\x9b\u202e")
    assert "\\x1b]0;owned\\x07\\x1b[2J" in shown.stdout
