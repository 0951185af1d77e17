"""Auctions: shards, pings, the close, cap reservations and the round-robin turn."""
from __future__ import annotations

import operator
import uuid
from datetime import datetime

from psycopg2.extras import Json, execute_values

from pipeline.adapters.prepared import prepared
from pipeline.adapters.store import tree
from pipeline.adapters.store.cycles import PARTIAL_INDEX_SCAN
from pipeline.adapters.store.leads import moved_cte
from pipeline.domain.auction import Bid
from pipeline.domain.buyers import Buyer, Usage, cap_reached, period_starts
from pipeline.domain.modes import Mode, tier_mode
from pipeline.domain.records import Auction, Lead, Outcome, Passing, Ping, Status


def usage(cur, buyer_list: list[Buyer], now: datetime) -> dict[str, Usage]:
    """Current cap usage of these buyers, each in its own timezone's periods."""
    capped = [b for b in buyer_list if b.caps]
    if not capped:
        return {}
    keys = []
    for b in capped:
        for period, start in period_starts(now, b.timezone).items():
            keys.append((b.id, period, start))
    rows = execute_values(
        cur, "SELECT u.buyer_id, u.period, u.leads, u.spend_cents FROM cap_usage u"
        " JOIN (VALUES %s) AS k(buyer_id, period, period_start)"
        " ON u.buyer_id=k.buyer_id AND u.period=k.period AND u.period_start=k.period_start::timestamptz",
        keys, fetch=True)
    out: dict[str, Usage] = {}
    for row in rows:
        u = out.setdefault(row["buyer_id"], Usage({}, {}))
        u.leads[row["period"]] = row["leads"]
        u.spend_cents[row["period"]] = row["spend_cents"]
    return out


def open_auction(cur, *, lead_id, cycle: int, tier: int, mode: Mode, buyer_ids: list[str],
                 shard_count: int, deadline_at: datetime, skipped: list[dict],
                 timeout_ms: int | None = None, passing: Passing | None = None,
                 last: bool = False) -> uuid.UUID:
    """Open the lead's auction in ``tier`` and move the lead to auctioning in it (``passing``: a
    status passed through on the way, as move() takes it): one statement (``last``: the
    transaction's last, sent with its COMMIT).

    ``deadline_at`` holds until the first ping starts; then it is that moment + ``timeout_ms``.
    """
    auction_id = uuid.uuid4()
    # The auction is written from the row of the lead the statement moves (its lead exists by
    # construction: auctions have no key to leads since 085).
    moved, values = moved_cte(
        lead_id, Status.AUCTIONING, {"cycle": cycle, "tier": tier}, passing,
        {"cycle": cycle, "auction_id": auction_id, "award_ping_id": None},
        then="opened AS (INSERT INTO auctions (id, lead_id, cycle, tier, mode, deadline_at, buyer_ids,"
             "   shards, skipped, timeout_ms) SELECT %(a_id)s, moved.id, %(a_cycle)s, %(a_tier)s,"
             "   %(a_mode)s, %(a_deadline)s, %(a_buyers)s, %(a_shards)s, %(a_skipped)s, %(a_timeout)s"
             "   FROM moved)")
    statement = prepared(f"WITH {moved}")
    values = {**values, "a_id": auction_id, "a_cycle": cycle, "a_tier": tier, "a_mode": mode,
              "a_deadline": deadline_at, "a_buyers": buyer_ids, "a_shards": shard_count,
              "a_skipped": Json(skipped), "a_timeout": timeout_ms}
    if last:
        cur.commit_with(statement, values)
    else:
        cur.execute(statement, values)
    return auction_id


def auction(cur, auction_id, lock: bool = False) -> Auction | None:
    cur.execute(prepared(
        "SELECT * FROM auctions WHERE id=%s" + (" FOR UPDATE" if lock else "")), (auction_id,))
    row = cur.fetchone()
    return Auction.from_row(row) if row else None


# The first claim of an auction still open starts its clock (not a walk's: it has no timeout_ms).
STARTS_CLOCK = "(first_ping_at IS NULL AND closed_at IS NULL AND timeout_ms IS NOT NULL)"


