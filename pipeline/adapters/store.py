"""The store: the SQL of the stages, intake and tree load, each taking a cursor (reports: views.py)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime

from psycopg2.extras import Json, execute_values

from pipeline.domain.buyers import Buyer, Usage, cap_reached, period_starts
from pipeline.domain.instants import iso
from pipeline.domain.modes import tier_mode
from pipeline.domain.money import as_number
from pipeline.domain.tree import MASKED_SECRET, InvalidTree

TERMINAL = ("sold", "rejected", "unsold")


# ---- the tree -----------------------------------------------------------------------------

def load_tree(cur, tree: dict) -> dict:
    """Upsert network, tiers and buyers; buyers left out are deactivated, never deleted.

    A secret given as the mask `tree show` prints keeps the stored secret; InvalidTree when
    there is none to keep (nothing is written then: the caller's transaction rolls back).
    """
    secrets = _kept_secrets(cur, [b["id"] for b in tree["buyers"] if b.get("secret") == MASKED_SECRET])
    credentials = _kept_credentials(cur, tree["buyers"])
    net = tree["network"]
    cur.execute(
        "UPDATE network SET score_floor=%(score_floor)s, bid_floor_cents=%(bid_floor_cents)s,"
        " auction_timeout_ms=%(auction_timeout_ms)s, max_cycles=%(max_cycles)s,"
        " rerun_interval_s=%(rerun_interval_s)s, duplicate_window_h=%(duplicate_window_h)s,"
        " stuck_after_s=%(stuck_after_s)s, max_redrives=%(max_redrives)s,"
        " max_post_buyers=%(max_post_buyers)s, post_reject_pause_rate=%(post_reject_pause_rate)s,"
        " post_reject_pause_min_posts=%(post_reject_pause_min_posts)s,"
        " post_reject_pause_h=%(post_reject_pause_h)s, updated_at=now() WHERE id=1", net)
    for tier in tree["tiers"]:
        cur.execute(
            "INSERT INTO tiers (tier, name, mode, active) VALUES (%(tier)s, %(name)s, %(mode)s, %(active)s)"
            " ON CONFLICT (tier) DO UPDATE SET name=EXCLUDED.name, mode=EXCLUDED.mode,"
            " active=EXCLUDED.active", {"active": True, **tier})
    cur.execute("UPDATE tiers SET active=false WHERE NOT (tier = ANY(%s))",
                ([t["tier"] for t in tree["tiers"]],))
    columns = ("id", "name", "active", "tier", "priority", "bid_cents", "verticals", "geo",
               "min_score", "rules", "schedule", "caps", "ping_url", "post_url", "pre_ping_url",
               "timeout_ms", "secret", "pre_ping_hashes", "integration", "credentials")
    changed = 0
    for buyer in tree["buyers"]:
        row = {k: buyer.get(k) for k in columns}
        row["secret"] = secrets.get(buyer["id"], row["secret"])
        row["credentials"] = {**(row["credentials"] or {}), **credentials.get(buyer["id"], {})}
        row["integration"] = None if row["integration"] is None else json.dumps(row["integration"])
        for k in ("geo", "rules", "schedule", "caps", "credentials"):
            row[k] = Json(row[k]) if row[k] is not None else None
        updates = ", ".join(f"{c}=EXCLUDED.{c}" for c in columns[1:])
        differs = " OR ".join(f"buyers.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in columns[1:])
        cur.execute(
            f"INSERT INTO buyers ({', '.join(columns)})"
            f" VALUES ({', '.join('%(' + c + ')s' for c in columns)})"
            f" ON CONFLICT (id) DO UPDATE SET {updates}, updated_at=now() WHERE {differs}", row)
        changed += cur.rowcount
    cur.execute("UPDATE buyers SET active=false, updated_at=now() WHERE active AND NOT (id = ANY(%s))",
                ([b["id"] for b in tree["buyers"]],))
    return {"buyers_changed": changed, "buyers_deactivated": cur.rowcount}


def _kept_secrets(cur, buyer_ids: list[str]) -> dict[str, str]:
    if not buyer_ids:
        return {}
    cur.execute("SELECT id, secret FROM buyers WHERE id = ANY(%s) AND secret IS NOT NULL", (buyer_ids,))
    stored = {r["id"]: r["secret"] for r in cur.fetchall()}
    missing = [i for i in buyer_ids if i not in stored]
    if missing:
        raise InvalidTree({"buyers": {i: {"secret": [f'"{MASKED_SECRET}" keeps the stored secret,'
                                                     " but none is stored for this buyer"]}
                                      for i in missing}})
    return stored


def _kept_credentials(cur, buyers: list[dict]) -> dict[str, dict[str, str]]:
    """Credentials given as the mask `tree show` prints keep the stored ones, by buyer and name."""
    masked = {b["id"]: [k for k, v in (b.get("credentials") or {}).items() if v == MASKED_SECRET]
              for b in buyers}
    masked = {i: names for i, names in masked.items() if names}
    if not masked:
        return {}
    cur.execute("SELECT id, credentials FROM buyers WHERE id = ANY(%s)", (list(masked),))
    stored = {r["id"]: r["credentials"] or {} for r in cur.fetchall()}
    kept = {i: {k: stored[i][k] for k in names if k in stored.get(i, {})}
            for i, names in masked.items()}
    missing = {n: [f'"{MASKED_SECRET}" keeps the stored credential {k!r}, but none is stored for this buyer'
                   for k in masked[b["id"]] if k not in kept[b["id"]]]
               for n, b in enumerate(buyers) if b["id"] in masked}
    missing = {n: problems for n, problems in missing.items() if problems}
    if missing:
        raise InvalidTree({"buyers": {n: {"credentials": problems} for n, problems in missing.items()}})
    return kept


def network(cur) -> dict:
    cur.execute("SELECT * FROM network WHERE id=1")
    return dict(cur.fetchone())


def tiers(cur) -> list[dict]:
    cur.execute("SELECT * FROM tiers WHERE active ORDER BY tier")
    return [dict(r) for r in cur.fetchall()]


def buyers(cur, ids: list[str] | None = None) -> list[Buyer]:
    if ids is None:
        cur.execute("SELECT * FROM buyers ORDER BY tier, id")
    else:
        cur.execute("SELECT * FROM buyers WHERE id = ANY(%s)", (list(ids),))
    return [Buyer.from_row({**r, "integration": r["integration"] and json.loads(r["integration"])})
            for r in cur.fetchall()]


def tree_document(cur) -> dict:
    """The loaded tree as a document (secrets masked), for `pingtree tree show`."""
    net = network(cur)
    cur.execute("SELECT * FROM tiers ORDER BY tier")
    tier_rows = cur.fetchall()
    out_buyers = []
    for b in buyers(cur):
        caps = {k: (as_number(v) if k.endswith("_budget") else v) for k, v in b.caps.items()}
        out_buyers.append({
            "id": b.id, "name": b.name, "active": b.active, "tier": b.tier, "priority": b.priority,
            "bid": as_number(b.bid_cents), "verticals": list(b.verticals), "geo": b.geo,
            "min_score": b.min_score, "rules": list(b.rules), "schedule": b.schedule, "caps": caps,
            "ping_url": b.ping_url, "post_url": b.post_url, "pre_ping_url": b.pre_ping_url,
            "timeout_ms": b.timeout_ms, "secret": MASKED_SECRET if b.secret else None,
            "pre_ping_hashes": b.pre_ping_hashes, "integration": b.integration,
            "credentials": dict.fromkeys(b.credentials, MASKED_SECRET)})
    return {
        "network": {"score_floor": net["score_floor"], "bid_floor": as_number(net["bid_floor_cents"]),
                    "auction_timeout_s": net["auction_timeout_ms"] / 1000,
                    "max_cycles": net["max_cycles"], "rerun_interval_s": net["rerun_interval_s"],
                    "duplicate_window_h": net["duplicate_window_h"],
                    "stuck_after_s": net["stuck_after_s"], "max_redrives": net["max_redrives"],
                    "max_post_buyers": net["max_post_buyers"],
                    "post_reject_pause_rate": net["post_reject_pause_rate"],
                    "post_reject_pause_min_posts": net["post_reject_pause_min_posts"],
                    "post_reject_pause_h": net["post_reject_pause_h"]},
        "tiers": [{"tier": t["tier"], "name": t["name"], "mode": t["mode"], "active": t["active"]}
                  for t in tier_rows],
        "buyers": out_buyers,
    }


# ---- leads --------------------------------------------------------------------------------

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
    cur.execute(
        "INSERT INTO leads (id, status, vertical, idempotency_key, payload_sha256, contact,"
        " qualifiers, source, form) VALUES (%s, 'received', %s, %s, %s, %s, %s, %s, %s)",
        (lead_id, lead["vertical"], idempotency_key, payload_sha256, Json(lead["contact"]),
         Json(lead["qualifiers"]), Json(lead["source"]), Json(lead.get("form"))))
    consent = lead["consent"]
    cur.execute(
        "INSERT INTO consents (lead_id, ip, consented_at, text, text_sha256, page_url, user_agent,"
        " trustedform_cert_url, jornaya_leadid, phone_sha256, email_sha256)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (lead_id, consent["ip"], consent["timestamp"], consent["text"], consent["text_sha256"],
         consent.get("page_url"), consent.get("user_agent"), consent.get("trustedform_cert_url"),
         consent.get("jornaya_leadid"), consent.get("phone_sha256"), consent.get("email_sha256")))
    record_event(cur, lead_id, "received")
    return lead_id, True, payload_sha256


def record_event(cur, lead_id, status: str, detail: dict | None = None) -> None:
    cur.execute("INSERT INTO lead_events (lead_id, status, detail) VALUES (%s, %s, %s)",
                (lead_id, status, Json(detail) if detail else None))


def claim(cur, lead_id, from_status: str | tuple[str, ...]) -> dict | None:
    """Lock the lead when it is in ``from_status``; None means another message got there first."""
    statuses = (from_status,) if isinstance(from_status, str) else from_status
    cur.execute("SELECT * FROM leads WHERE id=%s AND status = ANY(%s) FOR UPDATE",
                (lead_id, list(statuses)))
    row = cur.fetchone()
    return dict(row) if row else None


def move(cur, lead_id, to_status: str, detail: dict | None = None, **columns) -> None:
    """Set the lead's status (and any columns given) and write the timeline entry."""
    sets = ", ".join(f"{k}=%({k})s" for k in columns)
    values = {**{k: (Json(v) if isinstance(v, dict) else v) for k, v in columns.items()},
              "id": lead_id, "status": to_status}
    cur.execute(f"UPDATE leads SET status=%(status)s, status_at=clock_timestamp()"
                f"{', ' + sets if sets else ''} WHERE id=%(id)s", values)
    record_event(cur, lead_id, to_status, detail)


def consent(cur, lead_id) -> dict | None:
    cur.execute("SELECT host(ip) AS ip, consented_at, text, text_sha256, page_url, user_agent,"
                " trustedform_cert_url, jornaya_leadid FROM consents WHERE lead_id=%s", (lead_id,))
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(row)
    out["timestamp"] = iso(out.pop("consented_at"))
    return out


def duplicate_of(cur, lead_id, vertical: str, phone_sha256: str | None, email_sha256: str | None,
                 window_h: int):
    """An earlier lead in the same vertical with the same phone or email inside the window."""
    if window_h <= 0:
        return None
    cur.execute(
        "SELECT id FROM leads WHERE vertical=%(v)s AND id <> %(id)s"
        " AND created_at > clock_timestamp() - make_interval(hours => %(h)s)"
        " AND status <> 'rejected' AND (phone_sha256 = %(p)s OR email_sha256 = %(e)s)"
        " ORDER BY created_at LIMIT 1",
        {"v": vertical, "id": lead_id, "h": window_h, "p": phone_sha256, "e": email_sha256})
    row = cur.fetchone()
    return row["id"] if row else None


def lock_contact(cur, vertical: str, *hashes: str | None) -> None:
    """Serialise validation of leads sharing a phone or email (transaction-scoped locks)."""
    for value in sorted(h for h in hashes if h):   # one order everywhere: no deadlock
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{vertical}:{value}",))


def suppressed(cur, keyed: tuple[str | None, str | None], legacy: tuple[str | None, str | None]) -> bool:
    """Whether the phone or email is listed: by its keyed hash, or by the plain SHA-256 an
    older version stored (still honoured)."""
    cur.execute("SELECT 1 FROM suppressions WHERE (kind='phone' AND (value_hmac=%s OR legacy_sha256=%s))"
                " OR (kind='email' AND (value_hmac=%s OR legacy_sha256=%s)) LIMIT 1",
                (keyed[0], legacy[0], keyed[1], legacy[1]))
    return cur.fetchone() is not None


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


def score_context(cur, lead: dict, now: datetime) -> dict:
    """History the scoring signals need: leads from the same consent IP in the last day."""
    cur.execute("SELECT count(*) AS n FROM consents c JOIN consents me ON me.lead_id=%s"
                " WHERE c.ip = me.ip AND c.lead_id <> me.lead_id"
                " AND c.recorded_at > %s - interval '24 hours'", (lead["id"], now))
    return {"same_ip_24h": cur.fetchone()["n"]}


# ---- auctions -----------------------------------------------------------------------------

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


def open_auction(cur, *, lead_id, cycle: int, tier: int, mode: str, buyer_ids: list[str],
                 shard_count: int, deadline_at: datetime, skipped: list[dict],
                 timeout_ms: int | None = None) -> uuid.UUID:
    """``deadline_at`` holds until the first ping starts; then it is that moment + ``timeout_ms``."""
    auction_id = uuid.uuid4()
    cur.execute(
        "INSERT INTO auctions (id, lead_id, cycle, tier, mode, deadline_at, buyer_ids, shards, skipped,"
        " timeout_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (auction_id, lead_id, cycle, tier, mode, deadline_at, buyer_ids, shard_count, Json(skipped),
         timeout_ms))
    return auction_id


