"""The embedded servers: a private folder, real PostgreSQL and Redis, Celery over the Unix socket."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg2
import pytest
import redis
from kombu import Connection, Exchange, Queue

from config.celeryconfig import celery_url
from pipeline.adapters import db
from pipeline.devtools import embedded

pytestmark = pytest.mark.integration


@pytest.fixture
def folder():
    # Under /tmp itself: as root the servers run as an unprivileged user, who must reach it.
    path = Path(tempfile.mkdtemp(prefix="pingtree-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_servers_run_in_a_private_folder_and_keep_postgres_data(folder):
    choice = embedded.choose("postgresql://postgres@127.0.0.1:5432/trial", "redis://127.0.0.1:6379/5",
                             force=True, folder=folder)
    try:
        assert choice.embedded == ("postgres", "redis")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert "trial" in choice.database_url and choice.redis_url.endswith("?db=5")
        db.create_database(choice.database_url)
        with psycopg2.connect(choice.database_url) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        client = redis.Redis.from_url(choice.redis_url)
        client.set("k", "v")
        assert redis.Redis.from_url(choice.redis_url.replace("db=5", "db=0")).get("k") is None
    finally:
        choice.stop()
    assert not embedded.answers(choice.database_url, 5432)
    assert not embedded.answers(choice.redis_url, 6379)

    again = embedded.choose("postgresql://postgres@127.0.0.1:5432/trial", "redis://127.0.0.1:6379/5",
                            force=True, folder=folder)
    try:
        with psycopg2.connect(again.database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT n FROM kept")
            assert cur.fetchone() == (7,)
    finally:
        again.stop()


def test_kombu_over_the_unix_socket_uses_the_db_of_the_url(folder):
    servers = embedded.Servers(folder)
    servers.start_redis()
    try:
        url = servers.redis_url(6)
        queue = Queue("probe", Exchange("probe"), routing_key="probe")
        with Connection(celery_url(url)) as conn:
            conn.Producer().publish({"lead_id": "x"}, exchange=queue.exchange, routing_key="probe",
                                    declare=[queue])
            assert redis.Redis.from_url(url).llen("probe") == 1
            assert redis.Redis.from_url(servers.redis_url(0)).llen("probe") == 0
            message = queue(conn.default_channel).get(no_ack=False)
            assert message.payload == {"lead_id": "x"}
            message.requeue()   # what a worker lost under acks-late does: the message comes back
            again = queue(conn.default_channel).get(no_ack=True)
            assert again.payload == {"lead_id": "x"}
    finally:
        servers.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the servers to another user")
def test_as_root_a_checkout_the_server_user_cannot_reach_keeps_its_data_under_tmp(folder):
    closed = folder / "closed"
    closed.mkdir(mode=0o700)   # a clone under a 0700 folder: nobody cannot get through
    servers = embedded.Servers(closed / ".embedded")
    assert servers.folder.parent == Path(tempfile.gettempdir())
    try:
        servers.start_redis()
        assert redis.Redis.from_url(servers.redis_url(0)).ping()
        assert stat.S_IMODE(servers.folder.stat().st_mode) == 0o700
    finally:
        servers.stop()
        shutil.rmtree(servers.folder, ignore_errors=True)


def admitted(gate, key_id: str) -> bool:
    from pipeline.entrypoints.access import Refused
    try:
        gate.limits.admit("127.0.0.1", key_id)
    except Refused:
        return False
    return True


def test_the_api_rate_limit_counts_in_the_db_of_a_socket_url(folder):
    from pipeline.entrypoints.access import Gate
    servers = embedded.Servers(folder)
    servers.start_redis()
    try:
        gate = Gate((), servers.redis_url(5), "3/second", "3/minute")
        assert [admitted(gate, "key") for _ in range(4)] == [True, True, True, False]
        assert redis.Redis.from_url(servers.redis_url(5)).keys("pingtree-limits*")
        assert not redis.Redis.from_url(servers.redis_url(0)).keys("pingtree-limits*")
    finally:
        servers.stop()
