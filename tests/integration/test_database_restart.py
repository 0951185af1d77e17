"""PostgreSQL restarts and outages on a private cluster: the pool recovers at once."""
from __future__ import annotations

import threading

import pytest

from pipeline.adapters import db
from pipeline.devtools.servers import PostgresCluster


@pytest.fixture(scope="module")
def cluster():
    found = PostgresCluster().init()
    yield found
    found.destroy()


def select_one(url: str) -> int:
    with db.transaction(url) as cur:
        cur.execute("SELECT 1 AS one")
        return cur.fetchone()["one"]


def fill_pool(url: str, n: int) -> None:
    """Open ``n`` pooled connections at once (they stay in the pool, idle)."""
    barrier = threading.Barrier(n)

    def hold():
        with db.transaction(url) as cur:
            barrier.wait(timeout=10)
            cur.execute("SELECT 1")
    threads = [threading.Thread(target=hold) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_after_a_restart_one_transaction_fails_not_one_per_pooled_connection(cluster):
    url = cluster.url()
    fill_pool(url, 4)
    cluster.restart()
    outcomes = []
    for _ in range(6):
        try:
            outcomes.append(select_one(url))
        except db.DatabaseDown:
            outcomes.append("down")
    assert outcomes == ["down", 1, 1, 1, 1, 1]


def test_retrying_hides_a_restart_and_reports_an_outage(cluster):
    url = cluster.url()
    fill_pool(url, 4)
    cluster.restart()
    assert db.retrying(lambda: select_one(url), attempts=2, wait_s=0.05) == 1
    cluster.stop()
    with pytest.raises(db.DatabaseDown):               # down: the API answers 503
        db.retrying(lambda: select_one(url), attempts=2, wait_s=0.05)
    cluster.start()
    assert db.retrying(lambda: select_one(url), attempts=2, wait_s=0.05) == 1
