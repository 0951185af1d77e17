"""Leads: intake rows, status moves with their timeline, consent, duplicates, suppressions."""
from __future__ import annotations

import json
import uuid
from datetime import datetime

from psycopg2.extras import Json, execute_values

from pipeline.adapters.prepared import prepared
from pipeline.adapters.store import tree
from pipeline.domain.instants import iso
from pipeline.domain.records import TERMINAL, Lead, Passing, Status  # noqa: F401  (TERMINAL: store.TERMINAL)


def insert_lead(cur, lead_id: uuid.UUID, lead: dict, payload_sha256: str,
                idempotency_key: str | None, idempotency_window_h: float = 24) -> tuple[uuid.UUID, bool, str]:
    """Store a received lead and its consent; on a known idempotency key return the first lead.

    The key is scoped to the lead's publisher and expires after ``idempotency_window_h``.
    Returns (lead id, created, payload hash of the stored lead).
    """
    if idempotency_key is not None:
        # The key row first: a concurrent twin waits here on the primary key, then sees ours.
        cur.execute(
            "INSERT INTO idempotency_keys (publisher_id, key, lead_id, payload_sha256)"
            " VALUES (%(p)s, %(k)s, %(id)s, %(h)s) ON CONFLICT (publisher_id, key) DO UPDATE"
            " SET lead_id=EXCLUDED.lead_id, payload_sha256=EXCLUDED.payload_sha256,"
            " created_at=clock_timestamp()"
            " WHERE idempotency_keys.created_at < clock_timestamp() - make_interval(secs => %(w)s)"
            " RETURNING lead_id",
            {"p": lead["source"]["publisher_id"], "k": idempotency_key, "id": lead_id,
             "h": payload_sha256, "w": idempotency_window_h * 3600})
        if cur.fetchone() is None:
            cur.execute("SELECT lead_id, payload_sha256 FROM idempotency_keys"
                        " WHERE publisher_id=%s AND key=%s",
                        (lead["source"]["publisher_id"], idempotency_key))
            row = cur.fetchone()
            return row["lead_id"], False, row["payload_sha256"]
    consent = lead["consent"]
    # One statement, the transaction's last (sent with its COMMIT): the lead, its consent record
    # and its first timeline entry.
    cur.commit_with(prepared(
        "WITH l AS (INSERT INTO leads (id, status, vertical, idempotency_key, payload_sha256, contact,"
        "   qualifiers, source, form) VALUES (%(id)s, %(status)s, %(vertical)s, %(key)s, %(sha)s,"
        "   %(contact)s, %(qualifiers)s, %(source)s, %(form)s) RETURNING id),"
        " c AS (INSERT INTO consents (lead_id, ip, consented_at, text, text_sha256, page_url, user_agent,"
        "   trustedform_cert_url, jornaya_leadid, phone_sha256, email_sha256)"
        "   SELECT id, %(ip)s::inet, %(at)s::timestamptz, %(text)s, %(text_sha256)s, %(page_url)s,"
        "   %(user_agent)s, %(trustedform)s, %(jornaya)s, %(phone_sha256)s, %(email_sha256)s FROM l)"
        " INSERT INTO lead_events (lead_id, status) SELECT id, %(status)s FROM l"),
        {"id": lead_id, "status": Status.RECEIVED, "vertical": lead["vertical"], "key": idempotency_key,
         "sha": payload_sha256,
         # JSON text, written as the literal Json() writes (its json.dumps, quoted as any str)
         # without an adapter object and its calls per value; EXECUTE reads it as jsonb.
         "contact": json.dumps(lead["contact"]), "qualifiers": json.dumps(lead["qualifiers"]),
         "source": json.dumps(lead["source"]), "form": json.dumps(lead.get("form")),
         "ip": consent["ip"], "at": consent["timestamp"], "text": consent["text"],
         "text_sha256": consent["text_sha256"], "page_url": consent.get("page_url"),
         "user_agent": consent.get("user_agent"), "trustedform": consent.get("trustedform_cert_url"),
         "jornaya": consent.get("jornaya_leadid"), "phone_sha256": consent.get("phone_sha256"),
         "email_sha256": consent.get("email_sha256")})
    return lead_id, True, payload_sha256