def auction(cur, auction_id, lock: bool = False) -> dict | None:
    cur.execute("SELECT * FROM auctions WHERE id=%s" + (" FOR UPDATE" if lock else ""), (auction_id,))
    row = cur.fetchone()
    return dict(row) if row else None


def claim_shard(cur, auction_id, shard: int) -> dict | None:
    """The shard's auction and lead (ping-facing fields only) if nobody pinged this shard yet."""
    cur.execute(
        "INSERT INTO auction_shards (auction_id, shard, started_at) VALUES (%s, %s, clock_timestamp())"
        " ON CONFLICT DO NOTHING RETURNING shard", (auction_id, shard))
    if cur.fetchone() is None:
        return None
    # The clock starts at the first ping: a ping task that waited in the queue takes nothing
    # from the buyers' time (an auction still open, not closed by the deadline close).
    cur.execute("UPDATE auctions SET first_ping_at=clock_timestamp(),"
                " deadline_at=clock_timestamp() + make_interval(secs => timeout_ms / 1000.0)"
                " WHERE id=%s AND first_ping_at IS NULL AND closed_at IS NULL"
                " AND timeout_ms IS NOT NULL", (auction_id,))
    cur.execute(
        "SELECT a.id AS auction_id, a.lead_id, a.cycle, a.tier, a.mode, a.deadline_at, a.closed_at,"
        " a.buyer_ids, a.shards, l.vertical, l.score, l.qualifiers, l.facts, l.source, l.phone_sha256,"
        " l.email_sha256 FROM auctions a JOIN leads l ON l.id = a.lead_id WHERE a.id=%s",
        (auction_id,))
    row = cur.fetchone()
    return dict(row) if row else None


