"""The deliver stage: single-flight posts to the awarded buyer under a lease in PostgreSQL.

One transaction claims the lead and writes the attempt (open, with a token and a lease longer
than the post's budget) before anything is sent; the unique open index allows one per lead,
so a duplicated message or a sweep finds the post in flight and leaves. The answer settles
only the attempt holding that token: an answer that comes after its lease was taken over is
recorded as late, and a late accept is raised to the operator (or sells the lead, when the
lead is still waiting on that same buyer). The rules are in domain/delivery.py.
"""
from __future__ import annotations

import logging
import time
import uuid

from config.settings import settings
from pipeline.adapters import db, transport
from pipeline.adapters import store as sql_store
from pipeline.domain import delivery
from pipeline.domain.buyers import Buyer
from pipeline.domain.records import Lead, Outcome, Ping, Status
from pipeline.protocols import native as protocol
from pipeline.protocols import registry as protocols
from pipeline.protocols.interface import PostResult
from pipeline.service import lifecycle  # a rejected post goes back to the award
from pipeline.service.lifecycle import DELIVER
from pipeline.service.nudges import Nudge
from pipeline.service.ports import Store

log = logging.getLogger("pingtree")

store: Store = sql_store   # as in lifecycle.py: PostgreSQL, or the unit tests' in-memory store



def deliver_post(lead_id) -> list:
    """Post the full lead to the awarded buyer; same buyer and key on every re-drive."""
    token = uuid.uuid4()
    # Nothing in flight and attempts left (the common case): the claim writes our attempt, one
    # statement committed as it answers (no COMMIT round trip before the post). It wrote nothing
    # otherwise, and what to do is decided under the lead's lock, held to the end.
    with db.transaction(each_statement=True) as cur:
        claimed = store.claim_post(cur, lead_id, token, settings.post_lease_s, settings.post_attempts)
        if claimed is None:
            return []
        lead, consent, ping, _, history, began = claimed
        buyer = store.buyers(cur, [ping.buyer_id])[0]
    if not began:
        return claim_under_lock(lead_id, token)
    return post(lead_id, token, lead, consent, ping, history, buyer)


def claim_under_lock(lead_id, token) -> list:
    """A post in flight or attempts used up when the deliver stage began: take over an expired
    lease, or stop for good, or leave a live post alone."""
    with db.transaction() as cur:
        claimed = store.claim_post(cur, lead_id, token, settings.post_lease_s, settings.post_attempts)
        if claimed is None:
            return []
        lead, consent, ping, in_flight, history, began = claimed
        if not began:
            if in_flight is None and len(history) < settings.post_attempts:
                return []              # single flight: another deliverer's post is on the wire
            if in_flight is not None:
                if in_flight["live"]:
                    return []          # single flight: a post to this lead is on the wire
                store.expire_post(cur, lead_id, in_flight["id"])
                history = [{**h, "outcome": delivery.UNKNOWN} if h["id"] == in_flight["id"] else h
                           for h in history]     # as expire_post wrote it
            if len(history) >= settings.post_attempts:
                # The last attempt's worker died: its outcome is unknown and no attempt is left.
                return after_post(cur, lead_id, lead, ping, [h["outcome"] for h in history],
                                  "lease_expired")
        buyer = store.buyers(cur, [ping.buyer_id])[0]
        if not began and not store.begin_post(cur, lead_id, ping.id, buyer.id, len(history) + 1,
                                              token, settings.post_lease_s):
            return []                  # single flight: another deliverer's post is on the wire
    return post(lead_id, token, lead, consent, ping, history, buyer)


def post(lead_id, token, lead: Lead, consent: dict | None, ping: Ping, history: list[dict],
         buyer: Buyer) -> list:
    """Send our attempt (written, committed, before it goes), read the answer and settle it.
    ``history``: the attempts to this ping before ours."""
    attempt = len(history) + 1
    earlier = [h["outcome"] for h in history]
    speaker = protocols.for_buyer(buyer)
    out = speaker.post({"lead": lead.as_dict(), "consent": consent, "ping_id": ping.id, "ping_ref": ping.ref,
                        "price_cents": ping.bid_cents}, int(time.time()))
    if isinstance(out, PostResult):    # a post that could not be built, so never sent: a rejection
        return settle_post(lead_id, ping, token, delivery.REJECTED, out.reason, None, None, earlier)
    reply = transport.send(out.url, out.body, out.headers, settings.post_timeout_s, method=out.method,
                           max_bytes=settings.max_answer_bytes, allow_private=settings.allow_private_buyers)
    # No failure means an HTTP answer came, with its status (None is only ever a failure).
    read = (speaker.read_post(reply.status, reply.body, reply.latency_ms)
            if not reply.failure and reply.status is not None
            else protocol.read_post_failure(reply.failure or "error", reply.status, reply.latency_ms))
    outcome = delivery.attempt_outcome(read.outcome, reply.failure, reply.status, attempt - 1)
    return settle_post(lead_id, ping, token, outcome, read.reason, reply.status, reply.latency_ms,
                       earlier)


