"""A buyer's answer to a ping or pre-ping, read by its protocol, and the ping row it makes."""
from __future__ import annotations

from pipeline.adapters import transport
from pipeline.domain.buyers import Buyer
from pipeline.domain.records import Auction, Outcome, Ping
from pipeline.protocols import native as protocol
from pipeline.protocols import registry as protocols
from pipeline.protocols.interface import Answer


def read_reply(buyer: Buyer, reply: transport.Reply, kind: str) -> Answer:
    """The buyer's answer; a failure (no HTTP answer) is a time-out or an error, a pre-ping's
    an ineligible."""
    speaker = protocols.for_buyer(buyer)
    # No failure means an HTTP answer came, with its status (None is only ever a failure).
    if kind == "pre_ping":
        if reply.failure or reply.status is None:
            return Answer(Outcome.INELIGIBLE, reason=reply.failure, latency_ms=reply.latency_ms)
        return speaker.read_pre_ping(reply.status, reply.body, reply.latency_ms)
    if reply.failure or reply.status is None:
        outcome = Outcome.TIMEOUT if reply.failure == "timeout" else Outcome.ERROR
        return Answer(outcome, reason=reply.failure, latency_ms=reply.latency_ms)
    return speaker.read_ping(reply.status, reply.body, reply.latency_ms)


def ping_row(auction: Auction, buyer: Buyer, rank: int, answer: Answer, kind: str) -> Ping:
    """The row that records a buyer's answer in this auction (its id derived, so a replay
    writes the same row)."""
    return Ping(id=protocol.ping_id(str(auction.id), buyer.id, kind), auction_id=auction.id,
                lead_id=auction.lead_id, buyer_id=buyer.id, tier=auction.tier, cycle=auction.cycle,
                rank=rank, kind=kind, outcome=Outcome(answer.outcome), bid_cents=answer.bid_cents,
                ref=answer.ref, latency_ms=answer.latency_ms, reason=answer.reason)
