"""The one HTTP caller to buyers: send(request, budget) -> Reply, never raises for network faults."""
from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

USER_AGENT = "pingtree/0.1 (+https://github.com/pingtree)"


class PrivateAddress(OSError):
    """The buyer host resolves to an address that is not public."""


@dataclass(frozen=True)
class Reply:
    status: int | None         # None when no HTTP answer came
    body: bytes
    latency_ms: int
    failure: str | None = None  # timeout, too_large, private_address, connect_error, error


def _public_address(host: str, port: int) -> tuple:
    """Resolve at connect time and refuse any non-public address (SSRF guard, SPEC §6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        if not ipaddress.ip_address(sockaddr[0]).is_global:
            raise PrivateAddress(f"{host} resolves to a non-public address")
    family, socktype, proto, _, sockaddr = infos[0]
    return family, sockaddr


class _GuardMixin:
    def _new_conn(self) -> socket.socket:
        try:
            family, sockaddr = _public_address(self._dns_host, self.port)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            raise NewConnectionError(self, f"{type(exc).__name__}: {exc}") from exc


class _GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


_managers: dict[tuple[int, bool], urllib3.PoolManager] = {}
_lock = threading.Lock()


def _manager(allow_private: bool) -> urllib3.PoolManager:
    """One keep-alive pool manager per process (and guard setting), shared by its threads."""
    key = (os.getpid(), allow_private)
    manager = _managers.get(key)
    if manager is None:
        with _lock:
            manager = _managers.get(key)
            if manager is None:
                manager = urllib3.PoolManager(num_pools=256, maxsize=64, block=False, retries=False)
                if not allow_private:
                    manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool,
                                                      "https": _GuardedHTTPSPool}
                _managers[key] = manager
    return manager


def send(url: str, body: bytes, headers: dict[str, str], budget_s: float, *,
         max_bytes: int = 65536, allow_private: bool = False) -> Reply:
    """POST JSON within ``budget_s`` in all (connect, send, read); faults come back as values."""
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    if budget_s <= 0:
        return Reply(None, b"", 0, "timeout")
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (allow_private and scheme == "http"):
        return Reply(None, b"", 0, "insecure_url")
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    try:
        response = _manager(allow_private).request(
            "POST", url, body=body, headers=all_headers, redirect=False, retries=False,
            preload_content=False, timeout=urllib3.Timeout(connect=budget_s, read=budget_s))
    except urllib3.exceptions.NewConnectionError as exc:
        # Caught before TimeoutError: urllib3 makes NewConnectionError a ConnectTimeoutError.
        failure = "private_address" if "PrivateAddress" in str(exc) else "connect_error"
        return Reply(None, b"", elapsed_ms(), failure)
    except urllib3.exceptions.TimeoutError:
        return Reply(None, b"", elapsed_ms(), "timeout")
    except (urllib3.exceptions.HTTPError, OSError):
        return Reply(None, b"", elapsed_ms(), "connect_error")
    complete = False
    try:
        chunks, size = [], 0
        deadline = started + budget_s
        while True:
            if time.monotonic() > deadline:
                return Reply(response.status, b"", elapsed_ms(), "timeout")
            chunk = response.read(16384)
            if not chunk:
                complete = True
                break
            size += len(chunk)
            if size > max_bytes:
                return Reply(response.status, b"", elapsed_ms(), "too_large")
            chunks.append(chunk)
        return Reply(response.status, b"".join(chunks), elapsed_ms())
    except urllib3.exceptions.TimeoutError:
        return Reply(response.status, b"", elapsed_ms(), "timeout")
    except (urllib3.exceptions.HTTPError, OSError):
        return Reply(response.status, b"", elapsed_ms(), "error")
    finally:
        # A fully read answer returns its connection to the pool; a cut-off one is closed.
        if complete:
            response.release_conn()
        else:
            response.close()
