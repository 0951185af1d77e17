"""The stages of a lead, each one transaction: claim the lead, call the domain, save, nudge on.

Every stage starts with a conditional claim (the lead must be in the status the stage expects,
locked FOR UPDATE), so a duplicated or replayed message finds nothing to do. Each returns the
nudges to send once its transaction has committed: PostgreSQL is the truth, a message a nudge.
Validate, score, ping and award commit without waiting for the disk (db.transaction says why).
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from config.settings import settings
from pipeline.adapters import db, transport
from pipeline.adapters import store as sql_store
from pipeline.adapters.db import DatabaseDown
from pipeline.domain import auction as auctions
from pipeline.domain import delivery, scoring, suppression, validation
from pipeline.domain.buyers import Buyer, eligibility
from pipeline.domain.modes import tier_mode
from pipeline.domain.records import Auction, Lead, Network, Outcome, Passing, Ping, Status
from pipeline.protocols import native as protocol
from pipeline.protocols import registry as protocols
from pipeline.protocols.interface import Answer
from pipeline.service import intake
from pipeline.service.nudges import Fanout, Nudge
from pipeline.service.pinging import ping_row, read_reply
from pipeline.service.ports import Store

log = logging.getLogger("pingtree")

VALIDATE, SCORE = "pingtree.validate_lead", "pingtree.score_lead"
PING_SHARD, WALK = "pingtree.ping_shard", "pingtree.walk_waterfall"
AWARD, DELIVER = "pingtree.award_auction", "pingtree.deliver_post"

Nudges = list[Nudge | Fanout]

# The stages' store: PostgreSQL (mypy checks the module against the Store protocol); the unit
# tests put their in-memory store here.
store: Store = sql_store


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---- validate -----------------------------------------------------------------------------

def validate_lead(lead_id) -> Nudges:
    with db.transaction(durable=False) as cur:
        # Two copies of one consumer's lead validated at once must not both pass as first: the
        # claim locks the contact hashes the consent record names (taken at intake)...
        claimed = store.claim_to_validate(cur, lead_id)
        if claimed is None:
            return []
        lead, consent, locked = claimed
        net = store.network(cur)
        normalised = validation.normalise({**lead.as_dict(), "consent": consent or {}})
        if (normalised.phone_sha256, normalised.email_sha256) != locked:
            # ...the same as the normalised ones, but for a phone too bad to hash at intake (or a
            # consent recorded before it named its hashes): those are locked here.
            store.lock_contact(cur, lead.vertical, normalised.phone_sha256, normalised.email_sha256)
        # A statement after the locks: it sees a twin that held them and committed.
        duplicate_of, suppressed = store.contact_history(
            cur, lead_id, lead.vertical, normalised.phone_sha256, normalised.email_sha256,
            net.duplicate_window_h,
            suppression.contact_entries(settings.suppression_key, normalised.phone_e164,
                                        normalised.email) if settings.suppression_key else (None, None),
            (normalised.phone_sha256, normalised.email_sha256))
        history = validation.History(duplicate_of=duplicate_of, suppressed=suppressed)
        verdict = validation.verdict(normalised, history)
        facts = normalised.facts()
        # The ZIP's own city and state: the contact's city is optional and free text.
        facts["geo"] = {"zip": normalised.zip5, "state": normalised.zip_state or lead.contact["state"],
                        "city": normalised.zip_city or lead.contact.get("city")}
        contact = dict(lead.contact, phone=normalised.phone_e164 or lead.contact.get("phone"),
                       email=normalised.email or lead.contact.get("email"))
        common: dict[str, Any] = {"facts": facts, "contact": contact, "phone_sha256": normalised.phone_sha256,
                                  "email_sha256": normalised.email_sha256}
        if isinstance(verdict, validation.Rejected):
            store.move(cur, lead_id, Status.REJECTED, {"reasons": list(verdict.reasons)}, last=True,
                       reject_reasons=list(verdict.reasons),
                       duplicate_of=verdict.duplicate_of, **common)
            return []
        store.move(cur, lead_id, Status.VALIDATED, last=True, **common)
    return [Nudge(SCORE, (str(lead_id),))]


# ---- score --------------------------------------------------------------------------------

def score_lead(lead_id) -> Nudges:
    with db.transaction(durable=False) as cur:
        now = now_utc()
        claimed = store.claim_to_score(cur, lead_id, now)
        if claimed is None:
            return []
        lead, consent, history = claimed[0], claimed[1] or {}, claimed[2]
        found = validation.Normalised.from_facts(lead.facts or {})
        result = scoring.score({**lead.as_dict(), "consent": consent}, found, history)
        net = store.network(cur)
        if result.total < net.score_floor:
            store.move(cur, lead_id, Status.REJECTED, {"score": result.total}, score=result.total,
                       signals=result.signals, reject_reasons=["low_score"], last=True)
            return []
        # Scored, and on at once: the scored entry is written with the lead's next move.
        scored = Passing(Status.SCORED, {"score": result.total},
                               {"score": result.total, "signals": result.signals})
        lead = replace(lead, status=Status.SCORED, score=result.total, signals=result.signals)
        return start_cycle(cur, lead, cycle=1, net=net, now=now, passing=scored, last=True)


# ---- auction ------------------------------------------------------------------------------

def ping_view(lead: Lead) -> dict:
    """What buyers and eligibility may see of a lead: no personal data."""
    return {"lead_id": str(lead.id), "vertical": lead.vertical, "score": lead.score,
            "geo": (lead.facts or {})["geo"], "qualifiers": lead.qualifiers,
            "source": {"publisher_id": lead.source.get("publisher_id")}}


def start_cycle(cur, lead: Lead, *, cycle: int, net: Network, now: datetime,
                passing: Passing | None = None, last: bool = False) -> Nudges:
    return open_next_tier(cur, lead, cycle=cycle, after_tier=0, net=net, now=now, passing=passing,
                          last=last)


def open_next_tier(cur, lead: Lead, *, cycle: int, after_tier: int, net: Network,
                   now: datetime, passing: Passing | None = None, last: bool = False) -> Nudges:
    """Open an auction in the next tier with an eligible buyer, or hold / give up the lead.

    ``passing``: a status the lead passed through in this transaction, written with this move.
    ``last``: the move is the transaction's last statement (sent with its COMMIT).
    """
    view = ping_view(lead)
    all_buyers = store.buyers(cur)
    usage = store.usage(cur, all_buyers, now)
    passed_over: list[dict] = []
    for tier in store.tiers(cur):
        if tier.tier <= after_tier:
            continue
        in_tier = [b for b in all_buyers if b.tier == tier.tier]
        eligible, skipped = eligibility(view, in_tier, now, usage)
        if not eligible:
            passed_over += [{"buyer_id": s.buyer_id, "reason": s.reason} for s in skipped]
            continue
        mode = tier_mode(tier.mode)
        if mode.rotates:
            # Taken under the tier's row lock when the lead starts, so leads that open the tier
            # together each start at the next buyer instead of all at the same one.
            after = store.lock_rotation(cur, tier.tier)
            ranked = mode.order(eligible, usage, next((b for b in all_buyers if b.id == after), None))
            store.set_rotation(cur, tier.tier, ranked[0].id)
        else:
            ranked = mode.order(eligible, usage)
        ids = [b.id for b in ranked]
        count = mode.shard_count(len(ids), settings.ping_shard_size)
        deadline = now + timedelta(milliseconds=net.auction_timeout_ms)
        auction_id = store.open_auction(
            cur, lead_id=lead.id, cycle=cycle, tier=tier.tier, mode=tier.mode,
            timeout_ms=net.auction_timeout_ms,
            buyer_ids=ids, shard_count=count, deadline_at=deadline,
            skipped=[{"buyer_id": s.buyer_id, "reason": s.reason} for s in skipped], passing=passing,
            last=last)
        if mode.walks:
            return [Nudge(WALK, (str(auction_id),))]
        # The deadline is kept by each ping's budget; the beat's close_overdue catches the rest.
        if count == 1:
            # One shard needs no chord: the shard awards the auction itself when it is done.
            return [Nudge(PING_SHARD, (str(auction_id), 0))]
        return [Fanout(header=tuple(Nudge(PING_SHARD, (str(auction_id), i)) for i in range(count)),
                       body=Nudge(AWARD, (str(auction_id),)))]
    return hold_or_give_up(cur, lead, cycle=cycle, net=net, now=now, skipped=passed_over,
                           passing=passing, last=last)


def hold_or_give_up(cur, lead: Lead, *, cycle: int, net: Network, now: datetime,
                    skipped: list[dict], reason: str | None = None,
                    passing: Passing | None = None, last: bool = False) -> Nudges:
    """No buyer in any tier: hold for the next cycle, or give up after max_cycles."""
    detail: dict[str, Any] = {"cycle": cycle, "skipped": skipped} if skipped else {"cycle": cycle}
    if reason:
        detail["reason"] = reason
    if cycle >= net.max_cycles:
        store.move(cur, lead.id, Status.UNSOLD, detail, passing=passing, last=last, cycle=cycle,
                   auction_id=None, award_ping_id=None)
    else:
        due = now + timedelta(seconds=net.rerun_interval_s)
        store.move(cur, lead.id, Status.HELD, {**detail, "next_run_at": due.isoformat()},
                   passing=passing, last=last, cycle=cycle, next_run_at=due, auction_id=None,
                   award_ping_id=None)
    return []


def ping_many(buyers: list[Buyer], view: dict, *, auction_id, cycle: int, deadline: datetime,
              kind: str = "ping", hashes: tuple = (None, None)) -> list[Answer]:
    """Ping (or pre-ping) buyers at once, each within min(its time-out, time left to the deadline).

    Each buyer's protocol builds its request and reads its answer. Never raises: a time-out, a
    refused connection or a bad answer is a pass with its reason.
    """
    requests, answers = [], {}
    left = (deadline - now_utc()).total_seconds()
    for i, buyer in enumerate(buyers):
        budget = min(buyer.timeout_ms / 1000, left)
        if budget <= 0:
            # Never sent: the buyer is not charged a time-out for our own queueing.
            answers[i] = Answer(Outcome.NOT_PINGED if kind == "ping" else Outcome.INELIGIBLE,
                                reason="deadline_passed", latency_ms=None)
            continue
        # The hashes are personal data: only for a buyer whose tree entry opted in.
        phone_sha256, email_sha256 = hashes if buyer.pre_ping_hashes else (None, None)
        facts = {**view, "ping_id": protocol.ping_id(auction_id, buyer.id, kind), "cycle": cycle,
                 "bid_cents": buyer.bid_cents, "expires_at": deadline,
                 "phone_sha256": phone_sha256, "email_sha256": email_sha256}
        speaker = protocols.for_buyer(buyer)
        out = (speaker.pre_ping if kind == "pre_ping" else speaker.ping)(facts, int(time.time()))
        if isinstance(out, Answer):        # a direct post, or a request that could not be built
            answers[i] = out
            continue
        requests.append((i, transport.Request(out.url, out.body, out.headers, budget, out.method)))
    try:
        replies = transport.send_many([r for _, r in requests], max_bytes=settings.max_answer_bytes,
                                      allow_private=settings.allow_private_buyers)
    except Exception as exc:           # a ping that raises would kill the chord: it is a pass
        log.warning("pinging %d buyers failed: %s", len(requests), type(exc).__name__)
        replies = [transport.Reply(None, b"", 0, "internal_error")] * len(requests)
    for (i, _), reply in zip(requests, replies, strict=True):
        answers[i] = read_reply(buyers[i], reply, kind)
    return [answers[i] for i in range(len(buyers))]


def _ping_context(cur, auction_id, claim: int
                  ) -> tuple[Auction, Lead, dict, list[tuple[int, Buyer]]] | None:
    """Claim a piece of the auction's pinging (a shard, or a waterfall step) exactly once:
    the auction, its lead's ping-facing fields, the lead's ping view and the (rank, buyer)s."""
    claimed = store.claim_shard(cur, auction_id, claim)
    if claimed is None:
        return None
    auction, lead = claimed
    ids = auction.buyer_ids
    group = ids if tier_mode(auction.mode).walks else auctions.shard(ids, auction.shards, claim)
    by_id = {b.id: b for b in store.buyers(cur, group)}
    return auction, lead, ping_view(lead), [(ids.index(i), by_id[i]) for i in group if i in by_id]


def ping_shard(auction_id, shard: int) -> Nudges:
    """Ping one shard of an auction tier at once; answers are written, never raised.

    A lone shard awards the auction itself (one task fewer per lead); several shards are a
    chord whose callback awards.
    """
    # The claim is one statement, committed as it answers: no COMMIT round trip before the pings.
    with db.transaction(each_statement=True, durable=False) as cur:
        found = _ping_context(cur, auction_id, shard)
    if found is None:
        return []                      # a redelivered shard: its buyers were pinged already
    auction, lead, view, ranked = found
    alone = auction.shards == 1
    if auction.closed_at is not None:
        return award_auction(auction_id, shards_done=True) if alone else []
    answers = ping_many([b for _, b in ranked], view, auction_id=auction_id, cycle=auction.cycle,
                        deadline=auction.deadline_at)
    auction_text = str(auction.id)
    rows = [ping_row(auction, buyer, rank, answer, "ping", auction_text)
            for (rank, buyer), answer in zip(ranked, answers, strict=True)]

    def record(and_award: bool) -> Nudges:
        with db.transaction(durable=False) as cur:
            if not and_award:
                store.record_pings(cur, auction_id, rows, finished_shard=shard)
                return []
            # A lone shard awards in the same transaction: one commit fewer on the way to the post.
            return _award_lone_shard(cur, auction_id, shard, lead, rows)
    # Answers are worth a retry on a fresh connection: a PostgreSQL blip must not write off
    # buyers that accepted (the close would record them as time-outs).
    try:
        return db.retrying(lambda: record(alone), attempts=6, wait_s=0.2)
    except DatabaseDown:
        raise
    except Exception:
        if not alone:
            raise
        # The award failed and took the answers with it: they are written on their own, and
        # the deadline close awards them (as it did for any award that failed).
        db.retrying(lambda: record(False), attempts=6, wait_s=0.2)
        raise


def walk_waterfall(auction_id, step: int = 0) -> Nudges:
    """Waterfall / round robin: pre-ping all at once, then ping one at a time in rank order.

    ``step`` is how many buyers had been pinged when this walk was asked for: 0 at the start,
    more when a post rejection sends the walk on. Each step is claimed once, so a duplicated
    or replayed walk message pings nobody again.
    """
    with db.transaction(durable=False) as cur:
        found = _ping_context(cur, auction_id, step)
        if found is None:
            return []
        already = {p.buyer_id: p for p in store.auction_pings(cur, auction_id)}
        pre = {p.buyer_id: p for p in store.auction_pings(cur, auction_id, "pre_ping")}
    auction, lead, view, ranked = found
    deadline = auction.deadline_at
    to_pre_ping = [(r, b) for r, b in ranked if protocols.for_buyer(b).pre_pings and b.id not in pre]
    if to_pre_ping:
        answers = ping_many([b for _, b in to_pre_ping], view, auction_id=auction_id,
                            cycle=auction.cycle, deadline=deadline, kind="pre_ping",
                            hashes=(lead.phone_sha256, lead.email_sha256))
        rows = [ping_row(auction, b, r, a, "pre_ping")
                for (r, b), a in zip(to_pre_ping, answers, strict=True)]
        with db.transaction(durable=False) as cur:
            store.record_pings(cur, auction_id, rows)
        pre.update({row.buyer_id: row for row in rows})
    for rank, buyer in ranked:
        if buyer.id in already or (buyer.id in pre and pre[buyer.id].outcome == Outcome.INELIGIBLE):
            continue
        # Each waterfall step has the buyer's own time-out, the auction deadline applies to pre-pings.
        step_deadline = now_utc() + timedelta(milliseconds=buyer.timeout_ms)
        [answer] = ping_many([buyer], view, auction_id=auction_id, cycle=auction.cycle,
                             deadline=step_deadline)
        with db.transaction(durable=False) as cur:
            store.record_pings(cur, auction_id, [ping_row(auction, buyer, rank, answer, "ping")])
            store.touch(cur, auction.lead_id)   # a walk that moves on is not stuck
        if answer.outcome == Outcome.ACCEPT:
            break
    return award_auction(auction_id, shards_done=True)


def award_auction(auction_id, shards_done: bool = False) -> Nudges:
    """Close the auction (if the deadline close did not) and act on its bids.

    ``shards_done``: the caller knows every shard's answers are written (a lone shard that
    finished, a walk), so the close need not count them first.
    """
    with db.transaction(durable=False) as cur:
        return _award(cur, auction_id, shards_done)


def _award_lone_shard(cur, auction_id, shard: int, lead: Lead, rows: list[Ping]) -> Nudges:
    """A tier's only shard has its answers: write them, close the tier and award it.

    ``lead``: the lead's ping-facing fields, as the shard's claim read them.
    """
    closing = store.close_lone_shard(cur, auction_id, rows, shard)
    if closing is None:
        # A close came first (the answers are written as late as they came): as any award.
        return _award(cur, auction_id, shards_done=True)
    auction, cycle, posted = closing
    if cycle is None:
        return []                  # the lead moved on already
    # This statement wrote the tier's only shard and then closed the tier, so no close came
    # first to write the answers off or make an accept late: the answers are its bids as the
    # table holds them (besides write-offs of buyers gone from the tree, which never win).
    bids = [auctions.Bid(p.id, p.buyer_id, p.rank, p.outcome, p.bid_cents) for p in rows]
    lead = replace(lead, status=Status.AUCTIONING, cycle=cycle, auction_id=auction.id)
    return award(cur, lead, auction, bids, posted)


def _award(cur, auction_id, shards_done: bool) -> Nudges:
    closed = store.close_auction(cur, auction_id) if shards_done else None
    auction = closed or store.auction(cur, auction_id)
    if auction is None:
        return []
    if not shards_done:
        if (auction.closed_at is None and not tier_mode(auction.mode).walks
                and auction.deadline_at > now_utc() and store.unfinished_shards(cur, auction)):
            # A chord that counted a duplicated header: the deadline close awards instead.
            return []
        store.close_auction(cur, auction_id)
    lead = store.claim(cur, auction.lead_id, Status.AUCTIONING)
    if lead is None or lead.auction_id != auction.id:
        return []                  # a duplicate callback, or the lead moved on already
    return award(cur, lead, auction)


def award(cur, lead: Lead, auction: Auction, bids: list[auctions.Bid] | None = None,
          posted: set[str] | None = None) -> Nudges:
    """Award the tier to its best bid that may win, or go on: the next step of a walk, the next
    tier, held or unsold. ``bids`` (the tier's answers) and ``posted`` (the buyers the lead's
    post went to): when the caller holds them, else read."""
    net, now = store.network(cur), now_utc()
    if bids is None:
        bids = store.auction_bids(cur, auction.id)
    buyers = {b.id: b for b in store.buyers(cur, [b.buyer_id for b in bids])}
    mode = tier_mode(auction.mode)
    if posted is None:
        posted = store.posted_buyers(cur, lead.id)
    for bid in mode.candidates(bids, net.bid_floor_cents):
        if not delivery.may_post_to(bid.buyer_id, posted, net.max_post_buyers):
            # Enough buyers have seen this lead's contact data: no new one gets it.
            store.close_auction(cur, auction.id)
            return hold_or_give_up(cur, lead, cycle=lead.cycle, net=net, now=now, skipped=[],
                                   reason="max_post_buyers", last=True)
        price = bid.bid_cents
        assert price is not None, "a candidate bid has a price"
        full = store.reserve_caps(cur, lead.id, bid.ping_id, buyers[bid.buyer_id], price, now)
        if full:
            store.mark_ping(cur, bid.ping_id, Outcome.REJECT, full)
            continue
        if mode.rotates:
            # The next lead starts after the winner, unless another lead took the turn since.
            store.set_rotation(cur, auction.tier, bid.buyer_id, unless_moved_from=auction.buyer_ids[0])
        # The award's transaction ends here (every caller gives the award a transaction of its
        # own), so the move goes out with the COMMIT: one round trip fewer before the post.
        store.move(cur, lead.id, Status.DELIVERING,
                   {"buyer_id": bid.buyer_id, "price_cents": price}, last=True,
                   award_ping_id=bid.ping_id)
        return [Nudge(DELIVER, (str(lead.id),))]
    if mode.walks:
        passed = {b.buyer_id for b in bids} | {
            p.buyer_id for p in store.auction_pings(cur, auction.id, "pre_ping")
            if p.outcome == Outcome.INELIGIBLE}
        if auctions.next_to_ping(auction.buyer_ids, passed):
            store.touch(cur, lead.id)
            return [Nudge(WALK, (str(auction.id), len(bids)))]
    return open_next_tier(cur, lead, cycle=lead.cycle, after_tier=auction.tier, net=net, now=now,
                          last=True)


def close_overdue(limit: int = 200) -> Nudges:
    """Beat, every fraction of a second: award auctions still open at deadline + grace.

    Pings keep the deadline by their own budgets, so this finds something only when a ping
    task started late (a backlog) or never finished (a lost message, a killed worker).
    """
    with db.transaction() as cur:
        overdue = store.overdue_auctions(cur, settings.close_grace_s,
                                         store.network(cur).stuck_after_s, limit)
    nudges: Nudges = []
    for auction_id in overdue:
        nudges += award_auction(auction_id)
    return nudges


# ---- cycles and the sweep -----------------------------------------------------------------

def rerun_held(limit: int = 200) -> Nudges:
    """Beat: held leads whose next cycle is due are auctioned again from the first tier."""
    nudges: Nudges = []
    with db.transaction() as cur:
        net, now = store.network(cur), now_utc()
        for lead in store.due_held(cur, now, limit):
            nudges += start_cycle(cur, lead, cycle=lead.cycle + 1, net=net, now=now)
    return nudges


def sweep_stuck(limit: int = 200) -> Nudges:
    """Beat: re-drive leads stuck past stuck_after_s from their PostgreSQL status.

    Every re-drive is counted; a lead the sweep has re-driven max_redrives times without it
    moving on ends unsold (``stuck_<status>``), its cap reservation released, never posted again.
    """
    intake.purge_expired_keys()     # idempotency keys past their window, a batch per run
    nudges: Nudges = []
    with db.transaction() as cur:
        net, now = store.network(cur), now_utc()
        for row, mode in store.stuck(cur, net.stuck_after_s, limit):
            lead_id = str(row.id)
            if store.count_redrive(cur, row.id) > net.max_redrives:
                give_up_stuck(cur, row)
                continue
            redo = REDRIVE.get(row.status) if row.status else None
            if redo:
                nudges.append(Nudge(redo, (lead_id,)))
            elif row.status == Status.SCORED:
                lead = store.claim(cur, row.id, Status.SCORED)   # locked by store.stuck: it is there
                if lead is None:
                    continue
                nudges += start_cycle(cur, lead, cycle=max(1, lead.cycle), net=net, now=now)
            elif row.status == Status.AUCTIONING and mode is not None and not tier_mode(mode).walks:
                nudges.append(Nudge(AWARD, (str(row.auction_id),)))
            elif row.status == Status.AUCTIONING:
                # A walk idle past stuck_after_s is presumed dead: reopen its step and go on.
                step = len(store.auction_pings(cur, row.auction_id))
                store.release_shard(cur, row.auction_id, step)
                nudges.append(Nudge(WALK, (str(row.auction_id), step)))
            log.info("sweep re-drove lead %s from %s", lead_id, row.status)
    return nudges


# The statuses the sweep re-drives by sending their stage's message again.
REDRIVE = {Status.RECEIVED: VALIDATE, Status.VALIDATED: SCORE, Status.DELIVERING: DELIVER}


def give_up_stuck(cur, row: Lead) -> None:
    """The sweep cannot move this lead: end it for the operator, with nothing left reserved."""
    in_flight = store.open_post(cur, row.id)
    if in_flight is not None:
        store.expire_post(cur, row.id, in_flight["id"])     # its lease ran out: a later answer is late
    if row.award_ping_id:
        store.release_caps(cur, row.award_ping_id)
    if row.auction_id:
        store.close_auction(cur, row.auction_id)
    reason = f"stuck_{row.status}"
    store.move(cur, row.id, Status.UNSOLD, {"reason": reason, "redrives": row.redrives + 1},
               reject_reasons=[reason], award_ping_id=None)
    log.warning("lead %s ended unsold: %s after %d re-drives", row.id, reason, row.redrives)
