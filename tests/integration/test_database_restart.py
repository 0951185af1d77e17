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


@pytest.fixture(scope="module")
def durable_cluster():
    """Commits that wait for the disk outlive a crash of the server, as on a real one."""
    found = PostgresCluster(synchronous_commit=True).init()
    yield found
    found.destroy()


def test_a_crash_keeps_each_durable_commit_and_every_commit_before_it(durable_cluster):
    """The stages before the post commit without waiting for the disk (db.transaction(durable=
    False)); the next durable commit (deliver's claim, before the post goes out) carries them to
    disk with it. Here 200 such commits and then one durable commit, and the server crashes at
    once (an immediate stop, no shutdown): all 201 are there after the recovery. (Without the
    durable one, the last few lazy ones are lost: a crash takes back a fraction of a second.)"""
    url = durable_cluster.url()
    with db.transaction(url) as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS crash_probe (id int PRIMARY KEY, durable bool)")
        cur.execute("TRUNCATE crash_probe")
    for i in range(200):
        with db.transaction(url, durable=False) as cur:
            cur.execute("INSERT INTO crash_probe VALUES (%s, false)", (i,))
    with db.transaction(url, each_statement=True) as cur:
        cur.execute("INSERT INTO crash_probe VALUES (200, true)")
    durable_cluster.stop("immediate")
    durable_cluster.start()
    db.reset_pools()
    with db.transaction(url) as cur:
        cur.execute("SELECT count(*) AS n, count(*) FILTER (WHERE durable) AS durable FROM crash_probe")
        assert cur.fetchone() == {"n": 201, "durable": 1}