def claim_shard(cur, auction_id, shard: int) -> tuple[Auction, Lead] | None:
    """The shard's auction and lead (ping-facing fields only: of its facts, the geo) if nobody
    pinged this shard yet."""
    # One statement: the claim, the clock started at the first ping (a ping task that waited in
    # the queue takes nothing from the buyers' time), and what pinging needs. The auction's row
    # is written by every claim, so RETURNING gives its newest version even when the claim
    # waited for a close: a shard claimed as its tier closes sees it closed and pings nobody.
    cur.execute(prepared(
        "WITH claimed AS (INSERT INTO auction_shards (auction_id, shard, started_at)"
        "   SELECT id, %(s)s, clock_timestamp() FROM auctions WHERE id=%(a)s"
        "   ON CONFLICT DO NOTHING RETURNING auction_id),"
        " a AS (UPDATE auctions SET"
        f"   first_ping_at=CASE WHEN {STARTS_CLOCK} THEN clock_timestamp() ELSE first_ping_at END,"
        f"   deadline_at=CASE WHEN {STARTS_CLOCK}"
        "     THEN clock_timestamp() + make_interval(secs => timeout_ms / 1000.0) ELSE deadline_at END"
        "   WHERE id IN (SELECT auction_id FROM claimed) RETURNING *)"
        " SELECT a.id AS auction_id, a.lead_id, a.cycle, a.tier, a.mode, a.deadline_at, a.closed_at,"
        " a.buyer_ids, a.shards, l.vertical, l.score, l.qualifiers, l.source, l.phone_sha256,"
        # Of the facts, only the geo the ping view shows (the rest, contact data among it, is
        # neither sent nor parsed here).
        " CASE WHEN l.facts ? 'geo' THEN jsonb_build_object('geo', l.facts -> 'geo') ELSE l.facts"
        " END AS facts,"
        f" l.email_sha256, {tree.VERSION} AS tree_version FROM a JOIN leads l ON l.id = a.lead_id"),
        {"a": auction_id, "s": shard})
    row = cur.fetchone()
    if row is None:
        return None
    row = dict(row)
    tree.saw_version(cur, row.pop("tree_version"))
    return Auction.from_row(row, id=row["auction_id"]), Lead.from_row(row, id=row["lead_id"])


def finish_shard(cur, auction_id, shard: int) -> None:
    cur.execute("UPDATE auction_shards SET finished_at=clock_timestamp() WHERE auction_id=%s"
                " AND shard=%s", (auction_id, shard))


def unfinished_shards(cur, auction: Auction) -> int:
    """Shards of an auction whose answers are not all written yet (claimed or not)."""
    cur.execute(prepared(
        "SELECT count(*) AS n FROM auction_shards WHERE auction_id=%s"
        " AND finished_at IS NOT NULL"), (auction.id,))
    return auction.shards - cur.fetchone()["n"]


def release_shard(cur, auction_id, shard: int) -> None:
    cur.execute("DELETE FROM auction_shards WHERE auction_id=%s AND shard=%s", (auction_id, shard))


# Modes whose tier closes for all at one deadline: an answer after the close is late there.
DEADLINE_MODES = [m.value for m in Mode if tier_mode(m).deadline_binds]
PING_COLUMNS = (("id", "uuid"), ("buyer_id", "text"), ("tier", "int"),
                ("cycle", "int"), ("rank", "int"), ("kind", "text"), ("outcome", "text"),
                ("bid_cents", "bigint"), ("ref", "text"), ("latency_ms", "int"), ("reason", "text"))


_PING_NAMES = tuple(name for name, _ in PING_COLUMNS)
_ping_values = operator.attrgetter(*_PING_NAMES)      # a row's values, column by column


def _ping_arrays(rows: list[Ping]) -> dict:
    """The rows as one array per column: the parameters of _INSERT_PINGS."""
    if not rows:
        return {name: [] for name in _PING_NAMES}
    return dict(zip(_PING_NAMES, map(list, zip(*map(_ping_values, rows), strict=True)), strict=True))