def finish_shard(cur, auction_id, shard: int) -> None:
    cur.execute("UPDATE auction_shards SET finished_at=clock_timestamp() WHERE auction_id=%s"
                " AND shard=%s", (auction_id, shard))


def unfinished_shards(cur, auction: dict) -> int:
    """Shards of an auction whose answers are not all written yet (claimed or not)."""
    cur.execute("SELECT count(*) AS n FROM auction_shards WHERE auction_id=%s"
                " AND finished_at IS NOT NULL", (auction["id"],))
    return auction["shards"] - cur.fetchone()["n"]


def release_shard(cur, auction_id, shard: int) -> None:
    cur.execute("DELETE FROM auction_shards WHERE auction_id=%s AND shard=%s", (auction_id, shard))


def record_pings(cur, auction_id, rows: list[dict]) -> None:
    """Write answers; an accept that arrives after an auction tier closed is recorded as late."""
    if not rows:
        return
    cur.execute("SELECT closed_at, mode FROM auctions WHERE id=%s FOR SHARE", (auction_id,))
    auction = cur.fetchone()
    # Lateness is an auction's idea (one deadline for all); a waterfall step has its own budget.
    closed = auction["closed_at"] is not None and tier_mode(auction["mode"]).deadline_binds
    values = []
    for r in rows:
        outcome = "late" if closed and r["outcome"] == "accept" else r["outcome"]
        values.append((r["id"], auction_id, r["lead_id"], r["buyer_id"], r["tier"], r["cycle"],
                       r["rank"], r.get("kind", "ping"), outcome, r.get("bid_cents"), r.get("ref"),
                       r.get("latency_ms"), r.get("reason")))
    # A ping the close already wrote off as a time-out keeps that outcome unless it was a pass.
    execute_values(
        cur, "INSERT INTO pings (id, auction_id, lead_id, buyer_id, tier, cycle, rank, kind, outcome,"
        " bid_cents, ref, latency_ms, reason) VALUES %s ON CONFLICT (auction_id, buyer_id, kind)"
        " DO UPDATE SET outcome = CASE WHEN EXCLUDED.outcome = 'accept' THEN 'late'"
        " ELSE EXCLUDED.outcome END, bid_cents=EXCLUDED.bid_cents, latency_ms=EXCLUDED.latency_ms,"
        " reason=EXCLUDED.reason, ref=EXCLUDED.ref WHERE pings.reason = 'no_answer'", values)


