"""Settings read once from the environment and checked whole; nothing else in pingtree reads os.environ."""
from __future__ import annotations

from dataclasses import dataclass

from environs import Env, EnvValidationError
from marshmallow.validate import OneOf, Range, Regexp

DATABASE_URL = Regexp(r"^postgres(ql)?://", error="must be a postgresql:// URL")
REDIS_URL = Regexp(r"^(rediss?|unix)://", error="must be a redis://, rediss:// or unix:// URL")
HOST_PORT = Regexp(r"^.*:\d{1,5}$", error="must be host:port, e.g. 127.0.0.1:8000")
RATE = Regexp(r"^\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?$",
              error="must be a rate like 6000/minute")
BASIC_AUTH = Regexp(r"^[^:,]+:[^,]+(,[^:,]+:[^,]+)*$", error="must be user:password[,user:password]")


class InvalidSettings(SystemExit):
    """Bad settings, one line per variable. A SystemExit: whatever process imports config
    (`pingtree`, a Celery worker, a script) stops with those lines and no traceback."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        super().__init__("\n".join(f"bad setting {name}: {' '.join(messages)}"
                                   for name, messages in sorted(problems.items())))


DEV_SUPPRESSION_KEY = "pingtree-development-only-suppression-key"

@dataclass(frozen=True)
class Settings:
    redis_url: str
    database_url: str
    http_addr: str
    api_keys: tuple[str, ...]
    flower_basic_auth: str | None
    flower_port: int
    allow_private_buyers: bool
    # Development on one machine: the API may start without API keys. Never in production.
    dev: bool
    # The key of the do-not-contact list's HMACs (kept out of the database); in development
    # only, a fixed public one stands in.
    suppression_key: str | None
    # Buyers per ping task: one task pings a shard of the tier concurrently.
    ping_shard_size: int
    # The beat closes an auction this long after its deadline, in case its ping tasks never do.
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
    log_level: int | str
    # Log lines: json (one object per line, allow-listed fields) or text (for a terminal).
    log_format: str
    # PostgreSQL connections one process keeps open (threads beyond it wait for one).
    db_pool_size: int
    # Celery task events for Flower (task-received/started/succeeded/failed); the bench turns
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
    # Retention (pingtree db prune, and the beat's prune-history job): ping, post and event
    # detail kept this many days, leads with their consent records and sales this many (>= 5 y).
    detail_keep_days: int
    record_keep_days: int
    # How long one beat prune may run (the rest waits for the next one).
    prune_budget_s: float


def load() -> Settings:
    """Every setting from the environment, or InvalidSettings naming each bad one."""
    env = Env(eager=False)   # collect every problem, then report them all at once
    values = dict(
        redis_url=env.str("PINGTREE_REDIS_URL", "redis://127.0.0.1:6379/0", validate=REDIS_URL),
        database_url=env.str("PINGTREE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pingtree",
                             validate=DATABASE_URL),
        http_addr=env.str("PINGTREE_HTTP_ADDR", "127.0.0.1:8000", validate=HOST_PORT),
        api_keys=tuple(k.strip() for k in env.list("PINGTREE_API_KEYS", []) if k.strip()),
        flower_basic_auth=env.str("FLOWER_BASIC_AUTH", None, validate=BASIC_AUTH) or None,
        flower_port=env.int("FLOWER_PORT", 5555, validate=Range(1, 65535)),
        allow_private_buyers=env.bool("PINGTREE_ALLOW_PRIVATE_BUYERS", False),
        dev=env.bool("PINGTREE_DEV", False),
        suppression_key=env.str("PINGTREE_SUPPRESSION_KEY", None) or None,
        ping_shard_size=env.int("PINGTREE_PING_SHARD_SIZE", 50, validate=Range(1, 1000)),
        close_grace_s=env.float("PINGTREE_CLOSE_GRACE_S", 0.25, validate=Range(0, 60)),
        post_attempts=env.int("PINGTREE_POST_ATTEMPTS", 4, validate=Range(1, 20)),
        post_backoff_s=env.float("PINGTREE_POST_BACKOFF_S", 0.5, validate=Range(0, 60)),
        post_timeout_s=env.float("PINGTREE_POST_TIMEOUT_S", 10.0,
                                 validate=Range(0, 300, min_inclusive=False)),
        post_lease_s=env.float("PINGTREE_POST_LEASE_S", None, validate=Range(0, 3600, min_inclusive=False)),
        max_answer_bytes=env.int("PINGTREE_MAX_ANSWER_BYTES", 65536, validate=Range(1024, 16 << 20)),
        consent_max_future_s=env.int("PINGTREE_CONSENT_MAX_FUTURE_S", 300, validate=Range(0, 86400)),
        consent_max_age_s=env.int("PINGTREE_CONSENT_MAX_AGE_S", 86400, validate=Range(1, 400 * 86400)),
        max_body_bytes=65536,
        log_level=env.log_level("PINGTREE_LOG_LEVEL", "INFO"),
        log_format=env.str("PINGTREE_LOG_FORMAT", "json", validate=OneOf(("json", "text"))),
        db_pool_size=env.int("PINGTREE_DB_POOL_SIZE", 8, validate=Range(1, 1000)),
        task_events=env.bool("PINGTREE_TASK_EVENTS", True),
        demo_database_url=env.str("PINGTREE_DEMO_DATABASE_URL",
                                  "postgresql://postgres@127.0.0.1:5432/pingtree_demo",
                                  validate=DATABASE_URL),
        demo_redis_url=env.str("PINGTREE_DEMO_REDIS_URL", "redis://127.0.0.1:6379/3", validate=REDIS_URL),
        beat_late_s=env.float("PINGTREE_BEAT_LATE_S", 30.0, validate=Range(0, 86400, min_inclusive=False)),
        worker_alive_file=env.str("PINGTREE_WORKER_ALIVE_FILE", None) or None,
        embedded=env.bool("PINGTREE_EMBEDDED", None),   # unset: decide by what answers
        metrics_window_s=env.float("PINGTREE_METRICS_WINDOW_S", 300.0, validate=Range(1, 7 * 86400)),
        idempotency_window_h=env.float("PINGTREE_IDEMPOTENCY_WINDOW_H", 24.0,
                                       validate=Range(0, 24 * 365, min_inclusive=False)),
        rate_limit=env.str("PINGTREE_RATE_LIMIT", "6000/minute", validate=RATE),
        auth_fail_limit=env.str("PINGTREE_AUTH_FAIL_LIMIT", "30/minute", validate=RATE),
        http_connection_limit=env.int("PINGTREE_HTTP_CONNECTION_LIMIT", 1000, validate=Range(1, 100_000)),
        http_channel_timeout_s=env.int("PINGTREE_HTTP_CHANNEL_TIMEOUT_S", 15, validate=Range(1, 3600)),
        trusted_proxy=env.str("PINGTREE_TRUSTED_PROXY", None) or None,
        detail_keep_days=env.int("PINGTREE_DETAIL_KEEP_DAYS", 30, validate=Range(1, 36500)),
        record_keep_days=env.int("PINGTREE_RECORD_KEEP_DAYS", 1827, validate=Range(1827, 36500)),
        prune_budget_s=env.float("PINGTREE_PRUNE_BUDGET_S", 20.0, validate=Range(1, 3600)),
    )
    try:
        env.seal()
    except EnvValidationError as exc:
        raise InvalidSettings(exc.error_messages) from None
    if values["suppression_key"] is None and values["dev"]:
        values["suppression_key"] = DEV_SUPPRESSION_KEY
    if values["post_lease_s"] is None:   # unset: the post's own budget and some slack
        values["post_lease_s"] = values["post_timeout_s"] + 5
    return Settings(**values)


settings = load()
