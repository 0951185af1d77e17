"""What tests share: leads, trees, waits (fixtures stay in conftest.py)."""
from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, datetime

from pipeline.adapters import db, store, views
from pipeline.domain import samples
from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import parse_tree

MOVING = ("received", "validated", "scored", "auctioning", "delivering")


def settle(timeout: float = 10.0) -> bool:
    """Wait until no lead is moving through the pipeline; False when some still are."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        with db.transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM leads WHERE status = ANY(%s)", (list(MOVING),))
            if not cur.fetchone()["n"]:
                return True
        time.sleep(0.05)
    return False


def load_tree(doc: dict) -> dict:
    tree = parse_tree(json.dumps(doc), VERTICALS, allow_private=True)
    with db.transaction() as cur:
        store.load_tree(cur, tree)
    return tree


def one_taker(buyers) -> dict:
    """One buyer, `taker`, that answers at once and takes every lead at 20.00."""
    buyers.set_fleet({"defaults": {"latency_ms": 0},
                      "buyers": [{"id": "taker", "accept_rate": 1, "bid": 20.0}]})
    return load_tree(buyers.tree(tiers=[{"tier": 1, "mode": "auction"}],
                                 network={"score_floor": 0, "bid_floor": 1.0, "auction_timeout_s": 2,
                                          "max_cycles": 1, "rerun_interval_s": 300,
                                          "duplicate_window_h": 24, "stuck_after_s": 60}))


def make_lead(vertical: str = "solar", seed: int | None = None, **changes) -> dict:
    rng = random.Random(seed if seed is not None else uuid.uuid4().int)
    lead = samples.make_lead(rng, vertical, now=datetime.now(UTC))
    for path, value in changes.items():
        node = lead
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return lead


def wait_for(lead_id: str, statuses: tuple[str, ...], timeout: float = 20.0) -> dict:
    """Poll the lead view until the lead reaches one of ``statuses``."""
    until = time.monotonic() + timeout
    while True:
        with db.transaction() as cur:
            view = views.lead_view(cur, lead_id)
        if view and view["status"] in statuses:
            return view
        if time.monotonic() > until:
            raise AssertionError(f"lead {lead_id} is {view and view['status']}, not {statuses}")
        time.sleep(0.05)


# A network for pipeline tests: every lead is scored in, no duplicate check, quick cycles.
NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 2,
           "rerun_interval_s": 1, "duplicate_window_h": 0, "stuck_after_s": 60}


def fleet_of(*buyers: dict) -> dict:
    """A mock fleet of quick buyers (5 ms answers)."""
    return {"defaults": {"latency_ms": 5}, "buyers": list(buyers)}


def setup(buyers, fleet: dict, tiers=None, network=None) -> dict:
    """Serve ``fleet`` from the mock buyers and load its tree (one auction tier by default)."""
    buyers.set_fleet(fleet)
    return load_tree(buyers.tree(tiers=tiers or [{"tier": 1, "mode": "auction"}],
                                 network={**NETWORK, **(network or {})}))
