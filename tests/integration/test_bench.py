"""`pingtree bench --smoke`: the harness starts, measures a handful of leads, writes valid JSON.

A benchmark is not a timed test: nothing here asserts speed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from config.settings import settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.bench]


def test_bench_smoke(tmp_path):
    out = tmp_path / "bench"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its own database on the tests' server, named after this run's test database (two runs on one
    # host do not drop each other's), and a private redis-server (where none is installed, another
    # db of the tests' Redis): the test fixtures' database is left alone.
    env.pop("PINGTREE_DATABASE_URL", None)
    parts = urlsplit(settings.database_url)
    bench_db = parts._replace(path=parts.path + "_bench_smoke").geturl()
    redis_args = [] if shutil.which("redis-server") else ["--redis-url", _other_db(settings.redis_url)]
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.devtools.bench", "--smoke", "--no-events-off", "--no-flower",
         "--database-url", bench_db, *redis_args, "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc = json.loads((out / "bench.json").read_text())
    assert doc["smoke"] is True
    assert set(doc["protocols"]) == {"native", "xml", "form", "json", "text"}   # CPU per ping, each
    assert doc["floor"]["latency_10"]["sold"] > 0
    events_on = doc["runs"]["events_on"]
    assert set(events_on) >= {"latency", "throughput", "deadline", "scaling", "cost"}
    latency = events_on["latency"]
    assert latency["measured"] > 0 and latency["sold"] > 0
    assert latency["p50_ms"] is not None and set(latency["stages"]) >= {"validate", "post"}
    assert events_on["throughput"]["10"]["sold"] > 0
    assert events_on["deadline"]["leads"] and events_on["deadline"]["max_close_after_deadline_ms"] is not None
    assert all(r["sold"] > 0 for r in events_on["scaling"].values())
    cost = events_on["cost"]["10"]
    assert cost["leads_in_window"] > 0
    assert "Targets" in run.stdout
    # The capacity model's inputs: CPU per process of each stage, rows and bytes by table group,
    # a Redis core and a PostgreSQL core measured; then the model, printed and in bench.json.
    assert set(cost["stage_cpu_ms_per_lead"]) >= {"api", "validate", "score", "ping", "award", "deliver"}
    assert sum(cost["stage_cpu_ms_per_lead"].values()) > 0
    assert set(cost["rows_per_lead"]) >= {"leads", "events"}
    assert set(cost["bytes_per_lead"]) >= {"leads", "events"}
    # The window's rows and task runs are read mid-stream, as PostgreSQL and the workers last sent
    # their counts (a backend at most once a second, up to 10 s late once idle; a worker once a
    # second): a smoke window of a second or two may hold none of them. Over the whole hold,
    # once the statistics caught up, every lead's row and task run is counted.
    whole = cost["whole_hold"]
    assert whole["leads"] > 0 and whole["rows_per_lead"]["leads"]["inserted"] >= 1.0
    assert round(whole["rows_per_lead"]["sales"]["inserted"] * whole["leads"]) >= cost["sold"]
    assert whole["task_runs_per_lead"]["pingtree.validate_lead"] == 1.0
    assert set(events_on["cost"]["idle_cpu_ms_per_s"]["stages"]) >= {"api", "ping"}
    if shutil.which("redis-benchmark"):
        assert doc["calibration"]["redis"]["commands_per_core_s"] > 0
    if shutil.which("pgbench"):
        assert doc["calibration"]["postgres"]["transactions_per_core_s"] > 0
    model = doc["capacity"]
    assert [d["workers"] for d in model["deployments"]] == [1, 2, 4, 8]
    assert all(d["leads_per_s"] > 0 and d["bottleneck"] for d in model["deployments"])
    assert "Capacity model" in run.stdout and "bottleneck" in run.stdout
    again = subprocess.run([sys.executable, "-m", "pipeline.devtools.bench.capacity", str(out / "bench.json"),
                            "--model-workers", "3", "--model-pg-cores", "2"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "PostgreSQL 2 cores" in again.stdout and "\n3  " in again.stdout


def _other_db(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db=13"
    return parts._replace(path="/13").geturl()
