"""The records' enums are the words PostgreSQL allows, and the store's rows load into them."""
from __future__ import annotations

import re
import uuid

import pytest

from pipeline.adapters import db
from pipeline.domain.modes import Mode
from pipeline.domain.records import Lead, Outcome, Status


def allowed(constraint: str) -> set[str]:
    with db.transaction() as cur:
        cur.execute("SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conname=%s",
                    (constraint,))
        return set(re.findall(r"'([a-z_]+)'", cur.fetchone()["d"]))


@pytest.mark.parametrize(("enum", "constraint"), [(Status, "leads_status_check"),
                                                  (Outcome, "pings_outcome_check"),
                                                  (Mode, "tiers_mode_check")])
def test_every_member_is_a_value_the_database_allows_and_every_value_a_member(database, enum,
                                                                              constraint):
    assert {m.value for m in enum} == allowed(constraint)


def test_a_claimed_lead_is_a_record_with_its_status_a_member(clean_db):
    from pipeline.adapters import store
    lead_id = uuid.uuid4()
    with db.transaction() as cur:
        cur.execute("INSERT INTO leads (id, status, vertical, payload_sha256, contact, qualifiers, source)"
                    " VALUES (%s, 'held', 'solar', 'x', '{}', '{}', '{}')", (lead_id,))
        lead = store.claim(cur, lead_id, (Status.HELD, Status.SCORED))
        assert store.claim(cur, lead_id, Status.SCORED) is None
    assert isinstance(lead, Lead) and lead.status is Status.HELD and lead.id == lead_id


def test_a_buyer_is_never_deleted_and_a_timeline_entry_needs_its_lead(clean_db):
    """What the foreign keys dropped in 082 checked: a ping's or sale's buyer stays (deactivated,
    never deleted), and record_event() writes nothing for a lead that does not exist."""
    import psycopg2

    from pipeline.adapters import store
    with db.transaction() as cur:
        cur.execute("INSERT INTO buyers (id, name, tier, verticals, ping_url, post_url)"
                    " VALUES ('b', 'B', 1, '{solar}', 'http://b/ping', 'http://b/post')")
    with pytest.raises(psycopg2.errors.RaiseException, match="never deleted"), db.transaction() as cur:
        cur.execute("DELETE FROM buyers WHERE id = 'b'")
    with db.transaction() as cur:
        store.record_event(cur, uuid.uuid4(), "returned", {"reason": "x"})
        cur.execute("SELECT count(*) AS n FROM lead_events")
        assert cur.fetchone()["n"] == 0
