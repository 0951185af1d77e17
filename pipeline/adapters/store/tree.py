"""The tree in PostgreSQL: load (an upsert that keeps secrets), read back, and show."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from psycopg2.extras import Json

from pipeline.adapters.prepared import prepared
from pipeline.domain.buyers import Buyer
from pipeline.domain.money import as_number
from pipeline.domain.records import Network, Tier
from pipeline.domain.tree import MASKED_SECRET, InvalidTree


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
    forget_version(cur)
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


# ---- the tree snapshot ----------------------------------------------------------------------
# Each process keeps the tree it read last (network, active tiers, buyers) with the version it
# read it at; a transaction checks the version once (a statement that claims a lead carries it
# for free, else one tiny SELECT) and reads the tree again only when the version moved.

VERSION = "(SELECT version FROM tree_version WHERE id = 1)"   # a column for a claiming statement


@dataclass(frozen=True)
class Snapshot:
    version: uuid.UUID
    network: Network
    tiers: tuple[Tier, ...]
    buyers: tuple[Buyer, ...]
    by_id: dict[str, Buyer]


_snapshot: Snapshot | None = None


def saw_version(cur, version) -> None:
    """The tree version a statement of this transaction read (from the VERSION column)."""
    cur.tree_version = version


def forget_version(cur) -> None:
    """This transaction wrote the tree: its next read of the tree checks the version again."""
    cur.tree_version = None


def snapshot(cur) -> Snapshot:
    global _snapshot
    version = getattr(cur, "tree_version", None)
    if version is None:
        cur.execute(prepared(
            f"SELECT {VERSION} AS version"))
        version = cur.fetchone()["version"]
        saw_version(cur, version)
    found = _snapshot
    if found is None or found.version != version:
        found = _snapshot = _read_tree(cur)
        saw_version(cur, found.version)
    return found


def _read_tree(cur) -> Snapshot:
    # The version first: rows read after it are at least that new (a newer tree only means one
    # more read later).
    cur.execute(f"SELECT {VERSION} AS tree_version, * FROM network WHERE id=1")
    net = dict(cur.fetchone())
    version = net.pop("tree_version")
    cur.execute("SELECT tier, name, mode, active FROM tiers WHERE active ORDER BY tier")
    # Not the round-robin turn (last_winner): it moves with every lead, read by lock_rotation.
    tier_rows = tuple(Tier.from_row(r) for r in cur.fetchall())
    cur.execute("SELECT * FROM buyers ORDER BY tier, id")
    all_buyers = tuple(Buyer.from_row({**r, "integration": r["integration"] and json.loads(r["integration"])})
                       for r in cur.fetchall())
    return Snapshot(version, Network.from_row(net), tier_rows, all_buyers, {b.id: b for b in all_buyers})


def network(cur) -> Network:
    return snapshot(cur).network


def tiers(cur) -> list[Tier]:
    """The active tiers in order (their round-robin turn is read with lock_rotation)."""
    return list(snapshot(cur).tiers)


def buyers(cur, ids: list[str] | None = None) -> list[Buyer]:
    """Every buyer (by tier, then id), or those of ``ids`` that exist."""
    tree = snapshot(cur)
    if ids is None:
        return list(tree.buyers)
    return [tree.by_id[i] for i in dict.fromkeys(ids) if i in tree.by_id]


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
        "network": {"score_floor": net.score_floor, "bid_floor": as_number(net.bid_floor_cents),
                    "auction_timeout_s": net.auction_timeout_ms / 1000,
                    "max_cycles": net.max_cycles, "rerun_interval_s": net.rerun_interval_s,
                    "duplicate_window_h": net.duplicate_window_h,
                    "stuck_after_s": net.stuck_after_s, "max_redrives": net.max_redrives,
                    "max_post_buyers": net.max_post_buyers,
                    "post_reject_pause_rate": net.post_reject_pause_rate,
                    "post_reject_pause_min_posts": net.post_reject_pause_min_posts,
                    "post_reject_pause_h": net.post_reject_pause_h},
        "tiers": [{"tier": t["tier"], "name": t["name"], "mode": t["mode"], "active": t["active"]}
                  for t in tier_rows],
        "buyers": out_buyers,
    }
