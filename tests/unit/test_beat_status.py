"""A beat job is late when its last run is older than two periods plus the slack."""
from datetime import UTC, datetime, timedelta

from config import schedule
from pipeline.service import beat

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_a_job_never_run_is_late_and_a_recent_one_is_not():
    rows = {"sweep-stuck-leads": {"last_run_at": NOW - timedelta(seconds=49), "runs": 3}}
    jobs = beat.status(rows, NOW, slack_s=30)
    assert set(jobs) == set(schedule.BEAT_SCHEDULE)
    assert jobs["sweep-stuck-leads"]["late"] is False           # 49 s <= 2 x 10 s + 30 s
    assert jobs["sweep-stuck-leads"]["age_s"] == 49
    assert jobs["rerun-held-leads"]["late"] is True             # never ran, no beat ever came up
    rows["sweep-stuck-leads"]["last_run_at"] = NOW - timedelta(seconds=51)
    assert beat.status(rows, NOW, slack_s=30)["sweep-stuck-leads"]["late"] is True


def test_a_job_not_run_yet_is_late_only_once_it_waited_past_its_limit():
    rows = {"prune-history": {"last_run_at": None, "registered_at": NOW - timedelta(seconds=200)}}
    assert beat.status(rows, NOW, slack_s=30)["prune-history"]["late"] is False     # 200 s < 630 s
    rows["prune-history"]["registered_at"] = NOW - timedelta(seconds=700)
    assert beat.status(rows, NOW, slack_s=30)["prune-history"]["late"] is True


def test_every_beat_entry_expires_before_its_next_tick_and_is_marked_scheduled():
    for name, entry in schedule.BEAT_SCHEDULE.items():
        assert entry["options"]["expires"] < entry["schedule"], name
        assert entry["kwargs"] == {"scheduled": True}, name
        assert schedule.job_of(entry["task"]) == (name, float(entry["schedule"]))
