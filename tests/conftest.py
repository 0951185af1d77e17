"""Test fixtures on real parts: a test database, a Redis db index, Celery workers, mock buyers."""
from __future__ import annotations

import os

# Tests never touch the configured database or Redis: they drop and flush what they use. Two runs on
# one host pick their own with PINGTREE_TEST_DATABASE_URL and PINGTREE_TEST_REDIS_URL.
os.environ["PINGTREE_DATABASE_URL"] = os.environ.get(
    "PINGTREE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pingtree_test")
os.environ["PINGTREE_REDIS_URL"] = os.environ.get("PINGTREE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ["PINGTREE_ALLOW_PRIVATE_BUYERS"] = "1"
os.environ.setdefault("PINGTREE_POST_BACKOFF_S", "0.05")
# Two buyers per ping task: tests with three or more buyers run the chord of several shards.
os.environ.setdefault("PINGTREE_PING_SHARD_SIZE", "2")

import random  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import psycopg2.errors  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402

from config.settings import settings  # noqa: E402
from pipeline.adapters import db, store  # noqa: E402
from pipeline.domain import samples  # noqa: E402
from pipeline.domain.leads import VERTICALS  # noqa: E402
from pipeline.domain.tree import parse_tree  # noqa: E402

TABLES = ("sales", "cap_reservations", "cap_usage", "post_attempts", "pings", "auction_shards",
          "auctions", "lead_events", "consents", "leads", "buyers", "tiers", "suppressions")


@pytest.fixture(scope="session")
def database():
    """A fresh, migrated test database for the session."""
    db.drop_database(settings.database_url)
    db.migrate(settings.database_url)
    yield settings.database_url
    db.reset_pools()


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


@pytest.fixture
def clean_db(database):
    """An empty database; the last test's leads may still be moving in the test workers."""
    settle()
    for attempt in range(5):
        try:
            with db.transaction() as cur:
                cur.execute("SET LOCAL lock_timeout = '5s'")
                cur.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
                cur.execute("DELETE FROM network; INSERT INTO network (id) VALUES (1)")
            break
        except (db.DatabaseDown, psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            if attempt == 4:
                raise
            time.sleep(0.5)
    yield database


@pytest.fixture(scope="session")
def broker():
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(scope="session")
def workers(database, broker):
    """Real Celery worker processes on every queue, as deploy/Procfile would run them."""
    from pipeline.devtools.stack import Stack
    from tasks.app import app
    # A worker left over from an interrupted run would eat this run's messages: stop it.
    if app.control.ping(timeout=0.5):
        app.control.shutdown()
        time.sleep(2)
    broker.flushdb()
    queues = "validate,score,ping,award,deliver,rerun"
    command = (f"celery -A tasks worker -Q {queues} -n test@%h -P threads -c 12 -l INFO"
               " --without-gossip --without-mingle --without-heartbeat")
    log_dir = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "worker-logs")
    stack = Stack(["worker"], overrides={"worker": command}, log_dir=__import__("pathlib").Path(log_dir))
    stack.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if stack.dead():
            raise RuntimeError(f"the test worker died; see {log_dir}/worker.log")
        if app.control.ping(timeout=0.5):
            break
    else:
        stack.stop()
        raise RuntimeError("the test worker did not answer within 30 s")
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def mock_fleet():
    from pipeline.devtools.mockbuyers import MockBuyersProcess
    with MockBuyersProcess({"buyers": [{"id": "idle"}]}, seed=7) as fleet:
        yield fleet


@pytest.fixture
def buyers(mock_fleet):
    """The mock buyer server, reset; tests set their own fleet with buyers.set_fleet(...)."""
    mock_fleet.reset()
    return mock_fleet


def load_tree(doc: dict) -> dict:
    import json
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
    from pipeline.adapters import views
    until = time.monotonic() + timeout
    while True:
        with db.transaction() as cur:
            view = views.lead_view(cur, lead_id)
        if view and view["status"] in statuses:
            return view
        if time.monotonic() > until:
            raise AssertionError(f"lead {lead_id} is {view and view['status']}, not {statuses}")
        time.sleep(0.05)