# A shard's answers inserted from one array per column, after a CTE `a`, the auction's row read
# in the same statement: its lead_id, and whether the tier's deadline close came first (an
# accept is then late). A ping is inserted only with its auction's row, its lead that
# auction's: what the foreign key to auctions checked, ping by ping, until 082.
_INSERT_PINGS = (
    "INSERT INTO pings (auction_id, id, lead_id, buyer_id, tier, cycle, rank, kind, outcome,"
    "   bid_cents, ref, latency_ms, reason)"
    " SELECT %(auction_id)s, v.id, a.lead_id, v.buyer_id, v.tier, v.cycle, v.rank, v.kind,"
    "   CASE WHEN a.closed AND v.outcome = 'accept' THEN 'late' ELSE v.outcome END,"
    "   v.bid_cents, v.ref, v.latency_ms, v.reason"
    " FROM a, unnest(" + ", ".join(f"%({name})s::{kind}[]" for name, kind in PING_COLUMNS) + ")"
    " AS v(" + ", ".join(name for name, _ in PING_COLUMNS) + ")"
    " ON CONFLICT (auction_id, buyer_id, kind)"
    " DO UPDATE SET outcome = CASE WHEN EXCLUDED.outcome = 'accept' THEN 'late'"
    " ELSE EXCLUDED.outcome END, bid_cents=EXCLUDED.bid_cents, latency_ms=EXCLUDED.latency_ms,"
    " reason=EXCLUDED.reason, ref=EXCLUDED.ref WHERE pings.reason IN ('no_answer', 'never_pinged')")


def record_pings(cur, auction_id, rows: list[Ping], finished_shard: int | None = None) -> None:
    """Write answers; an accept that arrives after an auction tier closed is recorded as late.

    One statement: the auction read under a share lock (the close waits for us, or we see it
    closed), every answer inserted column by column from arrays, and with ``finished_shard``
    that shard marked finished (finish_shard).
    """
    if not rows:
        if finished_shard is not None:
            finish_shard(cur, auction_id, finished_shard)
        return
    arrays = _ping_arrays(rows)
    # A ping the close already wrote off keeps that outcome unless it was a pass (no answer, or
    # never pinged: a shard claimed as its tier closed may have pinged before it saw the close).
    cur.execute(prepared(
        "WITH a AS (SELECT lead_id, closed_at IS NOT NULL AND mode = ANY(%(deadline_modes)s) AS closed"
        "   FROM auctions WHERE id=%(auction_id)s FOR SHARE),"
        " f AS (UPDATE auction_shards SET finished_at=clock_timestamp() WHERE auction_id=%(auction_id)s"
        "   AND shard=%(shard)s)"
        f" {_INSERT_PINGS}"),
        {**arrays, "auction_id": auction_id, "deadline_modes": DEADLINE_MODES,
         "shard": finished_shard})


def close_lone_shard(cur, auction_id, rows: list[Ping], shard: int
                     ) -> tuple[Auction, int | None, set[str]] | None:
    """A tier's only shard is done: write its answers, close the tier and lock its lead for the
    award, in one statement (record_pings, close_auction and claim together). Every buyer of
    the tier has its answer here (a ping's buyer must exist), so the close writes nothing off.

    Returns None when a close came first: the answers are then written as record_pings writes
    them (an accept is late) and nothing is locked. Otherwise (the closed auction, the lead's
    cycle or None when the lead is no longer auctioning in this tier, the buyers its post went
    to). The lead is locked after the tier, as the close and the award lock them.
    """
    arrays = _ping_arrays(rows)
    # The main query runs first: it closes the tier (c) and then locks the lead (l); the
    # statement's other writes (f, p) run after it. No post goes out while a lead is
    # auctioning, so the statement's snapshot holds all its post attempts.
    cur.execute(prepared(
        "WITH c AS (UPDATE auctions SET closed_at=clock_timestamp() WHERE id=%(auction_id)s"
        "   AND closed_at IS NULL RETURNING *),"
        " a AS (SELECT lead_id, NOT EXISTS (SELECT FROM c) AND mode = ANY(%(deadline_modes)s) AS closed"
        "   FROM auctions WHERE id=%(auction_id)s),"
        " f AS (UPDATE auction_shards SET finished_at=clock_timestamp() WHERE auction_id=%(auction_id)s"
        "   AND shard=%(shard)s),"
        f" p AS ({_INSERT_PINGS}),"
        " l AS (SELECT l.id, l.cycle FROM leads l JOIN c ON l.id = c.lead_id AND l.auction_id = c.id"
        "   WHERE l.status = 'auctioning' FOR UPDATE OF l)"
        " SELECT c.*, (SELECT cycle FROM l) AS lead_cycle,"
        "   ARRAY(SELECT DISTINCT buyer_id FROM post_attempts WHERE lead_id = (SELECT id FROM l)) AS posted,"
        f"  {tree.VERSION} AS tree_version FROM c"),
        {**arrays, "auction_id": auction_id, "deadline_modes": DEADLINE_MODES, "shard": shard})
    row = cur.fetchone()
    if row is None:
        return None
    tree.saw_version(cur, row["tree_version"])
    return Auction.from_row(row), row["lead_cycle"], set(row["posted"])


