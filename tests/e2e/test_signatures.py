"""Pings and posts signed by the real pipeline verify with the standardwebhooks library."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError

from pipeline import submit_lead
from pipeline.adapters import db, store
from pipeline.domain.buyer_secret import new_secret, secret_problem
from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import parse_tree
from tests.helpers import LocalBuyer, cli, load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 300, "duplicate_window_h": 0, "stuck_after_s": 60}


@pytest.fixture
def buyer():
    server = LocalBuyer()
    yield server
    server.close()


def test_a_ping_and_a_post_verify_with_the_library_and_nothing_else_does(clean_db, workers, buyer,
                                                                        monkeypatch):
    secret, other = new_secret(), new_secret()
    buyer.answers.update(ping=b'{"accept": true, "bid": 30, "ref": "R-1"}', post=b'{"accepted": true}')
    load_tree({"network": NETWORK, "tiers": [{"tier": 1, "mode": "auction"}],
               "buyers": [buyer.entry("acme", secret=secret)]})
    lead_id = submit_lead(make_lead("solar", seed=41))
    assert wait_for(lead_id, ("sold",))["sale"]["buyer_id"] == "acme"
    sent = {kind: (headers, body) for kind, headers, body in buyer.requests}
    assert set(sent) == {"ping", "post"}
    for kind, (headers, body) in sent.items():
        standardwebhooks.Webhook(secret).verify(body, headers)          # valid
        with pytest.raises(WebhookVerificationError):                   # tampered body
            standardwebhooks.Webhook(secret).verify(body.replace(b"30", b"99", 1) if kind == "post"
                                                    else body + b" ", headers)
        with pytest.raises(WebhookVerificationError):                   # another buyer's secret
            standardwebhooks.Webhook(other).verify(body, headers)
    later = datetime.now(UTC) + timedelta(minutes=6)

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", Clock)
    for headers, body in sent.values():
        with pytest.raises(WebhookVerificationError):                   # stale timestamp
            standardwebhooks.Webhook(secret).verify(body, headers)


def test_a_buyer_loaded_earlier_with_a_plain_secret_is_sent_nothing_and_named(clean_db, workers, buyer):
    buyer.answers.update(ping=b'{"accept": true, "bid": 30}', post=b'{"accepted": true}')
    tree = parse_tree(json.dumps(
        {"network": NETWORK, "tiers": [{"tier": 1, "mode": "auction"}], "buyers": [buyer.entry("old")]}),
        VERTICALS, allow_private=True)
    tree["buyers"][0]["secret"] = "plain-text-secret-from-an-older-tree"   # as an older version stored it
    with db.transaction() as cur:
        store.load_tree(cur, tree)
    lead_id = submit_lead(make_lead("solar", seed=42))
    view = wait_for(lead_id, ("unsold",))
    assert [(p["buyer_id"], p["outcome"], p["reason"]) for p in view["pings"]] == [
        ("old", "error", "invalid_secret")]
    assert buyer.requests == []
    migrate = cli("db", "migrate")
    assert migrate.returncode == 0
    assert "buyer old: its secret must be whsec_" in migrate.stderr
    assert "pingtree buyer secret" in migrate.stderr


def test_pingtree_buyer_secret_prints_a_fresh_valid_secret():
    printed = [cli("buyer", "secret").stdout.strip() for _ in range(2)]
    assert printed[0] != printed[1]
    assert all(secret_problem(s) is None for s in printed)
