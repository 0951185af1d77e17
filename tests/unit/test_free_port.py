"""Ports for the processes the tests, the demo and the bench start (pipeline/devtools/mockbuyers):
below the kernel's ephemeral range, never the same one twice, never one that is taken."""
from __future__ import annotations

import socket

from pipeline.devtools.mockbuyers import process
from pipeline.devtools.mockbuyers.process import free_port


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50 and all(port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_that_is_taken_is_never_handed_out(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        held.listen()
        # The range's one port is taken: it is never handed out, and the kernel chooses another.
        # (Not a range with taken + 1 besides: that port is in the kernel's ephemeral range, where
        # any other process's connection or bind(0) may hold it meanwhile.)
        monkeypatch.setattr(process, "_PORTS", range(taken, taken + 1))
        monkeypatch.setattr(process, "_given", set())
        port = free_port()
        assert port != taken and port not in process._given
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
