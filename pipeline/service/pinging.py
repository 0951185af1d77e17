"""A buyer's answer to a ping or pre-ping, read by its protocol, and the ping row it makes."""
from __future__ import annotations

from dataclasses import MISSING, fields

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


# Ping's defaults (what its constructor fills in), and each outcome by its text.
_PING_DEFAULTS = {f.name: f.default for f in fields(Ping) if f.default is not MISSING}
_OUTCOMES = {o.value: o for o in Outcome}


def outcome(text: str) -> Outcome:
    """Outcome(text): an outcome's member (ValueError for any other text, as Outcome raises)."""
    try:
        return _OUTCOMES[text]
    except (KeyError, TypeError):
        return Outcome(text)


def ping_row(auction: Auction, buyer: Buyer, rank: int, answer: Answer, kind: str,
             auction_text: str | None = None) -> Ping:
    """The row that records a buyer's answer in this auction (its id derived, so a replay
    writes the same row). ``auction_text``: str(auction.id), when the caller has it.

    Made as the (frozen) dataclass's __init__ makes it, without one object.__setattr__ a field
    (as records' from_row makes its records): Ping has no __post_init__ and no slots."""
    row = object.__new__(Ping)
    row.__dict__.update(_PING_DEFAULTS)
    row.__dict__.update(
        id=protocol.ping_id(auction_text or str(auction.id), buyer.id, kind),
        lead_id=auction.lead_id, buyer_id=buyer.id, tier=auction.tier, cycle=auction.cycle,
        rank=rank, outcome=outcome(answer.outcome), kind=kind, auction_id=auction.id,
        bid_cents=answer.bid_cents, ref=answer.ref, latency_ms=answer.latency_ms,
        reason=answer.reason)
    return row
