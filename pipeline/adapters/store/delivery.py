"""Delivery: single-flight post attempts under a lease, their settling, and the sale."""
from __future__ import annotations

from dataclasses import fields

from pipeline.adapters.prepared import prepared
from pipeline.adapters.store import tree
from pipeline.adapters.store.leads import CONSENT_AS, consent_of_row
from pipeline.adapters.store.tree import forget_version
from pipeline.domain.records import Lead, LeadStanding, Ping, Status

# The awarded ping's columns, each prefixed (beside the lead's own).
PING_FIELDS = tuple(f.name for f in fields(Ping))
PING_AS = ", ".join(f"p.{name} AS ping_{name}" for name in PING_FIELDS)


# What the deliver stage reads of the lead it claims (the rest of the Lead is Unread: records.py):
# what a post may carry (the native body, an integration's POST_NAMES), and where the lead
# stands for the award when the post is given up (a leaner claim: see leads.VALIDATE_READS).
POST_READS = ("l.id, l.status, l.vertical, l.score, l.cycle, l.contact, l.qualifiers, l.source,"
              " l.form, l.facts, l.signals, l.created_at, l.auction_id, l.award_ping_id")


_CLAIM_POST = prepared(
    f"WITH l AS (SELECT {POST_READS}, {tree.VERSION} AS tree_version,"
    f"   c.lead_id IS NOT NULL AS has_consent, {CONSENT_AS}, {PING_AS},"
    "   (SELECT json_build_object('id', a.id, 'live', a.lease_until > clock_timestamp())"
    "     FROM post_attempts a WHERE a.lead_id=l.id AND a.outcome IS NULL) AS post_in_flight,"
    "   (SELECT coalesce(json_agg(json_build_object('id', a.id, 'attempt', a.attempt,"
    "     'outcome', a.outcome) ORDER BY a.attempt), '[]')"
    "     FROM post_attempts a WHERE a.lead_id=l.id AND a.ping_id=l.award_ping_id) AS post_history"
    "   FROM leads l LEFT JOIN consents c ON c.lead_id = l.id"
    "   LEFT JOIN pings p ON p.id = l.award_ping_id"
    "   WHERE l.id=%(id)s AND l.status = 'delivering' FOR UPDATE OF l),"
    " began AS (INSERT INTO post_attempts (lead_id, ping_id, buyer_id, attempt, token, lease_until)"
    "   SELECT l.id, l.award_ping_id, l.ping_buyer_id, json_array_length(l.post_history) + 1,"
    "   %(token)s::uuid, clock_timestamp() + make_interval(secs => %(lease)s::float8) FROM l"
    "   WHERE %(token)s::uuid IS NOT NULL AND l.post_in_flight IS NULL AND l.ping_id IS NOT NULL"
    "   AND json_array_length(l.post_history) < %(most)s::int"
    "   ON CONFLICT (lead_id) WHERE outcome IS NULL DO NOTHING RETURNING lead_id)"
    " SELECT l.*, EXISTS (SELECT FROM began) AS began FROM l")


def claim_post(cur, lead_id, token=None, lease_s: float = 0, most: int = 0
               ) -> tuple[Lead, dict | None, Ping, dict | None, list[dict], bool] | None:
    """What the deliver stage reads, in one statement: the lead claimed in delivering (its
    POST_READS columns, with its consent record as claim_to_validate() gives it); the awarded
    ping; the lead's post in flight, if any ({id, live}: live while its lease holds); the
    attempts so far to that ping ({id, attempt, outcome}, in order). None when the lead is not
    delivering.

    With a ``token``, the same statement begins the post when nothing is in flight and fewer than
    ``most`` attempts were made: the next attempt, as begin_post() writes it, its lease
    ``lease_s``. The last value says whether it began; not when another deliverer's attempt
    opened after this statement's snapshot (the one-open index has the last word, as in
    begin_post()).

    The lead's row is not written: its stuck clock does not restart with the post. The sweep
    leaves a lead alone while its post's lease holds (stuck()), and the lease outlasts the
    post's budget, so a post on the wire is never re-driven; once its lease has run out
    unanswered (its worker died) the lead is due as soon as its clock says it is idle, which it
    is. Settling restarts the clock on every path that leaves the lead in flight.

    A claim that waited on the lead's lock while another transaction re-awarded it (a rejected
    post, the next bid: delivering again, another award) reads the lead's new row, but
    PostgreSQL re-checks the join to pings with the ping row its snapshot found, the old award's:
    the award's ping comes back empty. The statement is then run again, under the lock it now
    holds: a new statement sees the new award's ping and its attempts."""
    for _ in range(3):
        cur.execute(_CLAIM_POST, {"id": lead_id, "token": token, "lease": lease_s, "most": most})
        row = cur.fetchone()
        if row is None:
            return None
        if row["ping_id"] is not None or row["award_ping_id"] is None:
            break
    else:
        raise LookupError(f"lead {lead_id}: its award {row['award_ping_id']} has no ping")
    tree.saw_version(cur, row["tree_version"])
    ping = Ping.from_row({name: row[f"ping_{name}"] for name in PING_FIELDS})
    return (Lead.from_row(row), consent_of_row(row) if row["has_consent"] else None, ping,
            row["post_in_flight"], row["post_history"], row["began"])


def open_post(cur, lead_id) -> dict | None:
    """The lead's post in flight, if any, with ``live`` true while its lease holds."""
    cur.execute("SELECT *, lease_until > clock_timestamp() AS live FROM post_attempts"
                " WHERE lead_id=%s AND outcome IS NULL", (lead_id,))
    row = cur.fetchone()
    return dict(row) if row else None


