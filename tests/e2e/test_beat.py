"""Two beats at once run each job once per tick; a dead beat shows in /healthz/beat."""
from __future__ import annotations

import dataclasses
import math
import re
import time

import pytest

from config import schedule
from pipeline.adapters import db, jobs
from pipeline.devtools.stack import Stack
from pipeline.entrypoints.http import create_app
from pipeline.service import beat
from tasks import probes

pytestmark = pytest.mark.integration


def beats(tmp_path) -> Stack:
    command = "celery -A tasks beat -l INFO"
    return Stack(["beat-a", "beat-b"], log_dir=tmp_path, overrides={"beat-a": command, "beat-b": command})


def sent(tmp_path, job: str) -> dict[str, int]:
    """How many messages each beat sent for ``job`` (beat logs each send at INFO)."""
    return {name: len(re.findall(rf"Sending due task {job} ", (tmp_path / f"{name}.log").read_text()))
            for name in ("beat-a", "beat-b")}


def test_two_beats_run_each_job_once_per_tick_and_a_dead_beat_shows(clean_db, workers, tmp_path,
                                                                     monkeypatch):
    client = create_app().test_client()
    with db.transaction() as cur:
        before = {job: row["runs"] for job, row in jobs.all_jobs(cur).items()}
    stack = beats(tmp_path).start()
    try:
        started = time.time()
        # Until every job of a short period ran (the sweep's first tick is 10 s after start).
        short = [job for job, e in schedule.BEAT_SCHEDULE.items() if e["schedule"] <= schedule.SWEEP_EVERY_S]
        until = time.monotonic() + 40
        while time.monotonic() < until:
            assert not stack.dead(), (tmp_path / "beat-a.log").read_text()[-2000:]
            jobs_now = client.get("/healthz/beat").get_json()["jobs"]
            if all(jobs_now[job]["last_run_at"] for job in short):
                break
            time.sleep(0.5)
        answer = client.get("/healthz/beat")
        assert answer.status_code == 200, answer.get_json()      # the prune waits for its first tick
        time.sleep(2)
    finally:
        stack.stop()
    stopped = time.time() + 1       # a message sent just before the stop may still be running
    time.sleep(1)
    with db.transaction() as cur:
        runs = {job: row["runs"] - before.get(job, 0) for job, row in jobs.all_jobs(cur).items()}
    for job, entry in schedule.BEAT_SCHEDULE.items():
        period = entry["schedule"]
        ticks = math.floor(stopped / period) - math.floor(started / period) + 1
        assert runs.get(job, 0) <= ticks, (job, runs[job], ticks)
        if period < stopped - started - 2:          # its first tick came while the beats ran
            assert runs[job] >= 1, job
    # Both beats sent every rerun (a 5 s tick), yet each tick ran once.
    rerun = sent(tmp_path, "rerun-held-leads")
    assert min(rerun.values()) >= 2, rerun
    assert sum(rerun.values()) > runs["rerun-held-leads"], (rerun, runs)

    # Both beats are dead: the rerun, due every 5 s, is late two periods (+ slack) after its last run.
    monkeypatch.setattr(beat, "settings", dataclasses.replace(beat.settings, beat_late_s=0.5))
    until = time.monotonic() + 2 * schedule.RERUN_EVERY_S + 10
    while client.get("/healthz/beat").status_code == 200 and time.monotonic() < until:
        time.sleep(0.5)
    answer = client.get("/healthz/beat")
    assert answer.status_code == 503
    assert "rerun-held-leads" in answer.get_json()["late"]
    assert client.get("/healthz").status_code == 200      # intake is fine without beat
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


def test_a_consuming_worker_keeps_its_liveness_file_fresh(database, broker, tmp_path):
    alive = tmp_path / "alive"
    command = "celery -A tasks worker -Q rerun -n alive@%h -P solo -l WARNING --without-gossip"
    worker = Stack(["w"], log_dir=tmp_path, env={"PINGTREE_WORKER_ALIVE_FILE": str(alive)},
                   overrides={"w": command}).start()
    try:
        until = time.monotonic() + 30
        while not alive.exists() and time.monotonic() < until and not worker.dead():
            time.sleep(0.2)
        assert alive.exists(), (tmp_path / "w.log").read_text()[-2000:]
        first = alive.stat().st_mtime
        until = time.monotonic() + 3 * probes.TOUCH_EVERY_S
        while alive.stat().st_mtime == first and time.monotonic() < until:
            time.sleep(0.1)
        assert alive.stat().st_mtime > first       # touched again: the probe sees it fresh
    finally:
        worker.stop()
    assert not alive.exists()                      # a stopped worker is not alive
