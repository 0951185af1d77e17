"""What /metrics reads at scrape: recent figures from PostgreSQL, queue lengths from Redis.

Everything over a recent window (the BRIN indexes of migration 071 keep it off old history),
except what is open now: leads in a non-terminal status, held leads due, stuck leads.
"""
from __future__ import annotations

from psycopg2 import sql

from pipeline.adapters.store.cycles import PARTIAL_INDEX_SCAN, POST_IN_FLIGHT

# Upper bounds (seconds) of the histograms computed at scrape.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SALE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def _histogram(expr: str, buckets: tuple[float, ...], name: str = "h") -> sql.Composable:
    """count(*) FILTER (WHERE expr <= le) for each bucket, then the count and the sum."""
    parts = [sql.SQL("count(*) FILTER (WHERE {} <= {}) AS {}").format(
        sql.SQL(expr), sql.Literal(le), sql.Identifier(f"{name}_{i}")) for i, le in enumerate(buckets)]
    parts.append(sql.SQL("count({e}) AS {n}, coalesce(sum({e}), 0) AS {s}").format(
        e=sql.SQL(expr), n=sql.Identifier(f"{name}_n"), s=sql.Identifier(f"{name}_sum")))
    return sql.SQL(", ").join(parts)


def _buckets(row: dict, buckets: tuple[float, ...], name: str = "h") -> dict:
    counts = [(str(le), row[f"{name}_{i}"]) for i, le in enumerate(buckets)]
    return {"buckets": [*counts, ("+Inf", row[f"{name}_n"])], "sum": float(row[f"{name}_sum"])}


def leads(cur, window_s: float) -> list[dict]:
    cur.execute("SELECT vertical, status, count(*) AS n FROM leads"
                " WHERE created_at > clock_timestamp() - make_interval(secs => %s)"
                " GROUP BY vertical, status", (window_s,))
    return [dict(r) for r in cur.fetchall()]


def open_leads(cur, stuck_after_s: float) -> dict:
    """Leads in a non-terminal status, by status: how many, how many are stuck (what the sweep
    would re-drive: idle past ``stuck_after_s``, no post on the wire under a live lease), and
    how many held leads are due."""
    # Each of the two partial indexes read on its own (a lead is never both in flight and held):
    # `in_flight OR held` read the whole table at every scrape (42 ms after 15,000 leads).
    cur.execute(PARTIAL_INDEX_SCAN + f"""
        SELECT status, count(*) AS n,
               count(*) FILTER (WHERE status <> 'held'
                   AND status_at < clock_timestamp() - make_interval(secs => %(stuck)s)
                   AND NOT {POST_IN_FLIGHT}) AS stuck,
               count(*) FILTER (WHERE status = 'held' AND next_run_at <= clock_timestamp()) AS due
        FROM (SELECT id, status, status_at, next_run_at FROM leads WHERE in_flight
              UNION ALL SELECT id, status, status_at, next_run_at FROM leads WHERE held) l
        GROUP BY status""",
                {"stuck": stuck_after_s})
    return {r["status"]: dict(r) for r in cur.fetchall()}


def sales(cur, window_s: float) -> dict:
    cur.execute(sql.SQL("""
        SELECT count(*) FILTER (WHERE s.returned_at IS NULL) AS sold,
               coalesce(sum(s.price_cents) FILTER (WHERE s.returned_at IS NULL), 0) AS cents, {}
        FROM sales s JOIN leads l ON l.id = s.lead_id
        WHERE s.sold_at > clock_timestamp() - make_interval(secs => %s)""").format(
        _histogram("extract(epoch FROM s.sold_at - l.created_at)", SALE_BUCKETS)), (window_s,))
    row = cur.fetchone()
    return {"sold": row["sold"], "cents": row["cents"], "submit_to_sale": _buckets(row, SALE_BUCKETS)}


def pings(cur, window_s: float) -> dict:
    cur.execute("SELECT buyer_id, kind, outcome, count(*) AS n FROM pings"
                " WHERE at > clock_timestamp() - make_interval(secs => %s)"
                " GROUP BY buyer_id, kind, outcome", (window_s,))
    counts = [dict(r) for r in cur.fetchall()]
    # Latency of answers only: a ping never sent or never answered has no latency to show.
    cur.execute(sql.SQL("""
        SELECT buyer_id, {} FROM pings
        WHERE at > clock_timestamp() - make_interval(secs => %s) AND kind = 'ping'
          AND latency_ms IS NOT NULL AND outcome <> 'not_pinged' AND reason IS DISTINCT FROM 'no_answer'
        GROUP BY buyer_id""").format(_histogram("latency_ms / 1000.0", LATENCY_BUCKETS)), (window_s,))
    latency = {r["buyer_id"]: _buckets(r, LATENCY_BUCKETS) for r in cur.fetchall()}
    return {"counts": counts, "latency": latency}


def auctions(cur, window_s: float) -> dict:
    """How long closed auctions took, and how far past its deadline each one closed (0 if before)."""
    cur.execute(sql.SQL("SELECT {}, {} FROM auctions WHERE closed_at IS NOT NULL"
                        " AND started_at > clock_timestamp() - make_interval(secs => %s)").format(
        _histogram("extract(epoch FROM closed_at - started_at)", LATENCY_BUCKETS, "took"),
        _histogram("greatest(0, extract(epoch FROM closed_at - deadline_at))", LATENCY_BUCKETS, "lag")),
        (window_s,))
    row = cur.fetchone()
    return {"duration": _buckets(row, LATENCY_BUCKETS, "took"),
            "close_lag": _buckets(row, LATENCY_BUCKETS, "lag")}


def posts(cur, window_s: float) -> list[dict]:
    cur.execute("SELECT buyer_id, coalesce(outcome, 'in_flight') AS outcome, count(*) AS n FROM post_attempts"
                " WHERE at > clock_timestamp() - make_interval(secs => %s)"
                " GROUP BY buyer_id, outcome", (window_s,))
    return [dict(r) for r in cur.fetchall()]


def queue_lengths(client, queues: tuple[str, ...]) -> dict[str, int]:
    pipe = client.pipeline(transaction=False)
    for name in queues:
        pipe.llen(name)
    return dict(zip(queues, pipe.execute(), strict=True))
