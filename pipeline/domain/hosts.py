"""Buyer hosts: a valid DNS name or a canonical IP literal, and which addresses are public.

The C resolver reads ``2130706433``, ``0177.0.0.1``, ``127.1`` or ``0x7f000001`` as 127.0.0.1,
and an IPv6 address can carry any IPv4 address inside it (IPv4-mapped, 6to4, NAT64,
IPv4-compatible): the SSRF guard refuses the first kind outright and looks inside the second.
"""
from __future__ import annotations

import ipaddress
import re

LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A last label like these makes URL parsers and inet_aton read the whole host as an IPv4 number.
NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")   # RFC 8215: its IPv4 mapping is local policy
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def host_problem(host: str) -> str | None:
    """None for a DNS name or a canonical IP literal; otherwise why the host is refused."""
    if not host:
        return "has no host"
    if "%" in host:
        return "must not carry an IPv6 zone"
    try:
        ipaddress.ip_address(host)     # refuses leading zeros, short and numeric IPv4 forms
        return None
    except ValueError:
        pass
    if not host.isascii():
        return "must be written in ASCII (the xn-- form of an international name)"
    labels = host.lower().split(".")
    if len(host) > 253 or not all(LABEL.match(label) for label in labels):
        return "is neither a valid DNS name nor an IP address"
    if NUMERIC_LABEL.match(labels[-1]):
        return "is a number, not a host name: write an IP address as a.b.c.d"
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it stands for one."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64 or ip in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """True for a globally routable address that carries no non-public IPv4 address inside."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        if ip in NAT64_LOCAL:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None and not inner.is_global:
            return False
    return ip.is_global
