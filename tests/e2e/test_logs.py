"""Worker logs are JSON lines with the task's context, and never a lead's personal data."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from pipeline import submit_lead
from tests.e2e.test_personal_data import personal_values
from tests.helpers import WORKER_LOG, make_lead, one_taker, wait_for

pytestmark = pytest.mark.integration



def test_a_sold_lead_leaves_json_lines_with_its_id_and_none_of_its_personal_data(clean_db, workers, buyers):
    one_taker(buyers)
    token = uuid.uuid4().hex[:10]
    lead = make_lead(contact__first_name=f"Firstname{token}", contact__last_name=f"Lastname{token}",
                     contact__email=f"Log.{token}@Example.com", contact__address=f"{token} Ocean Drive")
    secrets = [*personal_values(lead), lead["contact"]["first_name"], token]
    offset = WORKER_LOG.stat().st_size
    lead_id = submit_lead(lead)
    assert wait_for(lead_id, ("sold",))["status"] == "sold"

    stages: dict[str, dict] = {}
    until = time.monotonic() + 10
    while "deliver_post" not in stages and time.monotonic() < until:
        time.sleep(0.1)
        with WORKER_LOG.open(errors="replace") as f:
            f.seek(offset)
            text = f.read()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]   # every line is JSON
        stages = {line["stage"]: line for line in lines
                  if line.get("lead_id") == lead_id and "duration_ms" in line}
    assert {"validate_lead", "score_lead", "deliver_post"} <= set(stages), sorted(stages)
    for line in stages.values():
        assert line["task_id"] and line["state"] == "SUCCESS" and line["duration_ms"] >= 0
    for secret in secrets:
        assert secret not in text, secret
