"""The validate stage on real workers: normalisation, duplicates, suppression, unknown ZIPs."""
from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys

import pytest

from config.settings import settings
from pipeline import submit_lead
from pipeline.adapters import db
from pipeline.domain import validation
from tests.helpers import cli, load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 300, "duplicate_window_h": 24, "stuck_after_s": 60}
DONE = ("sold", "rejected", "unsold")


@pytest.fixture
def taker(clean_db, workers, buyers):
    """One buyer that takes every lead: a lead that passes validation is pinged and sold."""
    buyers.set_fleet({"defaults": {"latency_ms": 0},
                      "buyers": [{"id": "taker", "accept_rate": 1, "bid": 20.0}]})
    load_tree(buyers.tree(tiers=[{"tier": 1, "mode": "auction"}], network=NETWORK))
    return buyers


def contact_of(lead_id: str) -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT contact FROM leads WHERE id=%s", (lead_id,))
        return cur.fetchone()["contact"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def keyed(kind: str, value: str) -> str:
    return hmac.new(settings.suppression_key.encode(), f"{kind}:{value}".encode(),
                    hashlib.sha256).hexdigest()


def other_format(phone: str) -> str:
    """The same number written another way: +1 305-555-0142 for (305) 555-0142."""
    e164 = validation.normalise_phone(phone)
    return f"+1 {e164[2:5]}-{e164[5:8]}-{e164[8:]}"


def assert_rejected_unheard(buyers, lead_id: str, reasons: list[str]) -> dict:
    view = wait_for(lead_id, DONE)
    assert view["status"] == "rejected", view
    assert view["reject_reasons"] == reasons
    assert view["pings"] == [] and buyers.pings(lead_id) == [] and buyers.posts(lead_id) == []
    return view


def sold(buyers, lead_id: str) -> dict:
    view = wait_for(lead_id, DONE)
    assert view["status"] == "sold", view
    assert [p["lead_id"] for p in buyers.pings(lead_id)] == [lead_id]
    return view


def test_phone_is_stored_e164_and_email_lower_cased(taker):
    lead = make_lead(contact__email="Mixed.Case+Tag@Example.COM")
    raw_phone = lead["contact"]["phone"]
    lead_id = submit_lead(lead)
    sold(taker, lead_id)
    contact = contact_of(lead_id)
    e164 = validation.normalise_phone(raw_phone)
    assert e164.startswith("+1") and len(e164) == 12
    assert contact["phone"] == e164 != raw_phone
    assert contact["email"] == "mixed.case+tag@example.com"


def test_a_duplicate_in_the_same_vertical_is_rejected_and_points_at_the_first(taker):
    first = make_lead("solar")
    first_id = submit_lead(first)
    sold(taker, first_id)

    # The same phone written differently, another email: still the same consumer.
    same_phone = make_lead("solar", contact__phone=other_format(first["contact"]["phone"]))
    view = assert_rejected_unheard(taker, submit_lead(same_phone), ["duplicate"])
    assert view["duplicate_of"] == first_id

    same_email = make_lead("solar", contact__email=first["contact"]["email"].upper())
    view = assert_rejected_unheard(taker, submit_lead(same_email), ["duplicate"])
    assert view["duplicate_of"] == first_id

    # Another vertical is another product: not a duplicate.
    other_vertical = make_lead("mortgage", contact__phone=first["contact"]["phone"],
                               contact__email=first["contact"]["email"])
    assert sold(taker, submit_lead(other_vertical))["duplicate_of"] is None

    # Outside duplicate_window_h (24 h) the first lead no longer counts.
    with db.transaction() as cur:
        cur.execute("UPDATE leads SET created_at = created_at - interval '25 hours'"
                    " WHERE vertical='solar'")
    later = make_lead("solar", contact__phone=first["contact"]["phone"])
    assert sold(taker, submit_lead(later))["duplicate_of"] is None


def test_unknown_zip_is_rejected_before_any_buyer_hears_of_it(taker):
    lead_id = submit_lead(make_lead(contact__zip="00000"))
    assert_rejected_unheard(taker, lead_id, ["unknown_zip"])


def test_suppression_list_by_cli_rejects_before_any_ping_and_can_be_lifted(taker, tmp_path):
    phone_lead = make_lead()
    raw_phone, e164 = phone_lead["contact"]["phone"], validation.normalise_phone(
        phone_lead["contact"]["phone"])
    email_lead = make_lead()
    email = email_lead["contact"]["email"]

    added = cli("suppress", "add", other_format(raw_phone), "--reason", "asked")
    assert added.returncode == 0, added.stderr
    assert "suppressed 1 new" in added.stdout
    listing = tmp_path / "dnc.txt"
    listing.write_text(f"\n{email.upper()}\nnot a phone nor an email\n")
    imported = cli("suppress", "import", str(listing))
    assert imported.returncode == 2                   # one bad line, reported by number only
    assert "suppressed 1 new" in imported.stdout and "not a phone nor" not in imported.stderr

    listed = cli("suppress", "list")
    assert listed.returncode == 0
    # Stored keyed (HMAC with the server's key): the plain SHA-256 of a phone is brute-forced
    # in seconds from its area code, so it must not be what the list holds.
    assert keyed("phone", e164) in listed.stdout and keyed("email", email.lower()) in listed.stdout
    assert sha256(e164) not in listed.stdout and sha256(email.lower()) not in listed.stdout
    with db.transaction() as cur:
        cur.execute("SELECT * FROM suppressions")
        stored = str(cur.fetchall())
    assert sha256(e164) not in stored and sha256(email.lower()) not in stored
    for raw in (raw_phone, e164, e164[2:], email, email.lower(), email.upper()):
        assert raw not in listed.stdout + added.stdout + imported.stdout + imported.stderr

    phone_id = submit_lead(phone_lead)
    email_id = submit_lead(email_lead)
    control_id = submit_lead(make_lead())
    assert_rejected_unheard(taker, phone_id, ["suppressed"])
    assert_rejected_unheard(taker, email_id, ["suppressed"])
    sold(taker, control_id)                           # the buyer hears of leads that pass

    removed = cli("suppress", "remove", raw_phone)
    assert removed.returncode == 0 and "removed 1" in removed.stdout
    again = make_lead(contact__phone=raw_phone)
    sold(taker, submit_lead(again))
    still = make_lead(contact__email=email)
    assert_rejected_unheard(taker, submit_lead(still), ["suppressed"])


def test_a_suppression_entry_from_before_keyed_hashes_is_still_honoured(taker):
    lead = make_lead()
    e164 = validation.normalise_phone(lead["contact"]["phone"])
    with db.transaction() as cur:   # as an older version stored it: the plain SHA-256
        cur.execute("INSERT INTO suppressions (kind, legacy_sha256, reason) VALUES ('phone', %s, 'old')",
                    (sha256(e164),))
    assert_rejected_unheard(taker, submit_lead(lead), ["suppressed"])
    assert "legacy" in cli("suppress", "list").stdout


def test_suppress_refuses_to_work_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PINGTREE_SUPPRESSION_KEY", "PINGTREE_DEV")}
    refused = subprocess.run([sys.executable, "-m", "pipeline.entrypoints.cli", "suppress", "add",
                              "+13055550142"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "PINGTREE_SUPPRESSION_KEY" in refused.stderr