def close_auction(cur, auction_id) -> dict | None:
    """Close once: the chord callback and the deadline close race here; one wins."""
    cur.execute("UPDATE auctions SET closed_at=clock_timestamp() WHERE id=%s AND closed_at IS NULL"
                " RETURNING *", (auction_id,))
    row = cur.fetchone()
    if row is None:
        return None
    row = dict(row)
    if tier_mode(row["mode"]).deadline_binds:
        # Buyers whose answer never arrived passed: written off so the record is complete. A
        # buyer whose shard (buyer i is in shard i % shards) never started was never pinged.
        cur.execute(
            "INSERT INTO pings (id, auction_id, lead_id, buyer_id, tier, cycle, rank, outcome, reason)"
            " SELECT md5(%(a)s::text || b.id)::uuid, %(a)s, %(lead)s, b.id, %(tier)s, %(cycle)s,"
            "   b.ord - 1, CASE WHEN s.shard IS NULL THEN 'not_pinged' ELSE 'timeout' END,"
            "   CASE WHEN s.shard IS NULL THEN 'never_pinged' ELSE 'no_answer' END"
            " FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS b(id, ord)"
            " LEFT JOIN auction_shards s ON s.auction_id = %(a)s"
            "   AND s.shard = (b.ord - 1) %% %(shards)s"
            " ON CONFLICT DO NOTHING",
            {"a": auction_id, "lead": row["lead_id"], "tier": row["tier"], "cycle": row["cycle"],
             "ids": row["buyer_ids"], "shards": row["shards"]})
    return row