def settle_post(lead_id, ping: Ping, token, outcome: str, reason: str | None,
                http_status: int | None, latency_ms: int | None, earlier: list[str]) -> list:
    """Record the answer under our token, then sell, retry, move on, or stop for the operator.

    ``earlier``: the outcomes of the attempts to this ping before ours, as read when ours began.
    """
    # An accepted post to the lead's award sells in the settling statement itself.
    sale = ((ping.buyer_id, ping.id, ping.bid_cents)
            if outcome == delivery.ACCEPTED and ping.bid_cents is not None else None)
    with db.transaction() as cur:
        settled = store.settle(cur, lead_id, token, outcome, reason, http_status, latency_ms, sale)
        if settled is None:            # a lead in flight is never pruned: this is a bug
            raise LookupError(f"lead {lead_id} is gone while its post was settled")
        standing, ours, sold = settled
        if sold:
            return []
        same_award = standing.status == Status.DELIVERING and standing.award_ping_id == ping.id
        if outcome == delivery.ACCEPTED and not (ours and same_award):
            late_acceptance(cur, lead_id, standing.status, ping, sold_now=same_award)
            return after_post(cur, lead_id, None, ping, [outcome], reason) if same_award else []
        if not ours or not same_award:
            return []                  # a newer attempt (or the sweep's give-up) owns the lead
        # Ours was the one open attempt from its start until now (the open index allows one per
        # lead, and a take-over would have closed ours: `ours` would be false), so the attempts
        # to this ping are those read when ours began, then ours: no statement to read them.
        return after_post(cur, lead_id, None, ping, [*earlier, outcome], reason)


def after_post(cur, lead_id, lead: Lead | None, ping: Ping, history: list[str],
               reason: str | None) -> list:
    """Act on the attempts so far to the awarded buyer (domain/delivery.py has the rule).
    ``lead``: the delivering lead, locked by this transaction, or None when only its id was read
    (settling reads no more): the award, which needs all of it, then reads it under that lock."""
    buyer_id = ping.buyer_id
    step = delivery.next_step(history, settings.post_attempts)
    if step == delivery.SELL:
        price = ping.bid_cents
        assert price is not None, "an awarded ping has a price"
        store.sell(cur, lead_id, buyer_id, ping.id, price)
        return []
    if step == delivery.TRY_AGAIN:
        store.touch(cur, lead_id)
        return [retry_nudge(lead_id, len(history))]
    store.release_caps(cur, ping.id)
    if step == delivery.UNCONFIRMED:
        # The buyer may hold the lead: it is offered to nobody else.
        store.move(cur, lead_id, Status.UNSOLD, {"buyer_id": buyer_id, "reason": reason},
                   reject_reasons=["post_unconfirmed"], award_ping_id=None)
        log.warning("post to %s for lead %s unconfirmed (%s): operator to resolve", buyer_id,
                    lead_id, reason)
        return []
    if history[-1] != delivery.REJECTED:
        reason = f"gave_up:{reason}"
    if lead is None:
        lead = store.claim(cur, lead_id, Status.DELIVERING)
        assert lead is not None, "the lead was locked delivering by this transaction"
    store.mark_ping(cur, ping.id, Outcome.POST_REJECTED, reason)
    if store.pause_if_rejecting(cur, buyer_id):
        log.warning("buyer %s paused: it rejected too many of the posts it received", buyer_id)
    store.move(cur, lead_id, Status.AUCTIONING, {"post_rejected_by": buyer_id, "reason": reason},
               award_ping_id=None)
    auction = store.auction(cur, lead.auction_id)
    if auction is None:                # a delivering lead's auction is never pruned: a bug
        raise LookupError(f"lead {lead_id}: its auction {lead.auction_id} is gone")
    return lifecycle.award(cur, lead, auction)


def late_acceptance(cur, lead_id, status: Status, ping: Ping, *, sold_now: bool) -> None:
    """A buyer accepted a post whose lease had been taken over: never dropped."""
    store.record_event(cur, lead_id, "late_acceptance",
                       {"buyer_id": ping.buyer_id, "lead_status": status,
                        "sold_now": sold_now})
    log.warning("late post acceptance: lead %s buyer %s (lead %s)%s", lead_id, ping.buyer_id,
                status, "; sold to it" if sold_now else "; operator to resolve")


def retry_nudge(lead_id, attempts: int) -> Nudge:
    return Nudge(DELIVER, (str(lead_id),), countdown=settings.post_backoff_s * 2 ** (attempts - 1))
