"""The SSRF guard's host rules: numeric and embedded-IPv4 forms never reach a private address."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

import pycurl
import pytest

from pipeline.adapters import transport
from pipeline.domain.hosts import host_problem, is_public_address
from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import InvalidTree, parse_tree

# Each reaches 127.0.0.1 (or 0.0.0.0) through getaddrinfo / inet_aton: none is a DNS name or
# a canonical IP literal.
NUMERIC_HOSTS = ["2130706433", "0177.0.0.1", "127.1", "017700000001", "127.000.000.001", "0",
                 "0x7f000001", "0x7f.1", "127.0.1", "1.2.3.4.5", "example.0x1f", "example.123"]
# IPv6 forms that carry a private IPv4 address inside: IPv4-mapped, 6to4, NAT64, IPv4-compatible.
EMBEDDED_PRIVATE = ["::ffff:127.0.0.1", "::ffff:7f00:1", "2002:7f00:1::1", "2002:a00:1::",
                    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "::127.0.0.1", "::1", "::"]
PUBLIC = ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize("host", NUMERIC_HOSTS + ["", "-bad.example", "bad-.example", "a..b",
                                                  "b\u00fccher.example", "x" * 64 + ".example",
                                                  "exa mple.com", "fe80::1%eth0", "trailing.dot."])
def test_a_host_that_is_neither_a_dns_name_nor_a_canonical_ip_is_refused(host):
    assert host_problem(host)


@pytest.mark.parametrize("host", ["buyer.example", "api.xn--bcher-kva.example", "127.0.0.1", "8.8.8.8",
                                  "2001:db8::1", "localhost", "0xdeadbeef.example", "a-b.c-d.io"])
def test_dns_names_and_canonical_ip_literals_are_hosts(host):
    assert host_problem(host) is None


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE + ["127.0.0.1", "10.1.2.3", "169.254.169.254"])
def test_an_address_with_a_private_ipv4_inside_is_not_public(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address):
    assert is_public_address(address)


def tree_with(url: str) -> str:
    return json.dumps({"tiers": [{"tier": 1}], "buyers": [
        {"id": "b", "tier": 1, "verticals": ["solar"], "ping_url": url, "post_url": "https://buyer.example/p",
         "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]})


@pytest.mark.parametrize("host", NUMERIC_HOSTS + [f"[{h}]" for h in EMBEDDED_PRIVATE] + ["10.0.0.1"])
def test_tree_load_refuses_numeric_private_and_embedded_hosts_with_the_guard_on(host):
    with pytest.raises(InvalidTree) as refused:
        parse_tree(tree_with(f"https://{host}/ping"), VERTICALS, allow_private=False)
    assert "ping_url" in refused.value.errors["buyers"]["b"]   # buyers are named by id


@pytest.mark.parametrize("host", NUMERIC_HOSTS)
def test_tree_load_refuses_numeric_hosts_even_for_local_buyers(host):
    with pytest.raises(InvalidTree):
        parse_tree(tree_with(f"http://{host}:9100/ping"), VERTICALS, allow_private=True)


class Handler(BaseHTTPRequestHandler):
    hits = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        Handler.hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture(scope="module")
def port():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "127.1", "017700000001", "0x7f000001"])
def test_at_connect_time_a_numeric_host_never_reaches_the_buyer(port, host):
    Handler.hits = 0
    for scheme, allow in (("http", True), ("https", False)):
        reply = transport.send(f"{scheme}://{host}:{port}/ping", b"{}", {}, 2.0, allow_private=allow)
        assert reply.failure == "invalid_host"
    assert Handler.hits == 0


@pytest.mark.parametrize("host", EMBEDDED_PRIVATE)
def test_at_connect_time_an_embedded_private_ipv4_is_refused(port, host):
    reply = transport.send(f"https://[{host}]:{port}/ping", b"{}", {}, 2.0, allow_private=False)
    assert reply.failure == "private_address"


class Address(NamedTuple):        # what libcurl hands its socket opener: a resolved peer address
    family: int
    socktype: int
    protocol: int
    addr: tuple


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1", "::ffff:10.0.0.1"])
def test_a_name_that_resolves_to_an_embedded_private_address_gets_no_socket(address):
    resolved = Address(socket.AF_INET6, socket.SOCK_STREAM, 6, (address, 443, 0, 0))
    assert transport.public_socket(0, resolved) == pycurl.SOCKET_BAD


def test_a_name_that_resolves_to_a_public_address_gets_a_socket():
    opened = transport.public_socket(0, Address(socket.AF_INET, socket.SOCK_STREAM, 6, ("8.8.8.8", 443)))
    assert isinstance(opened, socket.socket)
    opened.close()