def close_auction(cur, auction_id) -> Auction | None:
    """Close once: the chord callback and the deadline close race here; one wins."""
    # One statement. Buyers whose answer never arrived passed: written off (in a tier with one
    # deadline for all) so the record is complete. A buyer whose shard (buyer i is in shard
    # i % shards) never started was never pinged.
    cur.execute(prepared(
        "WITH c AS (UPDATE auctions SET closed_at=clock_timestamp() WHERE id=%(a)s AND closed_at IS NULL"
        "   RETURNING *),"
        " w AS (INSERT INTO pings (id, auction_id, lead_id, buyer_id, tier, cycle, rank, outcome, reason)"
        "   SELECT md5(c.id::text || b.id)::uuid, c.id, c.lead_id, b.id, c.tier, c.cycle,"
        "     b.ord - 1, CASE WHEN s.shard IS NULL THEN 'not_pinged' ELSE 'timeout' END,"
        "     CASE WHEN s.shard IS NULL THEN 'never_pinged' ELSE 'no_answer' END"
        "   FROM c CROSS JOIN LATERAL unnest(c.buyer_ids) WITH ORDINALITY AS b(id, ord)"
        "   LEFT JOIN auction_shards s ON s.auction_id = c.id AND s.shard = (b.ord - 1) %% c.shards"
        "   WHERE c.mode = ANY(%(deadline_modes)s)"
        "   ON CONFLICT DO NOTHING)"
        " SELECT * FROM c"), {"a": auction_id, "deadline_modes": DEADLINE_MODES})
    row = cur.fetchone()
    return Auction.from_row(row) if row else None


def overdue_auctions(cur, grace_s: float, lost_after_s: float, limit: int) -> list:
    """Auction tiers past deadline + grace; one whose first ping never started only after
    ``lost_after_s`` (its ping message was lost, or is waiting in a backlog: its clock has not
    started). Walks are left alone: a waterfall outlives the pre-ping deadline, one step per
    buyer, and a walk that stops moving is the sweep's (its steps touch the lead)."""
    # Through the index of open auctions, plainly (cycles.PARTIAL_INDEX_SCAN says why).
    cur.execute(PARTIAL_INDEX_SCAN +
                "SELECT id FROM auctions WHERE closed_at IS NULL AND mode = 'auction'"
                " AND deadline_at < clock_timestamp() - make_interval(secs => CASE WHEN"
                "   first_ping_at IS NULL AND timeout_ms IS NOT NULL THEN %s ELSE %s END)"
                " ORDER BY deadline_at LIMIT %s", (lost_after_s, grace_s, limit))
    return [r["id"] for r in cur.fetchall()]


def auction_pings(cur, auction_id, kind: str = "ping") -> list[Ping]:
    cur.execute(prepared(
        "SELECT * FROM pings WHERE auction_id=%s AND kind=%s ORDER BY rank"),
                (auction_id, kind))
    return [Ping.from_row(r) for r in cur.fetchall()]


def auction_bids(cur, auction_id) -> list[Bid]:
    """The tier's pings as the award weighs them (not pre-pings), in rank order."""
    cur.execute(prepared(
        "SELECT id, buyer_id, rank, outcome, bid_cents FROM pings WHERE auction_id=%s"
        " AND kind='ping' ORDER BY rank"), (auction_id,))
    return [Bid(r["id"], r["buyer_id"], r["rank"], r["outcome"], r["bid_cents"]) for r in cur.fetchall()]


