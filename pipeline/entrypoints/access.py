"""Who calls the API (an operator key, a publisher's key, or nobody in open mode) and the rate
limits on them, counted in Redis so every API process shares them."""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from dataclasses import dataclass

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from pipeline.adapters import db
from pipeline.adapters import publishers as publisher_store
from pipeline.adapters.publishers import Publisher

log = logging.getLogger("pingtree.access")


@dataclass(frozen=True)
class Caller:
    publisher: Publisher | None      # None: the operator (an operator key, or open mode)
    key_id: str | None               # what the per-key rate limit counts; None in open mode

    @property
    def operator(self) -> bool:
        return self.publisher is None


OPEN = Caller(None, None)


class Refused(Exception):
    def __init__(self, status: int, message: str, **headers: str):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def bearer_token(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Gate:
    """Admits a request: the caller it comes from, or Refused (401, 403, 429, 503)."""

    def __init__(self, operator_keys: tuple[str, ...], redis_url: str, rate_limit: str,
                 auth_fail_limit: str):
        # Bytes: compare_digest refuses non-ASCII str, and a header may carry any latin-1.
        self.operator_keys = tuple(k.encode() for k in operator_keys)
        if redis_url.startswith("unix://"):   # limits spells redis-py's Unix socket url redis+unix://
            redis_url = "redis+" + redis_url
        storage = storage_from_string(redis_url, key_prefix="pingtree-limits",
                                      socket_timeout=1, socket_connect_timeout=1)
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.per_key = parse(rate_limit)
        self.per_failing_address = parse(auth_fail_limit)
        self._keys_exist, self._keys_checked_until = False, 0.0

    def admit(self, authorization: str, client: str) -> Caller:
        # An address that failed too often is refused before its key is even looked at: a
        # guessing client learns nothing more, however many keys it tries.
        self._limit(self.per_failing_address, "auth-fail", client, hit=False)
        token = bearer_token(authorization)
        caller = self._caller(token) if token else None
        if caller is None:
            if not self.operator_keys and not self._publisher_keys_exist():
                return OPEN      # no key anywhere: a development setup, every caller operates
            self._limit(self.per_failing_address, "auth-fail", client, hit=True, refuse=False)
            raise Refused(401, "missing or wrong API key", **{"WWW-Authenticate": "Bearer"})
        if caller.publisher is not None and not caller.publisher.active:
            raise Refused(403, f"publisher {caller.publisher.id} is not active")
        self._limit(self.per_key, "key", caller.key_id, hit=True)
        return caller

    def _caller(self, token: str) -> Caller | None:
        raw = token.encode("utf-8", "surrogateescape")
        digest = hashlib.sha256(raw).hexdigest()
        if any(hmac.compare_digest(raw, key) for key in self.operator_keys):
            return Caller(None, f"operator-{digest[:16]}")
        try:
            with db.transaction() as cur:
                publisher = publisher_store.key_owner(cur, token)
        except db.DatabaseDown:
            raise Refused(503, "storage unavailable, retry later", **{"Retry-After": "5"}) from None
        return Caller(publisher, f"publisher-{digest[:16]}") if publisher else None

    def _publisher_keys_exist(self) -> bool:
        # Asked at most once a second: open mode must not cost every request a transaction.
        # Once a key exists the answer is kept (auth never turns itself off in a process).
        now = time.monotonic()
        if self._keys_exist or now < self._keys_checked_until:
            return self._keys_exist
        try:
            with db.transaction() as cur:
                self._keys_exist = publisher_store.any_live_key(cur)
        except db.DatabaseDown:
            raise Refused(503, "storage unavailable, retry later", **{"Retry-After": "5"}) from None
        self._keys_checked_until = now + 1.0
        return self._keys_exist

    def _limit(self, item, kind: str, who: str, *, hit: bool, refuse: bool = True) -> None:
        try:
            allowed = (self.limiter.hit if hit else self.limiter.test)(item, kind, who)
            if allowed or not refuse:
                return
            reset_at = self.limiter.get_window_stats(item, kind, who).reset_time
        except Exception as exc:
            # Redis down: a lead is worth more than a rate limit; the limit resumes with Redis.
            log.warning("rate limit not counted: %s", type(exc).__name__)
            return
        wait = max(1, math.ceil(reset_at - time.time()))
        raise Refused(429, "too many requests", **{"Retry-After": str(wait)})
