"""Cycles and the sweep (held leads due, stuck leads), and a lead's rows for its view."""
from __future__ import annotations

import uuid
from datetime import datetime

from pipeline.adapters.prepared import prepared
from pipeline.domain.modes import Mode
from pipeline.domain.records import Lead

# A lead (aliased `l`) whose post is on the wire under a live lease: it is settled, or its lease
# runs out first, so the sweep never re-drives it and the stuck-leads gauge does not count it.
POST_IN_FLIGHT = ("EXISTS (SELECT 1 FROM post_attempts p WHERE p.lead_id = l.id"
                  " AND p.outcome IS NULL AND p.lease_until > clock_timestamp())")

# The periodic scans (the sweep, the held-lead cycle, the deadline close) each look for the few
# rows of a partial index (leads in flight, leads held, auctions open), and read them through it
# whatever the statistics say, never the whole table. On statistics taken while most rows matched
# (a burst, a restore, a lagging autovacuum) PostgreSQL read the whole leads table for the sweep
# (30 ms a run after 15,000 leads, against 0.5 through the index, and growing with the table),
# and a plain index scan, never a bitmap one: a plain one marks the entry of a row that left the
# index's predicate since (its old version, dead) so the next scan skips it without visiting the
# table; a bitmap scan visits every such row again until a vacuum (the deadline close, four times
# a second in every award worker: 2.2 ms a scan after 16,000 closes, against 0.02). And no
# parallel workers: on the same statistics PostgreSQL started two for a handful of rows (4-6 ms
# to start them). Sent in the statement's own message: for that transaction only.
PARTIAL_INDEX_SCAN = ("SET LOCAL enable_seqscan TO off; SET LOCAL enable_bitmapscan TO off;"
                      " SET LOCAL max_parallel_workers_per_gather TO 0;")


def due_held(cur, now: datetime, limit: int = 500) -> list[Lead]:
    cur.execute(PARTIAL_INDEX_SCAN +
                "SELECT * FROM leads WHERE held AND next_run_at <= %s"
                " ORDER BY next_run_at LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit))
    return [Lead.from_row(r) for r in cur.fetchall()]


def stuck(cur, stuck_after_s: int, limit: int = 500) -> list[tuple[Lead, Mode | None]]:
    """Leads stuck past ``stuck_after_s`` (status, auction, award, re-drives read) and the mode
    of their auction tier, if they are in one; locked, skipping those another sweep holds."""
    # Through the index of leads in flight (PARTIAL_INDEX_SCAN), each one's auction by its key.
    cur.execute(
        PARTIAL_INDEX_SCAN + "SET LOCAL enable_hashjoin TO off; SET LOCAL enable_mergejoin TO off;"
        "SELECT l.id, l.status, l.auction_id, l.award_ping_id, l.redrives, a.deadline_at, a.closed_at,"
        " a.mode FROM leads l LEFT JOIN auctions a ON a.id = l.auction_id"
        " WHERE l.in_flight AND l.status_at < clock_timestamp() - make_interval(secs => %s)"
        f" AND NOT {POST_IN_FLIGHT}"
        " ORDER BY l.status_at LIMIT %s FOR UPDATE OF l SKIP LOCKED", (stuck_after_s, limit))
    return [(Lead.from_row(r), None if r["mode"] is None else Mode(r["mode"])) for r in cur.fetchall()]


def count_redrive(cur, lead_id) -> int:
    """One more re-drive by the sweep (it also restarts the stuck clock); returns the count."""
    cur.execute("UPDATE leads SET redrives = redrives + 1, status_at=clock_timestamp() WHERE id=%s"
                " RETURNING redrives", (lead_id,))
    return cur.fetchone()["redrives"]


def touch(cur, lead_id) -> None:
    """Restart the stuck clock of a re-driven lead so the next sweep gives it time."""
    cur.execute(prepared(
        "UPDATE leads SET status_at=clock_timestamp() WHERE id=%s"), (lead_id,))


# ---- views --------------------------------------------------------------------------------

def lead_row(cur, lead_id) -> dict | None:
    try:
        lead_uuid = uuid.UUID(str(lead_id))
    except ValueError:
        return None
    cur.execute("SELECT * FROM leads WHERE id=%s", (lead_uuid,))
    row = cur.fetchone()
    return dict(row) if row else None


def lead_history(cur, lead_id) -> dict:
    cur.execute("SELECT status, at, detail FROM lead_events WHERE lead_id=%s ORDER BY id", (lead_id,))
    events = [dict(r) for r in cur.fetchall()]
    cur.execute("SELECT buyer_id, tier, cycle, kind, outcome, bid_cents, latency_ms, reason, at"
                " FROM pings WHERE auction_id IN (SELECT id FROM auctions WHERE lead_id=%s)"
                " ORDER BY at, rank", (lead_id,))
    pings = [dict(r) for r in cur.fetchall()]
    cur.execute("SELECT id, cycle, tier, mode, skipped FROM auctions WHERE lead_id=%s ORDER BY started_at",
                (lead_id,))
    auctions = [dict(r) for r in cur.fetchall()]
    cur.execute("SELECT * FROM sales WHERE lead_id=%s", (lead_id,))
    sale = cur.fetchone()
    cur.execute("SELECT buyer_id, attempt, outcome, reason, http_status, latency_ms, at, settled_at,"
                " late_outcome FROM post_attempts WHERE lead_id=%s ORDER BY id", (lead_id,))
    posts = [dict(r) for r in cur.fetchall()]
    return {"events": events, "pings": pings, "auctions": auctions, "posts": posts,
            "sale": dict(sale) if sale else None}