def record_event(cur, lead_id, status: Status | str, detail: dict | None = None) -> None:
    """A timeline entry apart from a move, inserted with its lead's row, locked as a foreign key
    would lock it (every other entry is inserted from the row its statement writes)."""
    cur.execute("INSERT INTO lead_events (lead_id, status, detail)"
                " SELECT id, %s, %s FROM leads WHERE id=%s FOR KEY SHARE",
                (status, Json(detail) if detail else None, lead_id))


def claim(cur, lead_id, from_status: Status | tuple[Status, ...]) -> Lead | None:
    """Lock the lead when it is in ``from_status``; None means another message got there first."""
    statuses = (from_status,) if isinstance(from_status, str) else from_status
    cur.execute(prepared(
        f"SELECT *, {tree.VERSION} AS tree_version FROM leads WHERE id=%s AND status = ANY(%s)"
        " FOR UPDATE"), (lead_id, list(statuses)))
    row = cur.fetchone()
    if row is None:
        return None
    tree.saw_version(cur, row["tree_version"])   # the stage's reads of the tree check this
    return Lead.from_row(row)


# What the validate and score stages read of the lead they claim (the rest of the Lead is
# Unread, and refuses any use: records.py): each column more in a claim's result is ~5 k
# instructions of the server's (its target list copied, described, projected and its value
# formatted) and a value parsed here.
VALIDATE_READS = "l.id, l.status, l.vertical, l.contact"          # validation.normalise()
SCORE_READS = VALIDATE_READS + ", l.qualifiers, l.source, l.form, l.facts"  # signals(), ping_view()


def claim_to_validate(cur, lead_id) -> tuple[Lead, dict | None, tuple[str | None, str | None]] | None:
    """Claim a received lead with its consent record (as consent() gives it) and take the
    validation locks of the contact hashes its consent record names (as lock_contact() takes
    them), in one statement: the lead's row first, then the locks. Returns the lead (its
    VALIDATE_READS columns), its consent and the (phone, email) hashes locked."""
    cur.execute(prepared(
        f"WITH l AS (SELECT {VALIDATE_READS}, {tree.VERSION} AS tree_version,"
        "   c.lead_id IS NOT NULL AS has_consent,"
        f"   {CONSENT_AS}, c.phone_sha256 AS locked_phone, c.email_sha256 AS locked_email"
        "   FROM leads l LEFT JOIN consents c ON c.lead_id = l.id"
        "   WHERE l.id=%s AND l.status = 'received' FOR UPDATE OF l)"
        " SELECT l.*, (SELECT count(pg_advisory_xact_lock(hashtextextended(l.vertical || ':' || h, 0)))"
        "   FROM (SELECT h FROM unnest(ARRAY[l.locked_phone, l.locked_email]) AS h"
        "         WHERE h IS NOT NULL ORDER BY h COLLATE \"C\") AS k) AS locks"
        " FROM l"), (lead_id,))
    row = cur.fetchone()
    if row is None:
        return None
    tree.saw_version(cur, row["tree_version"])
    return (Lead.from_row(row), consent_of_row(row) if row["has_consent"] else None,
            (row["locked_phone"], row["locked_email"]))


def claim_to_score(cur, lead_id, now: datetime) -> tuple[Lead, dict | None, dict] | None:
    """A validated lead claimed (its SCORE_READS columns) with its consent record, and the history
    its scoring signals need (the leads from the same consent IP in the day before ``now``), in
    one statement."""
    cur.execute(prepared(
        f"SELECT {SCORE_READS}, {tree.VERSION} AS tree_version, c.lead_id IS NOT NULL AS has_consent,"
        f" {CONSENT_AS},"
        " (SELECT count(*) FROM consents o WHERE o.ip = c.ip AND o.lead_id <> l.id"
        "   AND o.recorded_at > %(now)s::timestamptz - interval '24 hours') AS same_ip_24h"
        " FROM leads l LEFT JOIN consents c ON c.lead_id = l.id"
        " WHERE l.id=%(id)s AND l.status = 'validated' FOR UPDATE OF l"), {"id": lead_id, "now": now})
    row = cur.fetchone()
    if row is None:
        return None
    tree.saw_version(cur, row["tree_version"])
    return (Lead.from_row(row), consent_of_row(row) if row["has_consent"] else None,
            {"same_ip_24h": row["same_ip_24h"]})


