"""Settings: checked whole at start, every bad value named, ranges enforced."""
from __future__ import annotations

import pytest

from config import settings as config


def test_defaults_load(monkeypatch):
    for name in ("PINGTREE_PING_SHARD_SIZE", "PINGTREE_POST_TIMEOUT_S", "PINGTREE_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    loaded = config.load()
    assert (loaded.ping_shard_size, loaded.post_timeout_s, loaded.api_keys) == (50, 10.0, ())


@pytest.mark.parametrize("name, value", [
    ("PINGTREE_PING_SHARD_SIZE", "0"), ("PINGTREE_PING_SHARD_SIZE", "-5"), ("PINGTREE_POST_TIMEOUT_S", "ten"),
    ("PINGTREE_POST_TIMEOUT_S", "0"), ("PINGTREE_POST_ATTEMPTS", "0"), ("PINGTREE_DB_POOL_SIZE", "x"),
    ("PINGTREE_ALLOW_PRIVATE_BUYERS", "maybe"), ("PINGTREE_LOG_LEVEL", "loud"),
    ("PINGTREE_DATABASE_URL", "mysql://db/x"), ("PINGTREE_REDIS_URL", "127.0.0.1:6379"),
    ("PINGTREE_HTTP_ADDR", "8000x"), ("FLOWER_PORT", "70000"), ("PINGTREE_MAX_ANSWER_BYTES", "10"),
])
def test_a_bad_value_is_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.InvalidSettings) as caught:
        config.load()
    assert list(caught.value.problems) == [name]
    assert str(caught.value.code).startswith(f"bad setting {name}: ")


def test_every_bad_value_is_reported_at_once(monkeypatch):
    monkeypatch.setenv("PINGTREE_PING_SHARD_SIZE", "0")
    monkeypatch.setenv("PINGTREE_POST_BACKOFF_S", "soon")
    with pytest.raises(config.InvalidSettings) as caught:
        config.load()
    assert len(str(caught.value.code).splitlines()) == 2


def test_api_keys_are_a_comma_list(monkeypatch):
    monkeypatch.setenv("PINGTREE_API_KEYS", "k1, k2,,")
    assert config.load().api_keys == ("k1", "k2")
