"""The bench's delay proxy reaches servers over TCP or a Unix socket (the embedded ones)."""
from __future__ import annotations

from pipeline.devtools.bench.delay import DelayProxy


def proxy() -> DelayProxy:
    p = DelayProxy(None, "/x/run/.s.PGSQL.5432", 1.0)
    p.port = 7000
    return p


def test_a_socket_postgres_url_goes_through_the_proxy_over_tcp():
    assert proxy().url_for("postgresql://postgres@/pingtree_bench?host=/x/run") == \
        "postgresql://postgres@127.0.0.1:7000/pingtree_bench"


def test_a_socket_redis_url_keeps_its_db():
    assert proxy().url_for("unix:///x/run/redis.sock?db=13") == "redis://127.0.0.1:7000/13"


def test_a_tcp_url_keeps_its_credentials_and_path():
    assert proxy().url_for("redis://:pw@127.0.0.1:6379/4") == "redis://:pw@127.0.0.1:7000/4"
