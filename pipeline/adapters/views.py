"""What operators read: the lead view (no personal data), the report and billing."""
from __future__ import annotations

from datetime import UTC, datetime

from pipeline.adapters import store
from pipeline.domain.instants import iso
from pipeline.domain.money import as_number


def _iso(at: datetime | None) -> str | None:
    return iso(at) if at else None


# What a publisher may read of its own lead: no buyer, bid, price or other lead's id.
PUBLISHER_FIELDS = ("lead_id", "status", "vertical", "score", "signals", "reject_reasons", "cycles",
                    "sale", "timeline")


def lead_view(cur, lead_id, publisher_id: str | None = None) -> dict | None:
    """The lead view: status, score, signals, pings, skips and timeline; no personal data.

    With ``publisher_id``: that publisher's view of its own lead, None for anyone else's.
    """
    lead = store.lead_row(cur, lead_id)
    if lead is None or (publisher_id is not None and lead["publisher_id"] != publisher_id):
        return None
    view = _operator_view(cur, lead)
    if publisher_id is None:
        return view
    sale = view["sale"]
    return {**{k: view[k] for k in PUBLISHER_FIELDS},
            "sale": {"sold_at": sale["sold_at"], "returned": sale["returned"]} if sale else None}


def _operator_view(cur, lead: dict) -> dict:
    history = store.lead_history(cur, lead["id"])
    sale = history["sale"]
    skipped, seen = [], set()
    # Skips are kept with each auction, and with the hold when no tier had anyone to ping.
    held = [{"cycle": e["detail"]["cycle"], "skipped": e["detail"]["skipped"]}
            for e in history["events"] if e["detail"] and "skipped" in e["detail"]]
    for auction in history["auctions"] + held:
        for skip in auction["skipped"]:
            key = (skip["buyer_id"], skip["reason"])
            if key not in seen:
                seen.add(key)
                skipped.append({"buyer_id": skip["buyer_id"], "reason": skip["reason"],
                                "cycle": auction["cycle"]})
    return {
        "lead_id": str(lead["id"]), "status": lead["status"], "vertical": lead["vertical"],
        "score": lead["score"], "signals": lead["signals"] or {},
        "reject_reasons": list(lead["reject_reasons"] or []),
        "duplicate_of": str(lead["duplicate_of"]) if lead["duplicate_of"] else None,
        "cycles": lead["cycle"],
        "sale": {"buyer_id": sale["buyer_id"], "price": as_number(sale["price_cents"]),
                 "sold_at": _iso(sale["sold_at"]),
                 "returned": sale["returned_at"] is not None, "returned_at": _iso(sale["returned_at"]),
                 "return_reason": sale["return_reason"]} if sale else None,
        # Flower finds a lead's validate, score and deliver tasks by the lead id, and its ping
        # and award tasks by these auction ids.
        "auctions": [{"auction_id": str(a["id"]), "cycle": a["cycle"], "tier": a["tier"],
                      "mode": a["mode"]} for a in history["auctions"]],
        "pings": [{"buyer_id": p["buyer_id"], "tier": p["tier"], "cycle": p["cycle"],
                   "kind": p["kind"], "outcome": p["outcome"], "bid": as_number(p["bid_cents"]),
                   "latency_ms": p["latency_ms"], "reason": p["reason"]} for p in history["pings"]],
        "skipped": skipped,
        # Every post sent to a buyer (outcome null while in flight), and sweep re-drives.
        "posts": [{"buyer_id": p["buyer_id"], "attempt": p["attempt"], "outcome": p["outcome"],
                   "reason": p["reason"], "http_status": p["http_status"],
                   "latency_ms": p["latency_ms"], "late_outcome": p["late_outcome"],
                   "at": _iso(p["at"])} for p in history["posts"]],
        "redrives": lead["redrives"],
        "timeline": [{"status": e["status"], "at": _iso(e["at"]),
                      **({"note": e["detail"]["reason"]} if e["status"] == "returned" else {})}
                     for e in history["events"]],
    }


