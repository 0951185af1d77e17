"""One interface for every buyer protocol: lead -> request, answer bytes -> bid or pass; never raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pipeline.domain.frozen import one_step_init


@one_step_init
@dataclass(frozen=True)
class Answer:
    """What a buyer said to a ping, after translation: the value the award reads."""
    outcome: str              # accept, reject, timeout, error, late; pre-ping: eligible, ineligible
    bid_cents: int | None = None
    ref: str | None = None
    reason: str | None = None
    latency_ms: int | None = None


@one_step_init
@dataclass(frozen=True)
class PostResult:
    outcome: str              # accepted, rejected, retry
    reason: str | None = None
    http_status: int | None = None
    latency_ms: int | None = None


@one_step_init
@dataclass(frozen=True)
class Outgoing:
    """One HTTP request to a buyer, ready for the transport."""
    method: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class BuyerProtocol(Protocol):
    """How pingtree talks to one buyer. Built once per buyer version, used for every lead.

    ``ping`` facts: the lead's ping view (lead_id, vertical, score, geo, qualifiers, source)
    with ping_id, cycle, bid_cents and expires_at; no personal data. ``post`` facts: the
    post body of the native protocol (contact, consent, price ...). A request that cannot be
    built comes back as the pass or rejection it amounts to, never as an exception.
    """
    pings: bool               # False: a direct-post buyer, taken at its standing bid
    pre_pings: bool

    def ping(self, facts: dict, now: int) -> Outgoing | Answer: ...
    def read_ping(self, status: int, body: bytes, latency_ms: int) -> Answer: ...
    def pre_ping(self, facts: dict, now: int) -> Outgoing | Answer: ...
    def read_pre_ping(self, status: int, body: bytes, latency_ms: int) -> Answer: ...
    def post(self, facts: dict, now: int) -> Outgoing | PostResult: ...
    def read_post(self, status: int, body: bytes, latency_ms: int) -> PostResult: ...
