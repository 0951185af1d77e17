"""Publishers (form backends): their records, their hashed API keys, and what they are owed."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from pipeline.domain.money import as_number

KEY_PREFIX = "ptk_"


@dataclass(frozen=True)
class Publisher:
    id: str
    name: str
    active: bool
    verticals: tuple[str, ...]          # empty: every vertical
    payout_kind: str                    # "fixed" (payout_cents per sold lead) or "share"
    payout_cents: int | None
    share_bp: int | None                # basis points of the sale price: 6000 = 60 %

    @classmethod
    def from_row(cls, row: dict) -> Publisher:
        return cls(row["id"], row["name"], row["active"], tuple(row["verticals"] or ()),
                   row["payout_kind"], row["payout_cents"], row["share_bp"])

    def rule(self) -> dict:
        if self.payout_kind == "fixed":
            return {"kind": "fixed", "per_sold_lead": as_number(self.payout_cents)}
        return {"kind": "share", "percent": float(Decimal(self.share_bp) / 100)}


def key_sha256(key: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 is as good as a slow hash and can be looked up.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, the key): the id is public and part of the key; only the key's hash is stored."""
    key_id = secrets.token_hex(4)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


# ---- records ------------------------------------------------------------------------------

def get(cur, publisher_id: str) -> Publisher | None:
    cur.execute("SELECT * FROM publishers WHERE id=%s", (publisher_id,))
    row = cur.fetchone()
    return Publisher.from_row(row) if row else None


def save(cur, p: Publisher) -> None:
    cur.execute(
        "INSERT INTO publishers (id, name, active, verticals, payout_kind, payout_cents, share_bp)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET name=EXCLUDED.name,"
        " active=EXCLUDED.active, verticals=EXCLUDED.verticals, payout_kind=EXCLUDED.payout_kind,"
        " payout_cents=EXCLUDED.payout_cents, share_bp=EXCLUDED.share_bp, updated_at=now()",
        (p.id, p.name, p.active, list(p.verticals), p.payout_kind, p.payout_cents, p.share_bp))


def all_with_keys(cur) -> list[dict]:
    cur.execute("SELECT * FROM publishers ORDER BY id")
    out = [{"publisher": Publisher.from_row(r), "keys": []} for r in cur.fetchall()]
    cur.execute("SELECT id, publisher_id, created_at, revoked_at FROM api_keys ORDER BY created_at")
    by_id = {o["publisher"].id: o for o in out}
    for k in cur.fetchall():
        by_id[k["publisher_id"]]["keys"].append(dict(k))
    return out


# ---- keys ---------------------------------------------------------------------------------

def issue_key(cur, publisher_id: str) -> str:
    key_id, key = new_key()
    cur.execute("INSERT INTO api_keys (id, publisher_id, key_sha256) VALUES (%s, %s, %s)",
                (key_id, publisher_id, key_sha256(key)))
    return key


def revoke_key(cur, key_or_id: str) -> str | None:
    """Revoke by key id or by the key itself; returns the key id, None when nothing was live."""
    cur.execute("UPDATE api_keys SET revoked_at=now() WHERE revoked_at IS NULL"
                " AND (id=%s OR key_sha256=%s) RETURNING id", (key_or_id, key_sha256(key_or_id)))
    row = cur.fetchone()
    return row["id"] if row else None


def key_owner(cur, key: str) -> Publisher | None:
    """The publisher of a live key (active or not), None for an unknown or revoked key."""
    cur.execute("SELECT p.* FROM api_keys k JOIN publishers p ON p.id = k.publisher_id"
                " WHERE k.key_sha256=%s AND k.revoked_at IS NULL", (key_sha256(key),))
    row = cur.fetchone()
    return Publisher.from_row(row) if row else None


def any_live_key(cur) -> bool:
    cur.execute("SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL) AS live")
    return cur.fetchone()["live"]


def purge_idempotency_keys(cur, window_h: float, limit: int) -> int:
    """Delete up to ``limit`` idempotency keys older than the window; how many went."""
    cur.execute("DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
                " SELECT ctid FROM idempotency_keys"
                " WHERE created_at < clock_timestamp() - make_interval(secs => %s)"
                " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED))", (window_h * 3600, limit))
    return cur.rowcount


# ---- payouts ------------------------------------------------------------------------------

def owed_cents(p: Publisher, sold: int, revenue_cents: int) -> int:
    """A fixed price per sold lead, or a share of the month's revenue rounded down to the cent."""
    if p.payout_kind == "fixed":
        return p.payout_cents * sold
    return int((Decimal(revenue_cents) * p.share_bp / 10000).to_integral_value(ROUND_FLOOR))


def payouts(cur, month: str) -> dict:
    """What each publisher is owed for its leads sold in a calendar month (UTC), returns deducted.

    The sales are billing's: the same rows, the same month, the same exact cents.
    """
    cur.execute("""
        SELECT l.publisher_id, count(*) FILTER (WHERE s.returned_at IS NULL) AS sold,
               count(*) FILTER (WHERE s.returned_at IS NOT NULL) AS returned,
               coalesce(sum(s.price_cents) FILTER (WHERE s.returned_at IS NULL), 0) AS revenue
        FROM sales s JOIN leads l ON l.id = s.lead_id
        WHERE s.sold_at >= (%(m)s || '-01')::date
          AND s.sold_at < (%(m)s || '-01')::date + interval '1 month'
        GROUP BY l.publisher_id""", {"m": month})
    sales = {r["publisher_id"]: r for r in cur.fetchall()}
    cur.execute("SELECT * FROM publishers ORDER BY id")
    registered = [Publisher.from_row(r) for r in cur.fetchall()]
    rows, total = [], 0
    for p in registered:
        s = sales.pop(p.id, {"sold": 0, "returned": 0, "revenue": 0})
        owed = owed_cents(p, s["sold"], s["revenue"])
        total += owed
        rows.append({"publisher_id": p.id, "name": p.name, "rule": p.rule(), "sold": s["sold"],
                     "returned": s["returned"], "revenue": as_number(s["revenue"]),
                     "owed": as_number(owed)})
    # Sources with no publisher record (a body's publisher_id under an operator key): no rule.
    for publisher_id in sorted(sales, key=str):
        s = sales[publisher_id]
        rows.append({"publisher_id": publisher_id, "name": None, "rule": None, "sold": s["sold"],
                     "returned": s["returned"], "revenue": as_number(s["revenue"]), "owed": None})
    return {"month": month, "publishers": rows, "total_owed": as_number(total)}
