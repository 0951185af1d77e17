"""GET /metrics: what leads, pings, posts, queues, beat jobs and tasks did, in Prometheus text."""
from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import queues, schedule
from pipeline import submit_lead
from pipeline.adapters import db, taskstats
from pipeline.entrypoints.http import create_app
from pipeline.service import intake
from tests.helpers import make_lead, one_taker, wait_for

pytestmark = pytest.mark.integration


def scrape(client) -> dict[tuple, float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for s in family.samples}


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


STAGES = ("pingtree.validate_lead", "pingtree.score_lead", "pingtree.deliver_post")


def runs(samples, task: str) -> float:
    return value(samples, "pingtree_task_runs_total", task=task, state="SUCCESS")


def written(client) -> dict[tuple, float]:
    """A scrape once the workers wrote the figures of the last test's tasks (each process
    writes them within taskstats.FLUSH_EVERY_S): the task runs no longer change."""
    until, last = time.monotonic() + 20, scrape(client)
    while True:
        time.sleep(taskstats.FLUSH_EVERY_S + 0.3)
        now = scrape(client)
        if all(runs(now, task) == runs(last, task) for task in STAGES) or time.monotonic() > until:
            return now
        last = now


def test_metrics_show_sold_leads_pings_posts_queues_beat_jobs_and_task_runs(clean_db, workers, buyers,
                                                                            monkeypatch):
    client = create_app().test_client()
    one_taker(buyers)
    before = written(client)
    sold = [submit_lead(make_lead("solar")) for _ in range(3)]
    for lead_id in sold:
        wait_for(lead_id, ("sold",))
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)     # this one's message is lost
    lost = submit_lead(make_lead("solar"))
    with db.transaction() as cur:
        cur.execute("UPDATE network SET stuck_after_s = 0")
    try:
        # Each worker process writes its task figures once a second (pipeline/adapters/taskstats.py).
        until = time.monotonic() + 10
        while True:
            after = scrape(client)
            if all(runs(after, task) - runs(before, task) >= 3 for task in STAGES) \
                    or time.monotonic() > until:
                break
            time.sleep(0.2)
    finally:
        with db.transaction() as cur:
            cur.execute("UPDATE leads SET status='rejected' WHERE id=%s", (lost,))

    assert value(after, "pingtree_window_leads", vertical="solar", status="sold") == 3
    assert value(after, "pingtree_window_leads", vertical="solar", status="received") == 1
    assert value(after, "pingtree_stuck_leads", status="received") == 1
    assert value(after, "pingtree_window_sales") == 3
    assert value(after, "pingtree_window_revenue_dollars") == 60.0
    assert value(after, "pingtree_window_pings", buyer="taker", kind="ping", outcome="accept") == 3
    assert value(after, "pingtree_window_post_attempts", buyer="taker", outcome="accepted") == 3
    assert value(after, "pingtree_ping_latency_seconds_bucket", buyer="taker", le="+Inf") == 3
    assert value(after, "pingtree_submit_to_sale_seconds_bucket", le="+Inf") == 3
    assert value(after, "pingtree_auction_duration_seconds_bucket", le="+Inf") == 3
    assert value(after, "pingtree_auction_close_lag_seconds_bucket", le="0.01") == 3   # closed in time
    for queue in queues.ALL:
        assert ("pingtree_queue_length", (("queue", queue),)) in after
    for job in schedule.BEAT_SCHEDULE:
        assert ("pingtree_beat_job_late", (("beat_job", job),)) in after
    for task in STAGES:
        assert runs(after, task) - runs(before, task) == 3, task
        took = {"task": task, "le": "+Inf"}
        assert value(after, "pingtree_task_duration_seconds_bucket", **took) >= 3
    assert value(after, "pingtree_source_up", source="postgresql") == 1
    assert value(after, "pingtree_source_up", source="redis") == 1


def test_every_metric_the_dashboard_and_alerts_use_is_served(clean_db):
    import re
    from pathlib import Path
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    text = create_app().test_client().get("/metrics").get_data(as_text=True)
    served = set(re.findall(r"^# TYPE (pingtree_[a-z0-9_]+) ", text, re.MULTILINE))   # with no data too
    for path in [*deploy.glob("grafana/*.json"), *deploy.glob("prometheus/*.yml")]:
        used = {re.sub(r"_(bucket|count|sum)$", "", name)
                for name in re.findall(r"\bpingtree_[a-z0-9_]*[a-z0-9]\b", path.read_text())}
        assert used and used <= served, (path.name, sorted(used - served))
