"""The one HTTP caller to buyers: send(request, budget) -> Reply; network faults are values.

libcurl (pycurl's multi interface) runs the requests in the calling thread: a shard of pings goes
out at once (send_many), and any thread may post (send). Each process keeps a small pool of
engines (a multi handle with its keep-alive connections, DNS cache and idle easy handles); a call
takes one, drives its transfers on poll() until every request is answered or out of its budget,
and puts it back, so connections are reused across calls and threads without a hand-off to an
event-loop thread. A ping costs ~40 us of CPU this way, where aiohttp on its own loop thread cost
~190.
"""
from __future__ import annotations

import os
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

import pycurl

from pipeline.domain.frozen import one_step_init
from pipeline.domain.hosts import host_problem, is_public_address

USER_AGENT = "pingtree/0.1"
DEFAULT_HEADERS = ("Content-Type: application/json",
                   "Expect:")          # no 100-continue round trip before a larger body


@one_step_init
@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    budget_s: float = 3.0
    method: str = "POST"


@one_step_init
@dataclass(frozen=True)
class Reply:
    status: int | None         # None when no HTTP answer came
    body: bytes
    latency_ms: int
    failure: str | None = None  # timeout, too_large, private_address, invalid_host, insecure_url,
    #                             connect_error, error


def public_socket(purpose: int, address) -> socket.socket | int:
    """libcurl's socket opener when private buyers are not allowed (the SSRF guard): every address
    a buyer's name resolves to is checked as libcurl is about to connect to it, after any DNS
    answer, so a rebinding name cannot slip past; a non-public one gets no socket."""
    if not is_public_address(address.addr[0]):
        return pycurl.SOCKET_BAD
    return socket.socket(address.family, address.socktype, address.protocol)   # libcurl dups it


class _Handle:
    """An easy handle and what stays set on it between its transfers: its answer's buffer and
    socket opener (set once, reset per transfer) and the options last set, so a transfer sets
    only what differs from its handle's last one (a buyer's URL, a method, the cap)."""

    __slots__ = ("curl", "chunks", "refused", "url", "method", "max_bytes")

    def __init__(self, curl: pycurl.Curl, allow_private: bool):
        self.curl, self.chunks, self.refused = curl, [], False
        self.url: str | None = None
        self.method: str | None = "POST"        # a new handle posts once given POSTFIELDS
        self.max_bytes: int | None = None
        curl.setopt(pycurl.WRITEFUNCTION, self.chunks.append)
        if not allow_private:
            curl.setopt(pycurl.OPENSOCKETFUNCTION, self.opensocket)

    def opensocket(self, purpose: int, address) -> socket.socket | int:
        sock = public_socket(purpose, address)
        if sock is pycurl.SOCKET_BAD:
            self.refused = True
        return sock


def _failure(code: int, status: int | None, refused: bool) -> str:
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return "timeout"
    if code == pycurl.E_FILESIZE_EXCEEDED:
        return "too_large"
    if refused and status is None:
        return "private_address"
    return "connect_error" if status is None else "error"


