"""The one HTTP caller: budgets, size caps, redirects, cookies and the public-address guard, on real
sockets."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.adapters import transport

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
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


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