def overdue_auctions(cur, grace_s: float, lost_after_s: float, limit: int) -> list:
    """Auction tiers past deadline + grace; one whose first ping never started only after
    ``lost_after_s`` (its ping message was lost, or is waiting in a backlog: its clock has not
    started). Walks are left alone: a waterfall outlives the pre-ping deadline, one step per
    buyer, and a walk that stops moving is the sweep's (its steps touch the lead)."""
    cur.execute("SELECT id FROM auctions WHERE closed_at IS NULL AND mode = 'auction'"
                " AND deadline_at < clock_timestamp() - make_interval(secs => CASE WHEN"
                "   first_ping_at IS NULL AND timeout_ms IS NOT NULL THEN %s ELSE %s END)"
                " ORDER BY deadline_at LIMIT %s", (lost_after_s, grace_s, limit))
    return [r["id"] for r in cur.fetchall()]


def auction_pings(cur, auction_id, kind: str = "ping") -> list[dict]:
    cur.execute("SELECT * FROM pings WHERE auction_id=%s AND kind=%s ORDER BY rank",
                (auction_id, kind))
    return [dict(r) for r in cur.fetchall()]


def mark_ping(cur, ping_id, outcome: str, reason: str | None) -> None:
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


# ---- delivery -----------------------------------------------------------------------------

def award_ping(cur, ping_id) -> dict:
    cur.execute("SELECT * FROM pings WHERE id=%s", (ping_id,))
    return dict(cur.fetchone())


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