class _Engine:
    """A multi handle (its connections and DNS cache) and its idle easy handles; one thread at a time."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self.multi.setopt(pycurl.M_MAXCONNECTS, 512)
        self.poller = select.poll()
        self.watched: dict[int, int] = {}
        self.idle: list[_Handle] = []
        paths = ssl.get_default_verify_paths()   # the CA store Python's ssl (and aiohttp) used
        self.cafile, self.capath = paths.cafile, paths.capath

    def _watch(self, what: int, fd: int, multi, data) -> None:
        if what == pycurl.POLL_REMOVE:
            if self.watched.pop(fd, None) is not None:
                self.poller.unregister(fd)
            return
        events = ((select.POLLIN if what & pycurl.POLL_IN else 0)
                  | (select.POLLOUT if what & pycurl.POLL_OUT else 0))
        if fd in self.watched:
            self.poller.modify(fd, events)
        else:
            self.poller.register(fd, events)
        self.watched[fd] = events

    def _handle(self) -> _Handle:
        if self.idle:
            return self.idle.pop()
        c = pycurl.Curl()
        c.setopt(pycurl.NOSIGNAL, 1)                  # worker threads: no SIGALRM for DNS time-outs
        c.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        c.setopt(pycurl.FOLLOWLOCATION, 0)            # a redirect is the buyer's answer
        c.setopt(pycurl.PROXY, "")                    # no proxy from the environment
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        c.setopt(pycurl.USERAGENT, USER_AGENT)
        c.setopt(pycurl.SSL_VERIFYPEER, 1)
        c.setopt(pycurl.SSL_VERIFYHOST, 2)
        if self.cafile:
            c.setopt(pycurl.CAINFO, self.cafile)
        if self.capath:
            c.setopt(pycurl.CAPATH, self.capath)
        c.setopt(pycurl.MAXAGE_CONN, 30)              # an idle keep-alive connection is closed at 30 s
        # No cookie engine (no COOKIEFILE): a buyer's Set-Cookie is hostile input, never sent back
        # to it or to another buyer under the same domain, and never kept to pile up in the worker.
        # No Accept-Encoding: an answer is read as sent, never decompressed (a gzip bomb stays small).
        return _Handle(c, self.allow_private)

    def _start(self, request: Request, lines: list[str], max_bytes: int) -> _Handle:
        h = self._handle()
        c = h.curl
        h.refused = False
        if h.url != request.url:
            h.url = None                              # unknown until the setopt succeeds
            c.setopt(pycurl.URL, request.url)
            h.url = request.url
        c.setopt(pycurl.HTTPHEADER, lines)
        method = request.method
        if method == "GET" and not request.body:
            if h.method != "GET":
                h.method = None
                c.setopt(pycurl.HTTPGET, 1)
                c.unsetopt(pycurl.CUSTOMREQUEST)
                h.method = "GET"
        else:
            c.setopt(pycurl.POSTFIELDS, request.body)   # makes the transfer a POST again
            if method == "POST":
                if h.method != "POST":
                    h.method = None
                    c.unsetopt(pycurl.CUSTOMREQUEST)
                    h.method = "POST"
            else:
                h.method = None                         # another method (a GET with a body too):
                c.setopt(pycurl.CUSTOMREQUEST, method)  # the next transfer sets its own again
        # One clock for connect, send and read; a buyer that drips its answer is cut at it too.
        c.setopt(pycurl.TIMEOUT_MS, max(1, int(request.budget_s * 1000)))
        if h.max_bytes != max_bytes:
            h.max_bytes = None
            c.setopt(pycurl.MAXFILESIZE_LARGE, max_bytes)  # aborts the transfer past the cap
            h.max_bytes = max_bytes
        self.multi.add_handle(c)
        return h

    def run(self, requests: list[Request], max_bytes: int) -> list[Reply]:
        started = time.monotonic()
        replies: list[Reply | None] = [None] * len(requests)
        running: dict[pycurl.Curl, tuple[int, _Handle]] = {}
        allow_private = self.allow_private
        try:
            for i, request in enumerate(requests):
                refused = _refusal(request, allow_private)
                if refused:
                    replies[i] = Reply(None, b"", int((time.monotonic() - started) * 1000), refused)
                    continue
                try:
                    h = self._start(request, _header_lines(request.headers), max_bytes)
                except (pycurl.error, ValueError, TypeError, UnicodeError):
                    replies[i] = Reply(None, b"", int((time.monotonic() - started) * 1000),
                                       "connect_error")
                    continue
                running[h.curl] = (i, h)
            # Each transfer has its own budget (TIMEOUT_MS); this only guards against a stuck loop.
            give_up = started + max((r.budget_s for r in requests), default=0) + 1.0
            multi, poll = self.multi, self.poller.poll
            while running:
                wait = multi.timeout()
                events = poll(1000 if wait < 0 else wait) if wait else ()
                if events:
                    for fd, event in events:
                        multi.socket_action(fd, (pycurl.CSELECT_OUT if event & select.POLLOUT else 0)
                                            | (pycurl.CSELECT_IN if event & ~select.POLLOUT else 0))
                else:
                    multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
                queued = 1
                while queued:
                    queued, ok, failed = multi.info_read()
                    for c in ok:
                        self._finish(c, 0, running, replies, started)
                    for c, code, _ in failed:
                        self._finish(c, code, running, replies, started)
                if running and time.monotonic() > give_up:
                    raise TimeoutError("libcurl did not end its transfers within their budgets")
        finally:
            for c in running:
                self.multi.remove_handle(c)
        return replies  # type: ignore[return-value]

    def _finish(self, c: pycurl.Curl, code: int, running: dict, replies: list, started: float) -> None:
        i, h = running.pop(c)
        self.multi.remove_handle(c)
        latency = int((time.monotonic() - started) * 1000)
        status = c.getinfo(pycurl.RESPONSE_CODE) or None
        if code == 0:
            replies[i] = Reply(status, b"".join(h.chunks), latency)
        else:
            replies[i] = Reply(status, b"", latency, _failure(code, status, h.refused))
        h.chunks.clear()
        self.idle.append(h)

    def close(self) -> None:
        for h in self.idle:
            h.curl.close()
        self.multi.close()


def _refusal(request: Request, allow_private: bool) -> str | None:
    refused = url_problem(request.url, allow_private)
    if refused:
        return refused
    if request.budget_s <= 0:
        return "timeout"
    # A header line must stay one line: a CR or LF in a name or value is never sent.
    headers = request.headers
    if headers:
        text = "".join(headers) + "".join(headers.values())
        if "\r" in text or "\n" in text:
            return "connect_error"
    return None


def _header_lines(headers: dict[str, str]) -> list[str]:
    """The request's header lines: its own (an empty value sent as `Name;`), a JSON content
    type unless it names one, and no Expect."""
    lines = [f"{k}: {v}" if v else f"{k};" for k, v in headers.items()]
    for k in headers:
        if k.lower() == "content-type":
            break
    else:
        lines.append(DEFAULT_HEADERS[0])
    lines.append(DEFAULT_HEADERS[1])
    return lines


@lru_cache(maxsize=4096)
def url_problem(url: str, allow_private: bool) -> str | None:
    """Why a URL is refused before any connection (None: it may go); a buyer's URL is checked
    once per process, its addresses at every connect (public_socket)."""
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
        return False                   # a name: public_socket checks its addresses at connect time


# Idle engines by (process, guard setting): a forked worker never uses its parent's connections.
_engines: dict[tuple[int, bool], list[_Engine]] = {}


def send_many(requests: list[Request], *, max_bytes: int = 65536,
              allow_private: bool = False) -> list[Reply]:
    """Send every request at once; each within its own budget (connect, send and read)."""
    if not requests:
        return []
    idle = _engines.setdefault((os.getpid(), allow_private), [])
    try:
        engine = idle.pop()            # atomic: no two threads get the same engine
    except IndexError:
        engine = _Engine(allow_private)
    try:
        replies = engine.run(requests, max_bytes)
    except BaseException:
        engine.close()                 # its state is unknown: never reused
        raise
    idle.append(engine)
    return replies


def send(url: str, body: bytes, headers: dict[str, str], budget_s: float, *, method: str = "POST",
         max_bytes: int = 65536, allow_private: bool = False) -> Reply:
    """Send one request within ``budget_s`` in all; faults come back as values."""
    return send_many([Request(url, body, headers, budget_s, method)], max_bytes=max_bytes,
                     allow_private=allow_private)[0]
