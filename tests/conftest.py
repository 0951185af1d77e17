"""Test fixtures on real parts: a test database, a Redis db index, Celery workers, mock buyers."""
from __future__ import annotations

import os

# Tests never touch the configured database or Redis: they drop and flush what they use. Two runs on
# one host pick their own with PINGTREE_TEST_DATABASE_URL and PINGTREE_TEST_REDIS_URL.
# Under pytest-xdist (`make test` runs the suite in parallel) each worker process gwN takes its own
# database (name + "_gwN") and the Redis db index N above the run's: they share nothing.
from tests.isolation import per_worker  # noqa: E402

os.environ["PINGTREE_DATABASE_URL"], os.environ["PINGTREE_REDIS_URL"] = per_worker(
    os.environ.get("PINGTREE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pingtree_test"),
    os.environ.get("PINGTREE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11"),
    os.environ.get("PYTEST_XDIST_WORKER", ""))
os.environ["PINGTREE_ALLOW_PRIVATE_BUYERS"] = "1"
os.environ.setdefault("PINGTREE_DEV", "1")     # the API the tests start runs without keys
os.environ.setdefault("PINGTREE_SUPPRESSION_KEY", "test-suppression-key-not-secret")
os.environ.setdefault("PINGTREE_POST_BACKOFF_S", "0.05")
# A post in flight holds its lead for the time-out + 5 s: a killed worker's post is taken over sooner.
os.environ.setdefault("PINGTREE_POST_TIMEOUT_S", "4")
# Two buyers per ping task: tests with three or more buyers run the chord of several shards.
os.environ.setdefault("PINGTREE_PING_SHARD_SIZE", "2")

import time  # noqa: E402

import pytest  # noqa: E402
import redis  # noqa: E402
from psycopg2 import sql  # noqa: E402

from config import settings as config_settings  # noqa: E402
from pipeline.devtools import embedded  # noqa: E402

# Nothing answers on the default addresses (a machine with only Python), or PINGTREE_EMBEDDED=1:
# the tests run on the embedded PostgreSQL and Redis, started here and stopped when pytest ends.
try:
    SERVERS = embedded.choose(os.environ["PINGTREE_DATABASE_URL"], os.environ["PINGTREE_REDIS_URL"])
except embedded.Unavailable as exc:
    raise SystemExit(f"tests: {exc}") from exc
os.environ["PINGTREE_DATABASE_URL"] = SERVERS.database_url
os.environ["PINGTREE_REDIS_URL"] = SERVERS.redis_url
config_settings.settings = config_settings.load()   # what every module imported from here on reads

from config.settings import settings  # noqa: E402
from pipeline.adapters import db  # noqa: E402
from pipeline.service import nudges  # noqa: E402
from tests.helpers import APP_ROLE, WORKER_LOG, wait_until_quiet  # noqa: E402


def _celery_send(sent) -> None:
    """The test process's nudge sender (its composition root): the Celery shell, loaded on first
    use so the unit tests never import Celery."""
    from tasks.dispatch import send
    send(sent)


nudges.install_sender(_celery_send)

# Every table is emptied before each test (read from the catalogue: a new migration's table too)
# but those the migrations filled (the migrations' record, the network's row, the tree version),
# found when the session's database is made; the network row is put back at its defaults.
_SEEDED: set[str] = set()


def _tables(cur) -> list[str]:
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    return [row["tablename"] for row in cur.fetchall()]


@pytest.fixture(scope="session")
def database():
    """A fresh, migrated test database for the session."""
    db.drop_database(settings.database_url)
    db.migrate(settings.database_url)
    with db.transaction() as cur:
        for table in _tables(cur):
            cur.execute(sql.SQL("SELECT EXISTS (SELECT FROM {}) AS filled").format(sql.Identifier(table)))
            if cur.fetchone()["filled"]:
                _SEEDED.add(table)
    yield settings.database_url
    db.reset_pools()


