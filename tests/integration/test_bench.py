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
    assert events_on["cost"]["10"]["leads_in_window"] > 0
    assert "Targets" in run.stdout


def _other_db(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db=13"
    return parts._replace(path="/13").geturl()