# An open end of a report's window.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def buyer_detail(start: str, end: str) -> str:
    """The CTEs p (pings), w (wins) and po (posts) per buyer over [%(start)s, %(end)s): what a
    report reads from the detail, and what the prune sums into buyer_days before deleting it."""
    return f"""p AS (
            SELECT buyer_id, count(*) FILTER (WHERE outcome <> 'not_pinged') AS pings,
                   count(*) FILTER (WHERE outcome IN ('accept', 'post_rejected')
                       OR (outcome = 'late' AND bid_cents IS NOT NULL)) AS accepts,
                   count(*) FILTER (WHERE outcome IN ('timeout', 'late')) AS timeouts,
                   count(*) FILTER (WHERE outcome = 'error') AS errors,
                   count(*) FILTER (WHERE outcome = 'post_rejected') AS post_rejects,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
                       FILTER (WHERE outcome <> 'not_pinged' AND reason IS DISTINCT FROM 'no_answer') AS p50,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
                       FILTER (WHERE outcome <> 'not_pinged' AND reason IS DISTINCT FROM 'no_answer') AS p95
            FROM pings WHERE kind = 'ping' AND at >= %({start})s AND at < %({end})s GROUP BY buyer_id),
        w AS (SELECT detail->>'buyer_id' AS buyer_id, count(*) AS wins FROM lead_events
              WHERE status = 'delivering' AND at >= %({start})s AND at < %({end})s GROUP BY 1),
        po AS (SELECT buyer_id, count(DISTINCT lead_id) AS posted,
                      count(DISTINCT lead_id) FILTER (WHERE late_outcome = 'accepted') AS late_accepts
               FROM post_attempts WHERE at >= %({start})s AND at < %({end})s GROUP BY buyer_id)"""


def report(cur, since: datetime | None = None, until: datetime | None = None,
           detail_from: datetime | None = None) -> dict:
    """Leads per status, revenue, per-buyer ping, post and sale figures of [since, until);
    the CLI always bounds it, so it never scans all history.

    Ping and post figures come from the detail from ``detail_from`` on, and from the prune's
    daily sums (buyer_days) for the days before it, whose detail is gone; latency percentiles
    come from the detail only.
    """
    start, end = since or EARLIEST, until or LATEST
    detail = max(start, detail_from or start)
    # Days of buyer_days are UTC days, whatever the session's time zone.
    window = {"since": start, "until": end, "detail": detail, "since_day": start.astimezone(UTC).date(),
              "detail_day": detail.astimezone(UTC).date()}
    cur.execute("SELECT status, count(*) AS n FROM leads WHERE created_at >= %(since)s"
                " AND created_at < %(until)s GROUP BY status", window)
    leads = {r["status"]: r["n"] for r in cur.fetchall()}
    cur.execute("SELECT now() AS now")
    now = cur.fetchone()["now"]
    cur.execute("SELECT coalesce(sum(price_cents) FILTER (WHERE returned_at IS NULL), 0) AS net,"
                " count(*) FILTER (WHERE returned_at IS NOT NULL) AS returns,"
                " coalesce(sum(price_cents) FILTER (WHERE returned_at IS NOT NULL), 0) AS returned"
                " FROM sales WHERE sold_at >= %(since)s AND sold_at < %(until)s", window)
    totals = cur.fetchone()
    cur.execute(f"""
        WITH {buyer_detail("detail", "until")},
        d AS (SELECT buyer_id, sum(pings) AS pings, sum(accepts) AS accepts, sum(timeouts) AS timeouts,
                     sum(errors) AS errors, sum(post_rejects) AS post_rejects, sum(wins) AS wins,
                     sum(posted) AS posted, sum(late_accepts) AS late_accepts
              FROM buyer_days WHERE day >= %(since_day)s AND day < %(detail_day)s GROUP BY buyer_id),
        s AS (SELECT buyer_id, count(*) AS sold,
                     count(*) FILTER (WHERE returned_at IS NOT NULL) AS returns,
                     coalesce(sum(price_cents) FILTER (WHERE returned_at IS NULL), 0) AS revenue
              FROM sales WHERE sold_at >= %(since)s AND sold_at < %(until)s GROUP BY buyer_id)
        SELECT b.id AS buyer_id, b.paused_until, b.pause_reason,
               coalesce(p.pings, 0) + coalesce(d.pings, 0) AS pings,
               coalesce(p.accepts, 0) + coalesce(d.accepts, 0) AS accepts,
               coalesce(p.timeouts, 0) + coalesce(d.timeouts, 0) AS timeouts,
               coalesce(p.errors, 0) + coalesce(d.errors, 0) AS errors,
               coalesce(w.wins, 0) + coalesce(d.wins, 0) AS wins, coalesce(s.sold, 0) AS sold,
               coalesce(p.post_rejects, 0) + coalesce(d.post_rejects, 0) AS post_rejects,
               coalesce(s.returns, 0) AS returns, coalesce(s.revenue, 0) AS revenue, p.p50, p.p95,
               coalesce(po.posted, 0) + coalesce(d.posted, 0) AS posted,
               coalesce(po.late_accepts, 0) + coalesce(d.late_accepts, 0) AS late_accepts
        FROM buyers b LEFT JOIN p ON p.buyer_id = b.id LEFT JOIN d ON d.buyer_id = b.id
        LEFT JOIN w ON w.buyer_id = b.id LEFT JOIN po ON po.buyer_id = b.id
        LEFT JOIN s ON s.buyer_id = b.id ORDER BY b.tier, b.id""", window)
    buyers = []
    for r in cur.fetchall():
        buyers.append({"buyer_id": r["buyer_id"],
                       **{k: int(r[k]) for k in ("pings", "accepts", "timeouts", "errors", "wins", "sold",
                                                 "post_rejects", "returns", "posted", "late_accepts")},
                       "revenue": as_number(r["revenue"]),
                       "p50_ping_ms": None if r["p50"] is None else round(r["p50"], 1),
                       "p95_ping_ms": None if r["p95"] is None else round(r["p95"], 1),
                       # Posts the buyer received and rejected, of those it received and kept.
                       "post_reject_rate": _rate(r["post_rejects"], r["post_rejects"] + r["sold"]),
                       "paused_until": r["paused_until"] if r["paused_until"]
                       and r["paused_until"] > now else None,
                       "pause_reason": r["pause_reason"] if r["paused_until"]
                       and r["paused_until"] > now else None})
    # Leads ended for the operator to look at: a post never confirmed, a lead the sweep
    # could not move (stuck_<status>).
    cur.execute("SELECT r AS reason, count(*) AS n FROM leads, unnest(reject_reasons) AS r"
                " WHERE status = 'unsold' AND created_at >= %(since)s AND created_at < %(until)s"
                " GROUP BY r", window)
    unresolved = {r["reason"]: r["n"] for r in cur.fetchall()}
    # Revenue is net of returns, overall and per buyer: a returned lead is never billed.
    return {"since": _iso(since), "until": _iso(until), "leads": leads,
            "revenue": as_number(totals["net"]), "returns": totals["returns"],
            "returned": as_number(totals["returned"]), "buyers": buyers, "unresolved": unresolved}