# How long a test's leftovers may take to finish before the test is failed for leaving them:
# the longest legitimate tail is a post or ping waiting out its buyer's time-out, or a stage's
# back-off retries after a PostgreSQL outage.
QUIET_WITHIN_S = float(os.environ.get("PINGTREE_TEST_QUIET_S", "30"))


@pytest.fixture
def clean_db(database, request):
    """An empty database, on a quiet pipeline: no lead in a moving status, no message queued or
    held by a worker on the test Redis db. A test that leaves work moving past QUIET_WITHIN_S
    fails at its teardown with what still moves; nothing is truncated under a moving lead."""
    # A lead moves only on a message: with none queued or held, nothing can change under the
    # TRUNCATE (a lead the last test left stuck made that test fail at its teardown).
    left = wait_until_quiet(QUIET_WITHIN_S, leads=False)
    if left:
        pytest.fail("an earlier test left the pipeline moving; still moving:\n  " + "\n  ".join(left),
                    pytrace=False)
    with db.transaction() as cur:
        # Quiet means no worker holds a lock: waiting for one would hide a defect, so fail fast.
        cur.execute("SET LOCAL lock_timeout = '2s'")
        # Consent records refuse TRUNCATE by trigger; a superuser's replica mode skips it.
        cur.execute("SET LOCAL session_replication_role = replica")
        tables = [sql.Identifier(table) for table in _tables(cur) if table not in _SEEDED]
        cur.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(tables)))
        cur.execute("DELETE FROM network; INSERT INTO network (id) VALUES (1)")
    yield database
    left = wait_until_quiet(QUIET_WITHIN_S, leads=not request.node.get_closest_marker("stops_leads_midway"))
    if left:
        pytest.fail(f"this test left the pipeline moving after it ended (waited up to {QUIET_WITHIN_S:g} s);"
                    " still moving:\n  " + "\n  ".join(left), pytrace=False)


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
    # Without the deadline close: tests close auctions themselves, on a database they share
    # (tests/e2e/test_deadline_close.py starts a worker of its own that runs it).
    command = (f"celery -A tasks worker -Q {queues} -n test@%h -P threads -c 12 -l INFO"
               " --without-gossip --without-mingle --without-heartbeat --without-deadline-close")
    log_dir = str(WORKER_LOG.parent)
    # The workers run as the least-privilege application role, as the README says to run them.
    as_app = settings.database_url + ("&" if "?" in settings.database_url else "?") + APP_ROLE
    stack = Stack(["worker"], overrides={"worker": command}, env={"PINGTREE_DATABASE_URL": as_app},
                  log_dir=__import__("pathlib").Path(log_dir))
    stack.start()
    deadline = time.monotonic() + 90          # generous on a loaded box; a death is seen at once
    while time.monotonic() < deadline:
        if stack.dead():
            raise RuntimeError(f"the test worker died; see {log_dir}/worker.log")
        if app.control.ping(timeout=0.5):
            break
    else:
        stack.stop()
        raise RuntimeError("the test worker did not answer within 90 s")
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


def pytest_sessionstart(session):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(SERVERS.line("tests"))


def pytest_unconfigure(config):
    SERVERS.stop()


def pytest_configure(config):
    config.addinivalue_line("markers", "stops_leads_midway: the test runs the stages itself and leaves"
                            " a lead in a moving status on purpose; only messages must be gone at its end")


def pytest_collection_modifyitems(items):
    """Outside tests/unit a test needs PostgreSQL, Redis or a buyer server: `-m "not integration"`."""
    for item in items:
        if "/unit/" not in str(item.path):
            item.add_marker(pytest.mark.integration)


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (make test): PINGTREE_TEST_WORKERS processes (3: the suite mostly waits on
    workers, buyers and clocks, so 2 cores carry 3), or none on the embedded servers, which one
    process starts and owns."""
    if SERVERS.embedded:
        return 0
    return int(os.environ.get("PINGTREE_TEST_WORKERS", "3"))
