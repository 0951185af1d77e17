"""Delivery: single-flight post attempts under a lease, their settling, and the sale."""
from __future__ import annotations

from dataclasses import fields

from pipeline.adapters.db import prepared
from pipeline.adapters.store import tree
from pipeline.adapters.store.leads import CONSENT_AS, consent_of_row
from pipeline.adapters.store.tree import forget_version
from pipeline.domain.records import Lead, Ping

# The awarded ping's columns, each prefixed (beside the lead's own).
PING_FIELDS = tuple(f.name for f in fields(Ping))
PING_AS = ", ".join(f"p.{name} AS ping_{name}" for name in PING_FIELDS)


def claim_post(cur, lead_id) -> tuple[Lead, dict | None, Ping, dict | None, list[dict]] | None:
    """What the deliver stage reads, in one statement: the lead claimed in delivering (as
    claim_with_consent() gives it, with its consent record); the awarded ping; the lead's post in
    flight, if any ({id, live}: live while its lease holds); the attempts so far to that ping
    ({id, attempt, outcome}, in order). None when the lead is not delivering."""
    cur.execute(prepared(
        f"SELECT l.*, {tree.VERSION} AS tree_version, c.lead_id IS NOT NULL AS has_consent,"
        f" {CONSENT_AS}, {PING_AS},"
        " (SELECT json_build_object('id', a.id, 'live', a.lease_until > clock_timestamp())"
        "   FROM post_attempts a WHERE a.lead_id=l.id AND a.outcome IS NULL) AS post_in_flight,"
        " (SELECT coalesce(json_agg(json_build_object('id', a.id, 'attempt', a.attempt,"
        "   'outcome', a.outcome) ORDER BY a.attempt), '[]')"
        "   FROM post_attempts a WHERE a.lead_id=l.id AND a.ping_id=l.award_ping_id) AS post_history"
        " FROM leads l LEFT JOIN consents c ON c.lead_id = l.id LEFT JOIN pings p ON p.id = l.award_ping_id"
        " WHERE l.id=%s AND l.status = 'delivering' FOR UPDATE OF l"), (lead_id,))
    row = cur.fetchone()
    if row is None:
        return None
    tree.saw_version(cur, row["tree_version"])
    ping = Ping.from_row({name: row[f"ping_{name}"] for name in PING_FIELDS})
    return (Lead.from_row(row), consent_of_row(row) if row["has_consent"] else None, ping,
            row["post_in_flight"], row["post_history"])


def open_post(cur, lead_id) -> dict | None:
    """The lead's post in flight, if any, with ``live`` true while its lease holds."""
    cur.execute("SELECT *, lease_until > clock_timestamp() AS live FROM post_attempts"
                " WHERE lead_id=%s AND outcome IS NULL", (lead_id,))
    row = cur.fetchone()
    return dict(row) if row else None


def expire_post(cur, attempt_id: int) -> None:
    """A post whose lease ran out without an answer (its worker died): outcome unknown."""
    cur.execute("UPDATE post_attempts SET outcome='unknown', reason='lease_expired',"
                " settled_at=clock_timestamp() WHERE id=%s AND outcome IS NULL", (attempt_id,))


def begin_post(cur, lead_id, ping_id, buyer_id: str, attempt: int, token, lease_s: float) -> bool:
    """Write the attempt before it is sent; the unique open index allows one per lead. The
    lead's stuck clock restarts in the same statement (a post in flight is not stuck).

    False when another attempt is open: a deliverer that waited on the lead's lock read the
    attempts as they were before that lock was released (one statement, one snapshot), so the
    index, not that read, has the last word on single flight."""
    cur.execute(prepared(
        "WITH touched AS (UPDATE leads SET status_at=clock_timestamp() WHERE id=%(lead)s)"
        " INSERT INTO post_attempts (lead_id, ping_id, buyer_id, attempt, token, lease_until)"
        " VALUES (%(lead)s, %(ping)s, %(buyer)s, %(attempt)s, %(token)s,"
        " clock_timestamp() + make_interval(secs => %(lease)s))"
        " ON CONFLICT (lead_id) WHERE outcome IS NULL DO NOTHING RETURNING id"),
                {"lead": lead_id, "ping": ping_id, "buyer": buyer_id, "attempt": attempt,
                 "token": token, "lease": lease_s})
    return cur.fetchone() is not None


def settle_attempt(cur, token, outcome: str, reason: str | None, http_status: int | None,
                   latency_ms: int | None) -> bool:
    """Settle our own open attempt; False when its lease was taken over (the answer is late)."""
    cur.execute(prepared(
        "UPDATE post_attempts SET outcome=%s, reason=%s, http_status=%s, latency_ms=%s,"
        " settled_at=clock_timestamp() WHERE token=%s AND outcome IS NULL"),
                (outcome, reason, http_status, latency_ms, token))
    if cur.rowcount:
        return True
    cur.execute(prepared(
        "UPDATE post_attempts SET late_outcome=%s, late_reason=%s, http_status=%s,"
        " latency_ms=%s WHERE token=%s"), (outcome, reason, http_status, latency_ms, token))
    return False


def posted_buyers(cur, lead_id) -> set[str]:
    """Every buyer this lead's post was sent to (in any cycle)."""
    cur.execute(prepared(
        "SELECT DISTINCT buyer_id FROM post_attempts WHERE lead_id=%s"), (lead_id,))
    return {r["buyer_id"] for r in cur.fetchall()}


def pause_if_rejecting(cur, buyer_id: str):
    """Pause a buyer whose share of rejected posts (post_rejected pings against sales) in the
    network's window reached its threshold; the pause lasts the window. Its new end, or None."""
    cur.execute(
        "WITH net AS (SELECT post_reject_pause_rate AS rate, post_reject_pause_min_posts AS min_posts,"
        "                    make_interval(hours => post_reject_pause_h) AS span, post_reject_pause_h AS h"
        "             FROM network WHERE id = 1),"
        " r AS (SELECT count(*) AS n FROM pings, net WHERE buyer_id = %(b)s AND outcome = 'post_rejected'"
        "       AND at > now() - net.span),"
        " s AS (SELECT count(*) AS n FROM sales, net WHERE buyer_id = %(b)s AND sold_at > now() - net.span)"
        " UPDATE buyers SET paused_until = now() + net.span,"
        "   pause_reason = format('post_rejects %%s of %%s in %%sh', r.n, r.n + s.n, net.h)"
        " FROM net, r, s WHERE buyers.id = %(b)s AND r.n + s.n >= net.min_posts"
        "   AND r.n >= net.rate * (r.n + s.n) RETURNING paused_until", {"b": buyer_id})
    row = cur.fetchone()
    if row:
        forget_version(cur)        # the rest of this transaction sees the buyer paused
    return row and row["paused_until"]
