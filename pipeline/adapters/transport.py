"""The one HTTP caller to buyers: send(request, budget) -> Reply; network faults are values.

Every worker process keeps one asyncio loop (uvloop's) in a background thread with one keep-alive
aiohttp session: a shard of pings goes out at once from a single thread (send_many), and
any thread may post (send). A ping costs a fraction of a millisecond of CPU this way, where a
thread per request with a blocking client cost several times more.
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

import aiohttp
import uvloop
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from pipeline.domain.hosts import host_problem, is_public_address

USER_AGENT = "pingtree/0.1"


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    budget_s: float = 3.0
    method: str = "POST"


@dataclass(frozen=True)
class Reply:
    status: int | None         # None when no HTTP answer came
    body: bytes
    latency_ms: int
    failure: str | None = None  # timeout, too_large, private_address, invalid_host, insecure_url,
    #                             connect_error, error


class PrivateAddress(OSError):
    """The buyer host resolves to an address that is not public."""


class PublicOnlyResolver(AbstractResolver):
    """Resolve at connect time and refuse any host with a non-public address (SSRF guard)."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        found = await self._inner.resolve(host, port, family)
        if not found or not all(is_public_address(entry["host"]) for entry in found):
            raise PrivateAddress(f"{host} resolves to a non-public address")
        return found

    async def close(self) -> None:
        await self._inner.close()


class _Client:
    """One event loop thread and one session per (process, guard setting)."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private
        self.loop = uvloop.new_event_loop()    # libuv's: ~20% less CPU a ping than asyncio's
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="buyer-http", daemon=True)
        self.thread.start()
        self.ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._open())
        self.ready.set()
        self.loop.run_forever()

    async def _open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=512, limit_per_host=128, keepalive_timeout=30, ttl_dns_cache=60,
            resolver=None if self.allow_private else PublicOnlyResolver())
        # No session time-out: each request's budget (asyncio.timeout in _send) is the only clock.
        # No cookie jar: a buyer's Set-Cookie is hostile input, never sent back to it or to another
        # buyer under the same domain, and never kept to pile up in the worker.
        self.session = aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            auto_decompress=False, skip_auto_headers=("Accept-Encoding",), timeout=aiohttp.ClientTimeout(),
            cookie_jar=aiohttp.DummyCookieJar())

    async def _send(self, request: Request, max_bytes: int) -> Reply:
        started = time.monotonic()

        def reply(status, body=b"", failure=None) -> Reply:
            return Reply(status, body, int((time.monotonic() - started) * 1000), failure)

        refused = url_problem(request.url, self.allow_private)
        if refused:
            return reply(None, failure=refused)
        if request.budget_s <= 0:
            return reply(None, failure="timeout")
        status = None
        try:
            async with asyncio.timeout(request.budget_s):
                async with self.session.request(request.method, request.url, data=request.body or None,
                                                headers=request.headers, allow_redirects=False) as response:
                    status = response.status
                    chunks, size = [], 0
                    # read(n) returns what is buffered, up to n: loop to the end or the cap.
                    while chunk := await response.content.read(max_bytes + 1 - size):
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > max_bytes:
                            return reply(status, failure="too_large")
                    return reply(status, b"".join(chunks))
        except TimeoutError:
            return reply(status, failure="timeout")
        except aiohttp.ClientConnectorError as exc:
            private = isinstance(exc.os_error, PrivateAddress) or "non-public" in str(exc)
            return reply(None, failure="private_address" if private else "connect_error")
        except (aiohttp.ClientError, OSError, ValueError):
            return reply(status, failure="connect_error" if status is None else "error")

    async def _send_all(self, requests: list[Request], max_bytes: int) -> list[Reply]:
        return list(await asyncio.gather(*(self._send(r, max_bytes) for r in requests)))

    def send_many(self, requests: list[Request], max_bytes: int) -> list[Reply]:
        if not requests:
            return []
        future = asyncio.run_coroutine_threadsafe(self._send_all(requests, max_bytes), self.loop)
        # Each request has its own budget; the extra second only guards against a stuck loop.
        return future.result(timeout=max(r.budget_s for r in requests) + 1.0)


@lru_cache(maxsize=4096)
def url_problem(url: str, allow_private: bool) -> str | None:
    """Why a URL is refused before any connection (None: it may go); a buyer's URL is checked
    once per process, its addresses at every connect (PublicOnlyResolver)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "invalid_host"
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        return "insecure_url"
    # Numeric forms (2130706433, 0177.0.0.1, 127.1) reach 127.0.0.1 past any name check.
    if host_problem(host):
        return "invalid_host"
    if not allow_private and _ip_literal_private(host):
        return "private_address"
    return None


def _ip_literal_private(host: str) -> bool:
    try:
        return not is_public_address(host)
    except ValueError:
        return False                   # a name: the resolver checks it at connect time


_clients: dict[tuple[int, bool], _Client] = {}
_lock = threading.Lock()


def _client(allow_private: bool) -> _Client:
    key = (os.getpid(), allow_private)   # a forked worker must start its own loop
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = _Client(allow_private)
    return client


def send_many(requests: list[Request], *, max_bytes: int = 65536,
              allow_private: bool = False) -> list[Reply]:
    """Send every request at once; each within its own budget (connect, send and read)."""
    return _client(allow_private).send_many(requests, max_bytes)


def send(url: str, body: bytes, headers: dict[str, str], budget_s: float, *, method: str = "POST",
         max_bytes: int = 65536, allow_private: bool = False) -> Reply:
    """Send one request within ``budget_s`` in all; faults come back as values."""
    return send_many([Request(url, body, headers, budget_s, method)], max_bytes=max_bytes,
                     allow_private=allow_private)[0]
