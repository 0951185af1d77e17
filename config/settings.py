"""Settings read once from the environment; nothing else in pingtree reads os.environ."""
from __future__ import annotations

import os
from dataclasses import dataclass


def _flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() in {"1", "true", "yes", "on"}


def _tristate(name: str) -> bool | None:
    """Unset (or empty): None, decide by what answers; otherwise a flag."""
    return _flag(name) if os.environ.get(name, "").strip() else None


@dataclass(frozen=True)
class Settings:
    redis_url: str
    database_url: str
    http_addr: str
    api_keys: tuple[str, ...]
    flower_basic_auth: str | None
    allow_private_buyers: bool
    # Buyers per ping task: one task pings a shard of the tier concurrently (DESIGN.md).
    ping_shard_size: int
    # The close task fires this long after the auction deadline, in case the chord never does.
    close_grace_s: float
    # Post delivery: attempts and back-off for 5xx / time-out / connection errors.
    post_attempts: int
    post_backoff_s: float
    post_timeout_s: float
    # One post in flight per lead holds a lease this long (longer than the post's own budget);
    # only when it runs out without an answer may another delivery take the lead over.
    post_lease_s: float
    # Largest buyer answer we read, in bytes.
    max_answer_bytes: int
    # Consent: how far in the future / how old a consent timestamp may be.
    consent_max_future_s: int
    consent_max_age_s: int
    max_body_bytes: int
    log_level: str
    # Log lines: json (one object per line, allow-listed fields) or text (for a terminal).
    log_format: str
    # PostgreSQL connections one process keeps open (threads beyond it wait for one).
    db_pool_size: int
    # Where nudges are sent from: the Celery shell, named here so pipeline/ never imports it.
    dispatcher: str
    # Celery task events for Flower (task-sent/received/started/succeeded); the bench turns
    # them off to measure what they cost.
    task_events: bool
    # Where `make demo` keeps its own database and Redis db (it empties both).
    demo_database_url: str
    demo_redis_url: str
    # A beat job is late when its last run is older than two periods plus this (/healthz/beat).
    beat_late_s: float
    # A worker touches this file every 5 s while it consumes (k8s liveness probe); unset: off.
    worker_alive_file: str | None
    # `make demo` / `make test` on embedded PostgreSQL and Redis: True forces them, False forbids
    # them, None uses them only when nothing answers on the default local addresses.
    embedded: bool | None
    # The window of the business figures /metrics computes at scrape (pingtree_window_*).
    metrics_window_s: float
    # An Idempotency-Key is the publisher's own and is free again after this many hours.
    idempotency_window_h: float
    # Requests per API key, and failed authentications per client address ("limits" syntax).
    rate_limit: str
    auth_fail_limit: str
    # waitress: open connections at most, and how long an idle or half-sent one is kept.
    http_connection_limit: int
    http_channel_timeout_s: int
    # The reverse proxy whose X-Forwarded-For names the client (unset: the peer is the client).
    trusted_proxy: str | None


def load() -> Settings:
    env = os.environ.get
    keys = tuple(k.strip() for k in env("PINGTREE_API_KEYS", "").split(",") if k.strip())
    return Settings(
        redis_url=env("PINGTREE_REDIS_URL", "redis://127.0.0.1:6379/0"),
        database_url=env("PINGTREE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pingtree"),
        http_addr=env("PINGTREE_HTTP_ADDR", "127.0.0.1:8000"),
        api_keys=keys,
        flower_basic_auth=env("FLOWER_BASIC_AUTH") or None,
        allow_private_buyers=_flag("PINGTREE_ALLOW_PRIVATE_BUYERS"),
        ping_shard_size=int(env("PINGTREE_PING_SHARD_SIZE", "50")),
        close_grace_s=float(env("PINGTREE_CLOSE_GRACE_S", "0.25")),
        post_attempts=int(env("PINGTREE_POST_ATTEMPTS", "4")),
        post_backoff_s=float(env("PINGTREE_POST_BACKOFF_S", "0.5")),
        post_timeout_s=float(env("PINGTREE_POST_TIMEOUT_S", "10")),
        post_lease_s=float(env("PINGTREE_POST_LEASE_S")
                           or float(env("PINGTREE_POST_TIMEOUT_S", "10")) + 5),
        max_answer_bytes=int(env("PINGTREE_MAX_ANSWER_BYTES", "65536")),
        consent_max_future_s=int(env("PINGTREE_CONSENT_MAX_FUTURE_S", "300")),
        consent_max_age_s=int(env("PINGTREE_CONSENT_MAX_AGE_S", "86400")),
        max_body_bytes=65536,
        log_level=env("PINGTREE_LOG_LEVEL", "INFO"),
        log_format=env("PINGTREE_LOG_FORMAT", "json").strip().lower(),
        db_pool_size=int(env("PINGTREE_DB_POOL_SIZE", "8")),
        dispatcher=env("PINGTREE_DISPATCHER", "tasks.dispatch:send"),
        task_events=_flag("PINGTREE_TASK_EVENTS", "1"),
        demo_database_url=env("PINGTREE_DEMO_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pingtree_demo"),
        demo_redis_url=env("PINGTREE_DEMO_REDIS_URL", "redis://127.0.0.1:6379/3"),
        beat_late_s=float(env("PINGTREE_BEAT_LATE_S", "30")),
        worker_alive_file=env("PINGTREE_WORKER_ALIVE_FILE") or None,
        embedded=_tristate("PINGTREE_EMBEDDED"),
        metrics_window_s=float(env("PINGTREE_METRICS_WINDOW_S", "300")),
        idempotency_window_h=float(env("PINGTREE_IDEMPOTENCY_WINDOW_H", "24")),
        rate_limit=env("PINGTREE_RATE_LIMIT", "6000/minute"),
        auth_fail_limit=env("PINGTREE_AUTH_FAIL_LIMIT", "30/minute"),
        http_connection_limit=int(env("PINGTREE_HTTP_CONNECTION_LIMIT", "1000")),
        http_channel_timeout_s=int(env("PINGTREE_HTTP_CHANNEL_TIMEOUT_S", "15")),
        trusted_proxy=env("PINGTREE_TRUSTED_PROXY") or None,
    )


settings = load()
