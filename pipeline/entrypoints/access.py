"""Who calls the API (an operator key, a publisher's key, or nobody in open mode) and the rate
limits on them, counted in Redis so every API process shares them."""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from dataclasses import dataclass

import redis
from limits import parse

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


# One round trip a request: the failing address's window is tested and the key's counted in one
# script (a sliding window counter, as the `limits` library's: the previous window's count
# weighted by how much of it still overlaps, plus the current one's). A window is two Redis
# keys; the current one lives two periods and becomes the previous one after the first.
_ADMIT = """
local function window(previous, current, expiry)
  local ttl = tonumber(redis.call('pttl', current))
  if ttl > 0 and ttl < expiry then
    redis.call('rename', current, previous)
    redis.call('set', current, 0, 'PX', ttl + expiry)
  end
  local pc = tonumber(redis.call('get', previous)) or 0
  local pt = math.max(tonumber(redis.call('pttl', previous)), 0)
  local cc = tonumber(redis.call('get', current)) or 0
  local ct = math.max(tonumber(redis.call('pttl', current)), 0)
  return pc, pt, cc, ct
end
local function count(current, expiry)
  if redis.call('exists', current) == 1 then
    redis.call('incr', current)
  else
    redis.call('set', current, 1, 'PX', expiry * 2)
  end
end
local fail_limit, fail_expiry = tonumber(ARGV[1]), tonumber(ARGV[2])
local pc, pt, cc, ct = window(KEYS[1], KEYS[2], fail_expiry)
if ARGV[5] == 'fail' then
  count(KEYS[2], fail_expiry)
  return {0, 0, 0, 0, 0}
end
if pc * pt / fail_expiry + cc >= fail_limit then
  return {1, pc, pt, cc, ct}
end
if #KEYS < 4 then
  return {0, 0, 0, 0, 0}
end
local key_limit, key_expiry = tonumber(ARGV[3]), tonumber(ARGV[4])
pc, pt, cc, ct = window(KEYS[3], KEYS[4], key_expiry)
if math.floor(pc * pt / key_expiry) + cc + 1 > key_limit then
  return {2, pc, pt, cc, ct}
end
count(KEYS[4], key_expiry)
return {0, 0, 0, 0, 0}
"""
PREFIX = "pingtree-limits"


class Limits:
    """The API's two rate limits, counted in Redis so every API process shares them."""

    def __init__(self, redis_url: str, per_key: str, per_failing_address: str):
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        self.script = self.redis.register_script(_ADMIT)
        key, fail = parse(per_key), parse(per_failing_address)
        self.args = [fail.amount, fail.get_expiry() * 1000, key.amount, key.get_expiry() * 1000]

    @staticmethod
    def _window(kind: str, who: str) -> list[str]:
        current = f"{PREFIX}:{{{kind}/{who}}}"
        return [f"{current}/-1", current]

    def admit(self, client: str, key_id: str | None) -> None:
        """Refused (429) when the address failed too often or the key is over its limit; else
        the key's request is counted. Redis down: admitted (a lead is worth more than a limit)."""
        keys = self._window("auth-fail", client)
        if key_id is not None:
            keys += self._window("key", key_id)
        try:
            verdict, *window = self.script(keys, [*self.args, "admit"])
        except redis.RedisError as exc:
            log.warning("rate limit not counted: %s", type(exc).__name__)
            return
        if verdict:
            expiry_ms = self.args[1] if verdict == 1 else self.args[3]
            raise Refused(429, "too many requests",
                          **{"Retry-After": str(retry_after(*map(int, window), expiry_ms))})

    def fail(self, client: str) -> None:
        """Count a failed authentication from this address."""
        try:
            self.script(self._window("auth-fail", client), [*self.args, "fail"])
        except redis.RedisError as exc:
            log.warning("rate limit not counted: %s", type(exc).__name__)


def retry_after(previous: int, previous_ms: int, current: int, current_ms: int,
                expiry_ms: int) -> int:
    """Whole seconds until a sliding window admits one more: when the next of the previous
    window's requests stops counting, or the current window turns (the `limits` library's rule)."""
    resets = []
    if previous:
        resets.append(previous_ms % (expiry_ms / previous))
    if current:
        resets.append(current_ms % expiry_ms)
    return max(1, math.ceil(min(resets, default=0) / 1000))


class Gate:
    """Admits a request: the caller it comes from, or Refused (401, 403, 429, 503)."""

    def __init__(self, operator_keys: tuple[str, ...], redis_url: str, rate_limit: str,
                 auth_fail_limit: str):
        # Bytes: compare_digest refuses non-ASCII str, and a header may carry any latin-1.
        self.operator_keys = tuple(k.encode() for k in operator_keys)
        self.limits = Limits(redis_url, rate_limit, auth_fail_limit)
        self._keys_exist, self._keys_checked_until = False, 0.0

    def admit(self, authorization: str, client: str) -> Caller:
        token = bearer_token(authorization)
        if not token and not self.operator_keys and not self._publisher_keys_exist():
            return OPEN      # no key anywhere: a development setup, every caller operates
        raw = token.encode("utf-8", "surrogateescape")
        key_id = f"key-{hashlib.sha256(raw).hexdigest()[:16]}" if token else None
        # An address that failed too often is refused before its key is even looked at: a
        # guessing client learns nothing more, however many keys it tries. The key's request
        # is counted in the same round trip (a wrong key's count is never read).
        self.limits.admit(client, key_id)
        caller = self._caller(token, raw, key_id) if key_id else None
        if caller is None:
            if not self.operator_keys and not self._publisher_keys_exist():
                return OPEN
            self.limits.fail(client)
            raise Refused(401, "missing or wrong API key", **{"WWW-Authenticate": "Bearer"})
        if caller.publisher is not None and not caller.publisher.active:
            raise Refused(403, f"publisher {caller.publisher.id} is not active")
        return caller

    def _caller(self, token: str, raw: bytes, key_id: str) -> Caller | None:
        if any(hmac.compare_digest(raw, key) for key in self.operator_keys):
            return Caller(None, key_id)
        try:
            with db.transaction() as cur:
                publisher = publisher_store.key_owner(cur, token)
        except db.DatabaseDown:
            raise Refused(503, "storage unavailable, retry later", **{"Retry-After": "5"}) from None
        return Caller(publisher, key_id) if publisher else None

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