def move(cur, lead_id, to_status: Status, detail: dict | None = None, *,
         passing: Passing | None = None, last: bool = False, **columns) -> None:
    """Set the lead's status (and any columns given) and write the timeline entry (the passed
    status's first, if any): one statement. ``last``: the transaction's last statement, sent
    with its COMMIT (the caller runs none after it)."""
    moved, values = moved_cte(lead_id, to_status, detail, passing, columns)
    statement = prepared(f"WITH {moved}")
    if last:
        cur.commit_with(statement, values)
    else:
        cur.execute(statement, values)


def moved_cte(lead_id, to_status: Status, detail: dict | None, passing: Passing | None,
           columns: dict, then: str = "", where: str = "") -> tuple[str, dict]:
    """The SQL of a move, to follow a WITH (after any CTE of the caller's), and its values;
    ``then``: CTEs of the caller's that read the moved lead's row (`moved`, its id); ``where``:
    a further condition of the move (none moves the lead, nor writes its timeline)."""
    events = ([(passing.status, passing.detail)] if passing else []) + [(to_status, detail)]
    columns = {**(passing.columns if passing else {}), **columns}
    sets = "".join(f", {k}=%(c_{k})s" for k in columns)
    values = {**{f"c_{k}": (Json(v) if isinstance(v, dict) else v) for k, v in columns.items()},
              "id": lead_id, "status": to_status, "statuses": [str(e[0]) for e in events],
              "details": [Json(e[1]) if e[1] else None for e in events]}
    return (f"moved AS (UPDATE leads SET status=%(status)s, status_at=clock_timestamp(){sets}"
            f" WHERE id=%(id)s{' AND ' + where if where else ''} RETURNING id)"
            f"{', ' + then if then else ''}"
            " INSERT INTO lead_events (lead_id, status, detail)"
            " SELECT moved.id, e.status, e.detail FROM moved,"
            " unnest(%(statuses)s::text[], %(details)s::jsonb[]) WITH ORDINALITY AS e(status, detail, n)"
            " ORDER BY e.n"), values


def sell(cur, lead_id, buyer_id: str, ping_id, price_cents: int) -> None:
    """Record the sale and move the lead to sold, in one statement; the primary key on
    sales.lead_id makes a second sale of one lead impossible.

    The sale is written from the lead's row (sales have no foreign keys: migration 089), its ping
    the one that row names as its award, which must be ``ping_id``. The lead moves to sold only
    with the sale this statement wrote; LookupError when it wrote none (the caller holds the
    delivering lead locked with that award: a bug)."""
    moved, values = moved_cte(lead_id, Status.SOLD, {"buyer_id": buyer_id, "price_cents": price_cents},
                              None, {}, where="EXISTS (SELECT FROM sale)")
    cur.execute(prepared(
        "WITH sale AS (INSERT INTO sales (lead_id, buyer_id, ping_id, price_cents)"
        " SELECT l.id, %(buyer)s, l.award_ping_id, %(price)s::bigint FROM leads l"
        " WHERE l.id = %(id)s AND l.award_ping_id = %(ping)s"
        " ON CONFLICT (lead_id) DO NOTHING RETURNING lead_id),"
        f" {moved}"), {**values, "buyer": buyer_id, "ping": ping_id, "price": price_cents})
    if cur.rowcount != 1:
        raise LookupError(f"lead {lead_id}: no sale written (its award is not ping {ping_id})")