def _rate(part: int, whole: int) -> float | None:
    return None if not whole else round(part / whole, 3)


def billing(cur, month: str) -> dict:
    """Sales per buyer in a calendar month (UTC); unsold and returned leads are never billed.

    The month is cut at midnight UTC explicitly: a bare date would be read in the session's
    time zone, and two operators' sessions would bill the same sale in different months.
    """
    cur.execute("""
        SELECT buyer_id, count(*) AS leads, sum(price_cents) AS cents FROM sales
        WHERE returned_at IS NULL AND sold_at >= ((%(m)s || '-01')::timestamp AT TIME ZONE 'UTC')
          AND sold_at < (((%(m)s || '-01')::timestamp + interval '1 month') AT TIME ZONE 'UTC')
        GROUP BY buyer_id ORDER BY buyer_id""", {"m": month})
    found = cur.fetchall()
    rows = [{"buyer_id": r["buyer_id"], "leads": r["leads"], "amount": as_number(r["cents"])}
            for r in found]
    return {"month": month, "buyers": rows, "leads": sum(r["leads"] for r in found),
            "total": as_number(sum(r["cents"] for r in found))}


def return_lead(cur, lead_id, reason: str) -> bool:
    """A buyer's return: the sale stays on record, but is no longer billed."""
    cur.execute("UPDATE sales SET returned_at=clock_timestamp(), return_reason=%s"
                " WHERE lead_id=%s AND returned_at IS NULL", (reason, lead_id))
    if cur.rowcount:
        store.record_event(cur, lead_id, "returned", {"reason": reason})
    return cur.rowcount > 0