def mark_ping(cur, ping_id, outcome: Outcome, reason: str | None) -> None:
    cur.execute("UPDATE pings SET outcome=%s, reason=%s WHERE id=%s", (outcome, reason, ping_id))


def reserve_caps(cur, lead_id, ping_id, buyer: Buyer, price_cents: int, now: datetime) -> str | None:
    """Reserve one lead and its price against every cap of the buyer, all or nothing.

    Returns None when reserved, else the cap that is full. The conditional upsert runs under
    the row lock, so concurrent awards can never push a buyer past a cap.
    """
    if not buyer.caps:
        return None
    cur.execute("SAVEPOINT caps")
    for period, start in period_starts(now, buyer.timezone).items():
        limit, budget = buyer.caps.get(period), buyer.caps.get(f"{period}_budget")
        if limit is None and budget is None:
            continue
        cur.execute(
            "INSERT INTO cap_usage AS u (buyer_id, period, period_start, leads, spend_cents)"
            " VALUES (%(b)s, %(p)s, %(s)s, 1, %(c)s)"
            " ON CONFLICT (buyer_id, period, period_start) DO UPDATE"
            " SET leads = u.leads + 1, spend_cents = u.spend_cents + %(c)s"
            " WHERE (%(limit)s::int IS NULL OR u.leads + 1 <= %(limit)s)"
            "   AND (%(budget)s::bigint IS NULL OR u.spend_cents + %(c)s <= %(budget)s)"
            " RETURNING leads, spend_cents",
            {"b": buyer.id, "p": period, "s": start, "c": price_cents, "limit": limit, "budget": budget})
        row = cur.fetchone()
        if row is None or (limit is not None and row["leads"] > limit) or (
                budget is not None and row["spend_cents"] > budget):
            cur.execute("ROLLBACK TO SAVEPOINT caps")
            return _full_cap(cur, buyer, period, start, price_cents)
        cur.execute("INSERT INTO cap_reservations (lead_id, ping_id, buyer_id, period, period_start,"
                    " price_cents) VALUES (%s, %s, %s, %s, %s, %s)",
                    (lead_id, ping_id, buyer.id, period, start, price_cents))
    cur.execute("RELEASE SAVEPOINT caps")
    return None


def _full_cap(cur, buyer: Buyer, period: str, start: datetime, price_cents: int) -> str:
    """Which cap of the period refused the reservation: the count or the budget."""
    cur.execute("SELECT leads, spend_cents FROM cap_usage WHERE buyer_id=%s AND period=%s"
                " AND period_start=%s", (buyer.id, period, start))
    row = cur.fetchone()
    used = Usage({period: row["leads"]}, {period: row["spend_cents"]}) if row else Usage()
    caps = {k: v for k, v in buyer.caps.items() if k in (period, f"{period}_budget")}
    return cap_reached(caps, used, price_cents) or f"cap_{period}"


def release_caps(cur, ping_id) -> None:
    """A failed post gives back what its award reserved."""
    cur.execute(
        "WITH gone AS (DELETE FROM cap_reservations WHERE ping_id=%s RETURNING *)"
        " UPDATE cap_usage u SET leads = u.leads - 1, spend_cents = u.spend_cents - g.price_cents"
        " FROM gone g WHERE u.buyer_id=g.buyer_id AND u.period=g.period"
        " AND u.period_start=g.period_start", (ping_id,))


def lock_rotation(cur, tier: int) -> str | None:
    """A round-robin tier's rotation point (the buyer the last lead started at or was won by),
    locked until the transaction ends so two leads never take the same turn."""
    cur.execute("SELECT last_winner FROM tiers WHERE tier=%s FOR UPDATE", (tier,))
    row = cur.fetchone()
    return row["last_winner"] if row else None


def set_rotation(cur, tier: int, buyer_id: str, unless_moved_from: str | None = None) -> None:
    """Move the rotation point; with ``unless_moved_from``, only if it is still there."""
    if unless_moved_from is None:
        cur.execute("UPDATE tiers SET last_winner=%s WHERE tier=%s", (buyer_id, tier))
    else:
        cur.execute("UPDATE tiers SET last_winner=%s WHERE tier=%s AND last_winner=%s",
                    (buyer_id, tier, unless_moved_from))
