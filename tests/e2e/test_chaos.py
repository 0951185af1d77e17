"""`pingtree chaos --smoke`: the short seeded fault run passes its invariants (`make chaos-smoke`,
which CI runs beside `make test`; the long one is `make chaos`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
ROOT = Path(__file__).resolve().parents[2]


def test_the_short_chaos_run_keeps_every_invariant(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("PINGTREE_DATABASE_URL", "PINGTREE_REDIS_URL"):
        env.pop(name, None)                   # its own PostgreSQL cluster and redis-server
    run = subprocess.run([sys.executable, "-m", "pipeline.devtools.chaos", "--smoke", "--seed", "7",
                          "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((tmp_path / "chaos-7.json").read_text())
    assert result["accepted"] == result["stored"] == result["terminal"] > 0
    assert {"kill:worker", "redis_restart", "pg_crash", "duplicate_5s"} == set(result["faults"])
    assert not result["double_accepted"] and not result["second_buyer_early"]
    assert not result["pii_hits"] and not result["crashes"]
