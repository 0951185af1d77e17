"""GET /metrics: Prometheus text, computed at scrape from PostgreSQL and Redis.

Computed at scrape, so it is the same whichever API process answers and however many worker
processes there are. Business figures cover the last PINGTREE_METRICS_WINDOW_S seconds
(`pingtree_window_*` and the histograms); open leads, queues and beat jobs are as of now;
per-task runs and durations are counters that workers add to in Redis (tasks/signals.py).
"""
from __future__ import annotations

from datetime import UTC, datetime

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from config import queues
from config.settings import settings
from pipeline.adapters import db, jobs, metrics, store, taskstats
from pipeline.domain.money import as_number
from pipeline.service import beat

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = ("received", "validated", "scored", "auctioning", "delivering", "held")


def _gauge(name: str, doc: str, labels: list[str], rows) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(list(values), value)
    return family


def _window_histogram(name: str, doc: str, labels: list[str], rows) -> GaugeHistogramMetricFamily:
    family = GaugeHistogramMetricFamily(name, doc, labels=labels)
    for values, figures in rows:
        family.add_metric(list(values), figures["buckets"], figures["sum"])
    return family


def _database_families(window: float) -> list:
    with db.transaction() as cur:
        net = store.network(cur)
        leads = metrics.leads(cur, window)
        open_now = metrics.open_leads(cur, net.stuck_after_s)
        sales = metrics.sales(cur, window)
        pings = metrics.pings(cur, window)
        auctions = metrics.auctions(cur, window)
        posts = metrics.posts(cur, window)
        beat_rows = jobs.all_jobs(cur)
    beat_jobs = beat.status(beat_rows, datetime.now(UTC))
    return [
        _gauge("pingtree_window_leads", "Leads received in the window, by vertical and current status.",
               ["vertical", "status"], [((r["vertical"], r["status"]), r["n"]) for r in leads]),
        _gauge("pingtree_open_leads", "Leads in a non-terminal status now.", ["status"],
               [((s,), open_now.get(s, {}).get("n", 0)) for s in STATUSES]),
        _gauge("pingtree_stuck_leads", "Leads idle past stuck_after_s in a moving status, no post"
               " under a live lease (the sweep's work).",
               ["status"], [((s,), open_now.get(s, {}).get("stuck", 0)) for s in STATUSES if s != "held"]),
        _gauge("pingtree_held_leads_due", "Held leads whose next cycle is due now.", [],
               [((), open_now.get("held", {}).get("due", 0))]),
        _gauge("pingtree_window_sales", "Sales in the window (returns excluded).", [], [((), sales["sold"])]),
        _gauge("pingtree_window_revenue_dollars", "Revenue of the window's sales (returns excluded).", [],
               [((), as_number(sales["cents"]))]),
        _gauge("pingtree_window_pings", "Pings and pre-pings in the window by buyer, kind and outcome.",
               ["buyer", "kind", "outcome"],
               [((r["buyer_id"], r["kind"], r["outcome"]), r["n"]) for r in pings["counts"]]),
        _gauge("pingtree_window_post_attempts", "Post attempts in the window by buyer and outcome.",
               ["buyer", "outcome"], [((r["buyer_id"], r["outcome"]), r["n"]) for r in posts]),
        _window_histogram("pingtree_ping_latency_seconds", "Ping answer latency in the window, per buyer.",
                          ["buyer"], [((b,), h) for b, h in sorted(pings["latency"].items())]),
        _window_histogram("pingtree_auction_duration_seconds", "Open to close of the window's auctions.",
                          [], [((), auctions["duration"])]),
        _window_histogram("pingtree_auction_close_lag_seconds",
                          "How long after its deadline each auction closed (0 when before).",
                          [], [((), auctions["close_lag"])]),
        _window_histogram("pingtree_submit_to_sale_seconds", "Received to sold, for the window's sales.",
                          [], [((), sales["submit_to_sale"])]),
        _gauge("pingtree_beat_job_age_seconds", "Seconds since each beat job last ran (-1: never).",
               ["beat_job"],
               [((j,), s["age_s"] if s["age_s"] is not None else -1) for j, s in beat_jobs.items()]),
        _gauge("pingtree_beat_job_late", "1 when a beat job's last run is older than two periods plus "
               "PINGTREE_BEAT_LATE_S.", ["beat_job"], [((j,), int(s["late"])) for j, s in beat_jobs.items()]),
        _gauge("pingtree_metrics_window_seconds", "The window of the pingtree_window_* figures.", [],
               [((), window)]),
    ]


def _redis_families() -> list:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
    try:
        lengths = metrics.queue_lengths(client, queues.ALL)
        tasks = taskstats.read(client)
    finally:
        client.close()
    runs = CounterMetricFamily("pingtree_task_runs", "Task runs by task and final state (task signals).",
                               labels=["task", "state"])
    for (task, state), n in sorted(tasks["runs"].items()):
        runs.add_metric([task, state], n)
    took = HistogramMetricFamily("pingtree_task_duration_seconds", "Task run time (task signals).",
                                 labels=["task"])
    for task, buckets in sorted(tasks["buckets"].items()):
        took.add_metric([task], buckets, tasks["sums"].get(task, 0.0))
    return [_gauge("pingtree_queue_length", "Messages waiting in each queue.", ["queue"],
                   [((q,), n) for q, n in lengths.items()]), runs, took]


class _Scrape:
    def __init__(self, families: list):
        self.families = families

    def collect(self):
        yield from self.families


def render(window_s: float | None = None) -> bytes:
    """The exposition text; a source that does not answer is left out and shown as down."""
    window = window_s or settings.metrics_window_s
    families, up = [], []
    for source, read in (("postgresql", lambda: _database_families(window)), ("redis", _redis_families)):
        try:
            families += read()
            up.append(((source,), 1))
        except Exception:  # a scrape must answer even with a source down: that is what alerts see
            up.append(((source,), 0))
    families.append(_gauge("pingtree_source_up", "1 when the source answered this scrape.", ["source"], up))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(families))
    return generate_latest(registry)
