"""An award worker closes an overdue auction itself: no beat, no message, shortly after
deadline + grace."""
from __future__ import annotations

import time

import pytest

from config import schedule
from config.settings import settings
from pipeline import submit_lead
from pipeline.adapters import db, store
from pipeline.devtools.stack import Stack
from pipeline.service import intake, lifecycle
from tests.helpers import APP_ROLE, load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 1, "max_cycles": 1,
           "rerun_interval_s": 1, "duplicate_window_h": 0, "stuck_after_s": 60}


@pytest.fixture
def award_worker(database, broker, tmp_path):
    """A worker on `award` alone, as the Procfile runs it (the session's workers run no close)."""
    command = "celery -A tasks worker -Q award -n closer@%h -P threads -c 2 -l INFO --without-gossip"
    as_app = settings.database_url + ("&" if "?" in settings.database_url else "?") + APP_ROLE
    worker = Stack(["award"], log_dir=tmp_path, env={"PINGTREE_DATABASE_URL": as_app},
                   overrides={"award": command}).start()
    log = tmp_path / "award.log"
    until = time.monotonic() + 60
    while " ready." not in (log.read_text() if log.exists() else ""):
        assert not worker.dead() and time.monotonic() < until, log.read_text()[-2000:]
        time.sleep(0.2)
    yield worker
    worker.stop()


def test_an_auction_whose_ping_task_died_is_awarded_by_the_award_worker_itself(clean_db, buyers,
                                                                               award_worker,
                                                                               monkeypatch):
    buyers.set_fleet({"buyers": [{"id": "b1", "accept_rate": 1, "bid": 22.0, "latency_ms": 2}]})
    load_tree(buyers.tree(network=NETWORK))
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)
    lead_id = submit_lead(make_lead("solar", seed=61))
    assert lifecycle.validate_lead(lead_id)          # run here: no worker hears of it
    [ping] = lifecycle.score_lead(lead_id)           # the ping message is never sent
    with db.transaction() as cur:                    # its task started (the clock runs), then died
        assert store.claim_shard(cur, *ping.args) is not None
    # Nobody sends anything (no beat runs here): the award worker's own close awards it.
    view = wait_for(lead_id, ("unsold",), timeout=NETWORK["auction_timeout_s"] + 10)
    with db.transaction() as cur:
        cur.execute("SELECT extract(epoch FROM closed_at - deadline_at) AS lag FROM auctions"
                    " WHERE lead_id=%s", (lead_id,))
        lag = float(cur.fetchone()["lag"])
    assert settings.close_grace_s <= lag < settings.close_grace_s + schedule.CLOSE_EVERY_S + 2.0, lag
    assert [p["buyer_id"] for p in view["pings"]] == ["b1"] and view["sale"] is None
    assert buyers.pings(lead_id) == []