def post_history(cur, lead_id, ping_id) -> list[dict]:
    cur.execute("SELECT * FROM post_attempts WHERE lead_id=%s AND ping_id=%s ORDER BY attempt",
                (lead_id, ping_id))
    return [dict(r) for r in cur.fetchall()]


def begin_post(cur, lead_id, ping_id, buyer_id: str, attempt: int, token, lease_s: float) -> None:
    """Write the attempt before it is sent; the unique open index allows one per lead."""
    cur.execute("INSERT INTO post_attempts (lead_id, ping_id, buyer_id, attempt, token, lease_until)"
                " VALUES (%s, %s, %s, %s, %s, clock_timestamp() + make_interval(secs => %s))",
                (lead_id, ping_id, buyer_id, attempt, token, lease_s))


def settle_attempt(cur, token, outcome: str, reason: str | None, http_status: int | None,
                   latency_ms: int | None) -> bool:
    """Settle our own open attempt; False when its lease was taken over (the answer is late)."""
    cur.execute("UPDATE post_attempts SET outcome=%s, reason=%s, http_status=%s, latency_ms=%s,"
                " settled_at=clock_timestamp() WHERE token=%s AND outcome IS NULL",
                (outcome, reason, http_status, latency_ms, token))
    if cur.rowcount:
        return True
    cur.execute("UPDATE post_attempts SET late_outcome=%s, late_reason=%s, http_status=%s,"
                " latency_ms=%s WHERE token=%s", (outcome, reason, http_status, latency_ms, token))
    return False


def posted_buyers(cur, lead_id) -> set[str]:
    """Every buyer this lead's post was sent to (in any cycle)."""
    cur.execute("SELECT DISTINCT buyer_id FROM post_attempts WHERE lead_id=%s", (lead_id,))
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
    return row and row["paused_until"]


def record_sale(cur, lead_id, buyer_id: str, ping_id, price_cents: int) -> bool:
    """The sale; the primary key on lead_id makes a second sale of one lead impossible."""
    cur.execute("INSERT INTO sales (lead_id, buyer_id, ping_id, price_cents) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (lead_id) DO NOTHING RETURNING lead_id",
                (lead_id, buyer_id, ping_id, price_cents))
    return cur.fetchone() is not None


# ---- cycles and the sweep -----------------------------------------------------------------

def due_held(cur, now: datetime, limit: int = 500) -> list[dict]:
    cur.execute("SELECT * FROM leads WHERE status='held' AND next_run_at <= %s"
                " ORDER BY next_run_at LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit))
    return [dict(r) for r in cur.fetchall()]


def stuck(cur, stuck_after_s: int, limit: int = 500) -> list[dict]:
    cur.execute(
        "SELECT l.id, l.status, l.auction_id, l.award_ping_id, l.redrives, a.deadline_at, a.closed_at,"
        " a.mode FROM leads l LEFT JOIN auctions a ON a.id = l.auction_id"
        " WHERE l.status IN ('received', 'validated', 'scored', 'auctioning', 'delivering')"
        " AND l.status_at < clock_timestamp() - make_interval(secs => %s)"
        # A post in flight is never re-driven: it is settled, or its lease runs out first.
        " AND NOT EXISTS (SELECT 1 FROM post_attempts p WHERE p.lead_id = l.id"
        "   AND p.outcome IS NULL AND p.lease_until > clock_timestamp())"
        " ORDER BY l.status_at LIMIT %s FOR UPDATE OF l SKIP LOCKED", (stuck_after_s, limit))
    return [dict(r) for r in cur.fetchall()]


def count_redrive(cur, lead_id) -> int:
    """One more re-drive by the sweep (it also restarts the stuck clock); returns the count."""
    cur.execute("UPDATE leads SET redrives = redrives + 1, status_at=clock_timestamp() WHERE id=%s"
                " RETURNING redrives", (lead_id,))
    return cur.fetchone()["redrives"]


def touch(cur, lead_id) -> None:
    """Restart the stuck clock of a re-driven lead so the next sweep gives it time."""
    cur.execute("UPDATE leads SET status_at=clock_timestamp() WHERE id=%s", (lead_id,))


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
                " FROM pings WHERE lead_id=%s ORDER BY at, rank", (lead_id,))
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
