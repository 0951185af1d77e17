"""The tests' own quiet check (tests/helpers.py wait_until_quiet, used by clean_db): it sees a
message a worker holds for its countdown, and a lead left with no message to move it."""
from __future__ import annotations

import time

from pipeline import submit_lead
from pipeline.adapters import db
from pipeline.service import intake
from tests.helpers import STUCK, make_lead, one_taker, wait_until_quiet


def test_a_message_waiting_for_its_countdown_is_not_quiet(clean_db, workers):
    from tasks.app import app
    app.send_task("pingtree.sweep_stuck", countdown=3)      # nothing to sweep: harmless
    until = time.monotonic() + 10
    while not (left := wait_until_quiet(0.2)) or not left[0].startswith("taken from"):
        assert time.monotonic() < until, left                 # queued first, then held by a worker
    assert left == [left[0]] and left[0].startswith("taken from rerun, not acknowledged: "
                                                    "pingtree.sweep_stuck() eta "), left
    assert wait_until_quiet(15) == []


def test_a_lead_with_no_message_to_move_it_is_stuck(clean_db, workers, buyers, monkeypatch):
    one_taker(buyers)
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)   # its message lost
    lead_id = submit_lead(make_lead("solar", seed=3))
    started = time.monotonic()
    left = wait_until_quiet(30)
    assert time.monotonic() - started < 10                  # given up early: nothing can move it
    assert left[0].startswith(f"lead {lead_id} received (unchanged for ") and left[-1] == STUCK
    with db.transaction() as cur:                           # end it, as the sweep would
        cur.execute("UPDATE leads SET status='rejected' WHERE id=%s", (lead_id,))
    assert wait_until_quiet(5) == []
