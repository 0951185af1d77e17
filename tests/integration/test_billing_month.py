"""Billing months are cut at midnight UTC, whatever time zone the database session is in."""
from __future__ import annotations

import pytest

from pipeline import submit_lead
from pipeline.adapters import db, views
from tests.helpers import make_lead, one_taker, wait_for


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Los_Angeles", "UTC"])
def test_a_sale_is_billed_in_its_utc_month(clean_db, workers, buyers, zone):
    one_taker(buyers)
    lead_id = submit_lead(make_lead("solar", seed=41))
    wait_for(lead_id, ("sold",))
    for sold_at, month in [("2026-11-30T23:30:00Z", "2026-11"), ("2026-12-01T00:30:00Z", "2026-12")]:
        with db.transaction() as cur:
            cur.execute("UPDATE sales SET sold_at=%s WHERE lead_id=%s", (sold_at, lead_id))
            cur.execute(f"SET LOCAL TIME ZONE '{zone}'")
            bills = {m: views.billing(cur, m)["leads"] for m in ("2026-11", "2026-12")}
        assert bills == {"2026-11": int(month == "2026-11"), "2026-12": int(month == "2026-12")}, sold_at