def expire_post(cur, lead_id, attempt_id: int) -> None:
    """A post whose lease ran out without an answer (its worker died): outcome unknown. Found
    as the lead's open attempt (post_attempts_one_open): no index on an attempt's id (089)."""
    cur.execute("UPDATE post_attempts SET outcome='unknown', reason='lease_expired',"
                " settled_at=clock_timestamp() WHERE lead_id=%s AND id=%s AND outcome IS NULL",
                (lead_id, attempt_id))


def begin_post(cur, lead_id, ping_id, buyer_id: str, attempt: int, token, lease_s: float) -> bool:
    """Write the attempt before it is sent; the unique open index allows one per lead. The
    lead's row is not written (see claim_post(): its lease keeps the sweep away).

    False when another attempt is open: a deliverer that waited on the lead's lock read the
    attempts as they were before that lock was released (one statement, one snapshot), so the
    index, not that read, has the last word on single flight."""
    cur.execute(prepared(
        "INSERT INTO post_attempts (lead_id, ping_id, buyer_id, attempt, token, lease_until)"
        " VALUES (%(lead)s, %(ping)s, %(buyer)s, %(attempt)s, %(token)s,"
        " clock_timestamp() + make_interval(secs => %(lease)s))"
        " ON CONFLICT (lead_id) WHERE outcome IS NULL DO NOTHING RETURNING id"),
                {"lead": lead_id, "ping": ping_id, "buyer": buyer_id, "attempt": attempt,
                 "token": token, "lease": lease_s})
    return cur.fetchone() is not None


def settle(cur, lead_id, token, outcome: str, reason: str | None, http_status: int | None,
           latency_ms: int | None, sale: tuple[str, object, int] | None = None
           ) -> tuple[LeadStanding, bool, bool] | None:
    """Lock the lead (in any status) and settle our own open attempt, in one statement; with
    ``sale`` (buyer id, ping id, price), an accepted post, also sell the lead in it when the
    attempt was ours and the lead still waits on that ping (the primary key on sales.lead_id
    makes a second sale impossible). Returns (where the lead stood as locked, before any sale:
    its status and award_ping_id; whether the attempt was ours, else its answer is
    recorded as late; whether it sold), or None when the lead is gone.

    Only those two of the lead's columns: a sale, the common answer, needs none of it, and
    its payload (contact, qualifiers, facts, ...: most of the row) would be formatted as JSON
    text by the server and parsed back here for nothing. A caller that acts on the whole lead
    reads it under the lock this statement took (claim()).

    The lead is locked first (the attempt's update waits on the lock), so the attempt is read
    as the lead's lock holders left it: one taken over meanwhile is not ours, and its answer is
    recorded as late."""
    buyer_id, ping_id, price = sale if sale is not None else (None, None, None)
    cur.execute(prepared(
        f"WITH l AS (SELECT id, status, award_ping_id, {tree.VERSION} AS tree_version"
        "   FROM leads WHERE id=%(id)s FOR UPDATE),"
        # One update of our attempt: still open, it is settled (ours); closed meanwhile (taken
        # over), the answer is recorded as late, and late_outcome, null until then, says which.
        # The CASEs read the attempt's newest version, as the lead's lock holders left it.
        " answer AS (UPDATE post_attempts SET"
        "   outcome=CASE WHEN outcome IS NULL THEN %(outcome)s ELSE outcome END,"
        "   reason=CASE WHEN outcome IS NULL THEN %(reason)s ELSE reason END,"
        "   settled_at=CASE WHEN outcome IS NULL THEN clock_timestamp() ELSE settled_at END,"
        "   late_outcome=CASE WHEN outcome IS NULL THEN late_outcome ELSE %(outcome)s END,"
        "   late_reason=CASE WHEN outcome IS NULL THEN late_reason ELSE %(reason)s END,"
        "   http_status=%(http)s, latency_ms=%(ms)s"
        "   WHERE token=%(token)s AND lead_id=%(id)s AND EXISTS (SELECT FROM l)"
        "   RETURNING late_outcome IS NULL AS settled),"
        " ours AS (SELECT FROM answer WHERE settled),"
        # The sale from its parent's row (no foreign keys: 089): the lead locked above, and the
        # ping that row names as its award.
        " sale AS (INSERT INTO sales (lead_id, buyer_id, ping_id, price_cents)"
        "   SELECT l.id, %(buyer)s::text, l.award_ping_id, %(price)s::bigint FROM l"
        "   WHERE l.status = 'delivering' AND l.award_ping_id = %(ping)s"
        "   AND EXISTS (SELECT FROM ours) ON CONFLICT (lead_id) DO NOTHING RETURNING lead_id),"
        " sold AS (UPDATE leads SET status='sold', status_at=clock_timestamp()"
        "   WHERE id = (SELECT lead_id FROM sale) RETURNING id),"
        " timeline AS (INSERT INTO lead_events (lead_id, status, detail)"
        "   SELECT id, 'sold',"
        "   jsonb_build_object('buyer_id', %(buyer)s::text, 'price_cents', %(price)s::bigint) FROM sold)"
        " SELECT l.status, l.award_ping_id, l.tree_version,"
        " EXISTS (SELECT FROM ours) AS settled_ours, EXISTS (SELECT FROM sold) AS sold_now FROM l"),
        {"id": lead_id, "token": token, "outcome": outcome, "reason": reason, "http": http_status,
         "ms": latency_ms, "buyer": buyer_id, "ping": ping_id, "price": price})
    row = cur.fetchone()
    if row is None:
        return None
    tree.saw_version(cur, row["tree_version"])
    return (LeadStanding(Status(row["status"]), row["award_ping_id"]),
            row["settled_ours"], row["sold_now"])


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
