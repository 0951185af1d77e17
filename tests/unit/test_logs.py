"""Log lines are JSON with allow-listed fields only; free text is scrubbed of emails and phones."""
import io
import json
import logging

import pytest

from pipeline.adapters import logs


@pytest.fixture
def lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.AllowListFormatter())
    log = logging.getLogger("pingtree.test_logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    log.removeHandler(handler)


def test_fields_outside_the_allow_list_are_dropped(lines):
    log, read = lines
    log.info("posted", extra={"lead_id": "L1", "buyer_id": "b1", "email": "ann@example.com",
                              "contact": {"first_name": "Ann"}, "duration_ms": 12})
    [line] = read()
    assert line["message"] == "posted"
    assert line["lead_id"] == "L1" and line["buyer_id"] == "b1" and line["duration_ms"] == 12
    assert "email" not in line and "contact" not in line
    assert line["level"] == "INFO" and line["logger"] == "pingtree.test_logs" and line["at"]


def test_a_message_shows_scalars_only_and_no_email_or_phone(lines):
    log, read = lines
    lead = {"contact": {"first_name": "Annabelle", "email": "ann@example.com"}}
    log.warning("lead %s from %s at %s, %d tries", lead, "ann@example.com", "(305) 555-0142", 3)
    [line] = read()
    assert line["message"] == "lead <dict> from [email] at [phone], 3 tries"
    log.info("ids stay: %s %s", "0b1e7a52-6e0f-4c61-9a43-1d2d3f4e5a6b", "2026-11-29T09:32:40")
    assert read()[1]["message"].endswith("0b1e7a52-6e0f-4c61-9a43-1d2d3f4e5a6b 2026-11-29T09:32:40")


def test_a_database_error_detail_is_not_logged(lines):
    log, read = lines
    row = ", ".join(["Ann", "Lee"])
    try:
        raise RuntimeError(f"new row violates check constraint\nDETAIL:  Failing row contains ({row}).")
    except RuntimeError:
        log.exception("stage failed")
    [line] = read()
    assert "Ann" not in json.dumps(line) and "DETAIL: [row]" in line["exc_info"]


def test_bound_fields_appear_on_every_line_until_unbound(lines):
    log, read = lines
    token = logs.bind(task_id="t-1", stage="validate_lead", lead_id="L2")
    log.info("one")
    logs.unbind(token)
    log.info("two")
    first, second = read()
    assert (first["task_id"], first["stage"], first["lead_id"]) == ("t-1", "validate_lead", "L2")
    assert "task_id" not in second
