"""The one HTTP caller: budgets, size caps, redirects, cookies and the public-address guard, on real
sockets."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler

import pytest

from pipeline.adapters import transport
from tests.local_http import serving

COOKIES_SENT: list = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/hang":
            time.sleep(3)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * 200_000 if self.path == "/huge" else b'{"accept": false}'
        self.send_response(200)
        if self.path == "/cookie":
            COOKIES_SENT.append(self.headers.get("Cookie"))
            self.send_header("Set-Cookie", "track=1; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    with serving(Handler) as url:
        yield url


def send(url, budget=2.0, **kw):
    return transport.send(url, b"{}", {}, budget, allow_private=kw.pop("allow_private", True), **kw)


def test_answer_is_read(server):
    reply = send(f"{server}/ok")
    assert (reply.status, reply.body, reply.failure) == (200, b'{"accept": false}', None)


def test_a_hanging_buyer_costs_no_more_than_the_budget(server):
    started = time.monotonic()
    reply = send(f"{server}/hang", budget=0.3)
    assert reply.failure == "timeout"
    assert time.monotonic() - started < 1.5


def test_an_oversized_answer_is_cut_off(server):
    assert send(f"{server}/huge", max_bytes=65536).failure == "too_large"


def test_redirects_are_not_followed(server):
    assert send(f"{server}/redirect").status == 302


def test_private_addresses_are_refused_unless_allowed(server):
    port = server.rsplit(":", 1)[1]
    assert send(f"https://127.0.0.1:{port}/ok", allow_private=False).failure == "private_address"
    assert send(f"https://localhost:{port}/ok", allow_private=False).failure == "private_address"
    assert send(f"{server}/ok", allow_private=False).failure == "insecure_url"


def test_connection_refused_is_a_value_not_an_exception():
    assert send("http://127.0.0.1:9/ping").failure == "connect_error"


def test_a_buyer_cookie_is_never_sent_back(server):
    # A buyer's answer is hostile input: nothing in it may shape the next request, to it or to
    # another buyer (a cookie set for a parent domain), nor pile up in the worker.
    port = server.rsplit(":", 1)[1]
    for _ in range(2):
        assert send(f"http://localhost:{port}/cookie").status == 200
    assert COOKIES_SENT == [None, None]


class KeepAlive(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: counts the connections it accepts and records what it was sent."""
    protocol_version = "HTTP/1.1"
    connections = 0
    seen: list = []

    def log_message(self, *args):
        pass

    def setup(self):
        KeepAlive.connections += 1
        super().setup()

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        KeepAlive.seen.append((self.command, self.path, dict(self.headers), body))
        if self.path == "/stream":              # no length, no end: only the cap stops it
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"x" * 16384)
            except OSError:
                return
        if self.path == "/slow":
            time.sleep(1.0)
        self.send_response(200)
        self.send_header("Set-Cookie", "track=1; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET = do_PUT = _answer


@pytest.fixture
def keepalive():
    KeepAlive.connections, KeepAlive.seen = 0, []
    with serving(KeepAlive, quiet=True) as url:
        yield url


def test_keep_alive_connections_are_reused_across_calls(keepalive):
    requests = [transport.Request(f"{keepalive}/ping", b"{}", {}, 2.0) for _ in range(5)]
    for _ in range(4):
        replies = transport.send_many(requests, allow_private=True)
        assert [r.status for r in replies] == [200] * 5
    assert len(KeepAlive.seen) == 20
    assert KeepAlive.connections <= 5          # 20 requests, at most one connection each at once


def test_each_request_has_its_own_budget(keepalive):
    slow, fast = (transport.Request(f"{keepalive}/{p}", b"{}", {}, 0.4) for p in ("slow", "fast"))
    started = time.monotonic()
    late, quick = transport.send_many([slow, fast], allow_private=True)
    assert (late.failure, quick.failure, quick.status) == ("timeout", None, 200)
    assert quick.latency_ms < 300 <= late.latency_ms
    assert time.monotonic() - started < 1.0


def test_an_endless_answer_is_cut_at_the_cap_not_the_budget(keepalive):
    started = time.monotonic()
    reply = send(f"{keepalive}/stream", budget=5.0, max_bytes=65536)
    assert (reply.status, reply.failure, reply.body) == (200, "too_large", b"")
    assert time.monotonic() - started < 2.0


def test_what_a_buyer_receives(keepalive, monkeypatch):
    # No proxy from the environment, no cookie sent back, no 100-continue wait; our User-Agent and
    # JSON unless the buyer's integration names its own Content-Type; the method it asks for.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    big = b"{" + b" " * 5000 + b"}"
    for request in (transport.Request(f"{keepalive}/a", big, {"X-Key": "k"}, 2.0),
                    transport.Request(f"{keepalive}/b?q=1", b"", {}, 2.0, "GET"),
                    transport.Request(f"{keepalive}/c", b"a=1", {"content-type": "text/plain"}, 2.0, "PUT")):
        for _ in range(2):
            assert transport.send_many([request], allow_private=True)[0].status == 200
    (post, _, get, _, put, put_again) = [(m, p, {k.lower(): v for k, v in h.items()}, b)
                                         for m, p, h, b in KeepAlive.seen]
    assert post[:2] == ("POST", "/a") and post[3] == big
    assert post[2]["user-agent"] == "pingtree/0.1" and post[2]["content-type"] == "application/json"
    assert post[2]["x-key"] == "k" and "expect" not in post[2]
    assert get[:2] == ("GET", "/b?q=1") and get[3] == b""
    assert put[:2] == ("PUT", "/c") and put[3] == b"a=1" and put[2]["content-type"] == "text/plain"
    assert all("cookie" not in h and "accept-encoding" not in h for _, _, h, _ in (post, get, put, put_again))


def test_a_reused_handle_sends_each_request_as_asked(keepalive):
    # One engine, one handle (one request a call), reused across URLs, methods, bodies and caps:
    # only what differs from the handle's last transfer is set again, and nothing of it leaks.
    asked = [("POST", "/a", b"{}"), ("POST", "/b", b"[1]"), ("GET", "/b", b""), ("GET", "/c", b""),
             ("GET", "/c", b"body"), ("GET", "/c", b""), ("PUT", "/d", b"x"), ("POST", "/d", b"y"),
             ("PUT", "/e", b"z"), ("GET", "/e", b""), ("POST", "/e", b"w"), ("POST", "/e", b"w")]
    for i, (method, path, body) in enumerate(asked):
        reply = transport.send_many([transport.Request(f"{keepalive}{path}", body, {}, 2.0, method)],
                                    allow_private=True, max_bytes=1 if i == 3 else 65536)[0]
        assert (reply.status, reply.failure) == ((200, "too_large") if i == 3 else (200, None)), i
        assert reply.body == (b"" if i == 3 else b"{}")
    assert [(m, p, b) for m, p, _, b in KeepAlive.seen] == asked


def test_a_header_that_would_split_the_request_is_never_sent(keepalive):
    reply = transport.send(f"{keepalive}/ping", b"{}", {"X-Key": "k\r\nX-Injected: 1"}, 2.0,
                           allow_private=True)
    assert (reply.status, reply.failure) == (None, "connect_error")
    assert KeepAlive.seen == []


def test_a_private_address_is_refused_at_connect_time_before_any_connection(keepalive):
    port = keepalive.rsplit(":", 1)[1]
    reply = transport.send(f"https://localhost:{port}/ping", b"{}", {}, 2.0, allow_private=False)
    assert (reply.status, reply.failure) == (None, "private_address")
    assert KeepAlive.connections == 0


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """An HTTPS buyer on 127.0.0.1 with a self-signed certificate (openssl), and the certificate."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving(KeepAlive, tls=context, quiet=True) as url:
        yield url, cert


def test_https_certificates_are_verified(tls):
    url, cert = tls
    assert send(f"{url}/ping").failure == "connect_error"       # not signed by a trusted CA
    # The same buyer, its certificate trusted through the CA store Python's ssl reads.
    script = ("from pipeline.adapters import transport; "
              f"r = transport.send({url + '/ping'!r}, b'{{}}', {{}}, 5.0, allow_private=True); "
              "print(r.status, r.failure, r.body)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "SSL_CERT_FILE": str(cert)})
    assert out.stdout.split() == ["200", "None", "b'{}'"]
