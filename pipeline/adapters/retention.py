"""Retention SQL: sum each buyer's old days, then delete old detail and old records in batches.

Only leads in a final status lose anything; a sale keeps its winning ping and that ping's
auction (the sale refers to them), and a consent record is deleted only with its lead, after
five years (its trigger refuses anything younger).
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pipeline.adapters import views

FINAL = ("sold", "rejected", "unsold")


def oldest_detail_day(cur, before: datetime) -> date | None:
    cur.execute("SELECT (min(at) AT TIME ZONE 'UTC')::date AS day FROM pings WHERE at < %s", (before,))
    return cur.fetchone()["day"]


def sum_buyer_day(cur, day: date) -> int:
    """Each buyer's figures of one UTC day, from the detail still there; a day summed stays."""
    start = datetime.combine(day, time(0), UTC)     # midnight UTC, whatever the session's zone
    cur.execute(f"""
        WITH {views.buyer_detail("start", "next")}
        INSERT INTO buyer_days (day, buyer_id, pings, accepts, timeouts, errors, post_rejects, wins,
                                posted, late_accepts, p50_ping_ms, p95_ping_ms)
        SELECT %(day)s, p.buyer_id, p.pings, p.accepts, p.timeouts, p.errors, p.post_rejects,
               coalesce(w.wins, 0), coalesce(po.posted, 0), coalesce(po.late_accepts, 0), p.p50, p.p95
        FROM p LEFT JOIN w ON w.buyer_id = p.buyer_id LEFT JOIN po ON po.buyer_id = p.buyer_id
        ON CONFLICT (day, buyer_id) DO NOTHING""",
                {"day": day, "start": start, "next": start + timedelta(days=1)})
    return cur.rowcount


def delete_detail(cur, before: datetime, batch: int) -> int:
    """One batch of ping, post and event detail older than ``before`` of finished leads."""
    # A ping's sale is found by its lead (sales_pkey): no index on a sale's ping_id (089).
    cur.execute("""
        SELECT p.id FROM pings p JOIN leads l ON l.id = p.lead_id
        WHERE p.at < %s AND l.status = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM sales s WHERE s.lead_id = p.lead_id AND s.ping_id = p.id)
        LIMIT %s FOR UPDATE OF p SKIP LOCKED""", (before, list(FINAL), batch))
    ids = [r["id"] for r in cur.fetchall()]
    # Through the pings' leads: post_attempts has no index on ping_id (migration 086).
    cur.execute("DELETE FROM post_attempts WHERE lead_id IN (SELECT lead_id FROM pings"
                " WHERE id = ANY(%(ids)s)) AND ping_id = ANY(%(ids)s)", {"ids": ids})
    cur.execute("DELETE FROM cap_reservations WHERE ping_id = ANY(%s)", (ids,))
    cur.execute("DELETE FROM pings WHERE id = ANY(%s)", (ids,))
    deleted = cur.rowcount
    # By row address: no index on a timeline entry's id (migration 086).
    cur.execute("""
        DELETE FROM lead_events WHERE ctid = ANY(ARRAY(
            SELECT e.ctid FROM lead_events e JOIN leads l ON l.id = e.lead_id
            WHERE e.at < %s AND l.status = ANY(%s) LIMIT %s))""", (before, list(FINAL), batch))
    deleted += cur.rowcount
    cur.execute("""
        SELECT a.id FROM auctions a JOIN leads l ON l.id = a.lead_id
        WHERE a.started_at < %s AND l.status = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pings p WHERE p.auction_id = a.id)
        LIMIT %s""", (before, list(FINAL), batch))
    auctions = [r["id"] for r in cur.fetchall()]
    cur.execute("DELETE FROM auction_shards WHERE auction_id = ANY(%s)", (auctions,))
    cur.execute("DELETE FROM auctions WHERE id = ANY(%s)", (auctions,))
    return deleted + cur.rowcount


def delete_records(cur, before: datetime, batch: int) -> int:
    """One batch of finished leads received before ``before``, with everything of theirs."""
    cur.execute("SELECT id FROM leads WHERE created_at < %s AND status = ANY(%s)"
                " LIMIT %s FOR UPDATE SKIP LOCKED", (before, list(FINAL), batch))
    ids = [r["id"] for r in cur.fetchall()]
    if not ids:
        return 0
    for table in ("post_attempts", "cap_reservations", "sales", "lead_events"):
        cur.execute(f"DELETE FROM {table} WHERE lead_id = ANY(%s)", (ids,))
    # A lead's pings are found through its auctions (pings have no index on lead_id).
    cur.execute("DELETE FROM pings WHERE auction_id IN (SELECT id FROM auctions"
                " WHERE lead_id = ANY(%s))", (ids,))
    # The application role cannot DELETE consents: the owner's function does, and the
    # consents trigger still refuses any record inside its keeping period.
    cur.execute("SELECT prune_consents(%s::uuid[])", (ids,))
    cur.execute("DELETE FROM auction_shards WHERE auction_id IN (SELECT id FROM auctions"
                " WHERE lead_id = ANY(%s))", (ids,))
    cur.execute("DELETE FROM auctions WHERE lead_id = ANY(%s)", (ids,))
    cur.execute("DELETE FROM leads WHERE id = ANY(%s)", (ids,))
    return cur.rowcount