# The consent record as the stages and buyers read it, each column prefixed (beside a lead's).
CONSENT_AS = ("host(c.ip) AS consent_ip, c.consented_at AS consent_consented_at, c.text AS consent_text,"
              " c.text_sha256 AS consent_text_sha256, c.page_url AS consent_page_url,"
              " c.user_agent AS consent_user_agent, c.trustedform_cert_url AS consent_trustedform_cert_url,"
              " c.jornaya_leadid AS consent_jornaya_leadid")


def consent_of_row(row) -> dict:
    out = {k.removeprefix("consent_"): v for k, v in row.items() if k.startswith("consent_")}
    out["timestamp"] = iso(out.pop("consented_at"))
    return out


def consent(cur, lead_id) -> dict | None:
    cur.execute(f"SELECT {CONSENT_AS} FROM consents c WHERE lead_id=%s", (lead_id,))
    row = cur.fetchone()
    return consent_of_row(row) if row else None


def lock_contact(cur, vertical: str, *hashes: str | None) -> None:
    """Serialise validation of leads sharing a phone or email (transaction-scoped locks), taken
    in one statement, in one order everywhere (the hashes' byte order, as claim_to_validate()
    takes them): no deadlock."""
    keys = [f"{vertical}:{value}" for value in sorted(h for h in hashes if h)]
    if keys:
        cur.execute(prepared(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(%s::text[]) AS k"),
                    (keys,))


def contact_history(cur, lead_id, vertical: str, phone_sha256: str | None, email_sha256: str | None,
                    window_h: int, keyed: tuple[str | None, str | None],
                    legacy: tuple[str | None, str | None]) -> tuple[str | None, bool]:
    """What validation asks of the contact, in one statement: an earlier lead in the same
    vertical with the same phone or email inside the window (none when the window is 0), and
    whether the phone or email is suppressed, by its keyed hash or by the plain SHA-256 an older
    version stored (still honoured)."""
    cur.execute(prepared(
        "SELECT CASE WHEN %(h)s > 0 THEN (SELECT id FROM leads WHERE vertical=%(v)s AND id <> %(id)s"
        "   AND created_at > clock_timestamp() - make_interval(hours => %(h)s)"
        "   AND status <> 'rejected' AND (phone_sha256 = %(p)s OR email_sha256 = %(e)s)"
        "   ORDER BY created_at LIMIT 1) END AS duplicate_of,"
        " EXISTS (SELECT 1 FROM suppressions"
        "   WHERE (kind='phone' AND (value_hmac=%(kp)s OR legacy_sha256=%(lp)s))"
        "   OR (kind='email' AND (value_hmac=%(ke)s OR legacy_sha256=%(le)s))) AS suppressed"),
        {"v": vertical, "id": lead_id, "h": window_h, "p": phone_sha256, "e": email_sha256,
         "kp": keyed[0], "lp": legacy[0], "ke": keyed[1], "le": legacy[1]})
    row = cur.fetchone()
    return (str(row["duplicate_of"]) if row["duplicate_of"] else None), row["suppressed"]


def add_suppressions(cur, entries: list[tuple[str, str, str | None]]) -> int:
    """(kind, keyed hash, reason) rows; returns how many were new."""
    if not entries:
        return 0
    rows = execute_values(cur, "INSERT INTO suppressions (kind, value_hmac, reason) VALUES %s"
                          " ON CONFLICT DO NOTHING RETURNING 1", entries, fetch=True)
    return len(rows)


def remove_suppression(cur, kind: str, value_hmac: str, legacy_sha256: str | None = None) -> bool:
    cur.execute("DELETE FROM suppressions WHERE kind=%s AND (value_hmac=%s OR legacy_sha256=%s)",
                (kind, value_hmac, legacy_sha256))
    return cur.rowcount > 0


def list_suppressions(cur, limit: int = 1000) -> list[dict]:
    cur.execute("SELECT kind, value_hmac, legacy_sha256, reason, created_at FROM suppressions"
                " ORDER BY created_at DESC LIMIT %s", (limit,))
    return [dict(r) for r in cur.fetchall()]
