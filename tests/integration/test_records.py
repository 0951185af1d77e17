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


def allowed_statuses() -> set[str]:
    """The statuses the leads' trigger allows (a lead's status check is in its trigger, 083)."""
    with db.transaction() as cur:
        cur.execute("SELECT prosrc FROM pg_proc WHERE proname = 'leads_status_flags'")
        source = cur.fetchone()["prosrc"]
    listed = re.search(r"NOT NEW\.status = ANY \(ARRAY\[(.*?)\]\)", source, re.S).group(1)
    return set(re.findall(r"'([a-z_]+)'", listed))


@pytest.mark.parametrize(("enum", "values"), [(Status, allowed_statuses),
                                              (Outcome, lambda: allowed("pings_outcome_check")),
                                              (Mode, lambda: allowed("tiers_mode_check"))])
def test_every_member_is_a_value_the_database_allows_and_every_value_a_member(database, enum,
                                                                              values):
    assert {m.value for m in enum} == values()


def test_a_leads_flags_follow_its_status_and_no_other_status_is_written(clean_db):
    """The leads' trigger (083) keeps in_flight, held and publisher_id as the generated columns
    did, and refuses a status outside Status as the CHECK did."""
    import psycopg2

    def flags(cur, lead_id):
        cur.execute("SELECT in_flight, held, publisher_id FROM leads WHERE id=%s", (lead_id,))
        return tuple(cur.fetchone().values())
    lead_id = uuid.uuid4()
    with db.transaction() as cur:
        cur.execute("INSERT INTO leads (id, status, vertical, payload_sha256, contact, qualifiers, source,"
                    " in_flight) VALUES (%s, 'received', 'solar', 'x', '{}', '{}', %s, false)",
                    (lead_id, '{"publisher_id": "p1"}'))
        assert flags(cur, lead_id) == (True, False, "p1")
        cur.execute("UPDATE leads SET status='held' WHERE id=%s", (lead_id,))
        assert flags(cur, lead_id) == (False, True, "p1")
        cur.execute("UPDATE leads SET held=false, source=%s WHERE id=%s", ('{"publisher_id": "p2"}', lead_id))
        assert flags(cur, lead_id) == (False, True, "p2")
        cur.execute("UPDATE leads SET status='sold' WHERE id=%s", (lead_id,))
        assert flags(cur, lead_id) == (False, False, "p2")
    with pytest.raises(psycopg2.errors.CheckViolation) as refused, db.transaction() as cur:
        cur.execute("UPDATE leads SET status='lost' WHERE id=%s", (lead_id,))
    assert refused.value.diag.constraint_name == "leads_status_check"


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


def test_the_domains_refuse_what_the_checks_refused_under_the_same_names(clean_db):
    """085 moved the CHECKs of pings, post attempts and sales into domains: an outcome or kind
    outside the enums, or a negative price, is refused as before, the constraint named as before."""
    import psycopg2
    lead_id, auction_id, ping_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with db.transaction() as cur:
        cur.execute("INSERT INTO buyers (id, name, tier, verticals, ping_url, post_url)"
                    " VALUES ('b', 'B', 1, '{solar}', 'http://b/ping', 'http://b/post')")
        cur.execute("INSERT INTO leads (id, status, vertical, payload_sha256, contact, qualifiers, source)"
                    " VALUES (%s, 'sold', 'solar', 'x', '{}', '{}', '{}')", (lead_id,))
        cur.execute("INSERT INTO auctions (id, lead_id, cycle, tier, mode, deadline_at, buyer_ids, shards)"
                    " VALUES (%s, %s, 1, 1, 'auction', now(), '{b}', 1)", (auction_id, lead_id))
        cur.execute("INSERT INTO pings (id, auction_id, lead_id, buyer_id, tier, cycle, rank, outcome)"
                    " VALUES (%s, %s, %s, 'b', 1, 1, 0, 'accept')", (ping_id, auction_id, lead_id))
    refused = {
        "pings_outcome_check": ("UPDATE pings SET outcome = 'won' WHERE id = %s", (ping_id,)),
        "pings_kind_check": ("UPDATE pings SET kind = 'peek' WHERE id = %s", (ping_id,)),
        "post_attempts_outcome_check": (
            "INSERT INTO post_attempts (lead_id, ping_id, buyer_id, attempt, token, outcome)"
            " VALUES (%s, %s, 'b', 1, gen_random_uuid(), 'maybe')", (lead_id, ping_id)),
        "sales_price_cents_check": ("INSERT INTO sales (lead_id, buyer_id, ping_id, price_cents)"
                                    " VALUES (%s, 'b', %s, -1)", (lead_id, ping_id)),
    }
    for name, (statement, values) in refused.items():
        with pytest.raises(psycopg2.errors.CheckViolation) as error, db.transaction() as cur:
            cur.execute(statement, values)
        assert error.value.diag.constraint_name == name
    with db.transaction() as cur:
        cur.execute("INSERT INTO sales (lead_id, buyer_id, ping_id, price_cents) VALUES (%s, 'b', %s, 0)",
                    (lead_id, ping_id))
        cur.execute("SELECT price_cents FROM sales")
        assert cur.fetchone()["price_cents"] == 0


def test_an_auction_is_opened_only_with_its_lead(clean_db):
    """What the auctions' key to leads (dropped in 085) checked: open_auction() writes the
    auction from the row of the lead it moves, so for a lead that does not exist it writes none."""
    from datetime import UTC, datetime

    from pipeline.adapters import store
    with db.transaction() as cur:
        store.open_auction(cur, lead_id=uuid.uuid4(), cycle=1, tier=1, mode=Mode.AUCTION,
                           buyer_ids=["b"], shard_count=1, deadline_at=datetime.now(UTC), skipped=[])
        cur.execute("SELECT count(*) AS n FROM auctions")
        assert cur.fetchone()["n"] == 0


def test_every_table_has_a_primary_key(database):
    """A table without one has no replica identity: under a publication (logical replication,
    change-data capture) PostgreSQL refuses its UPDATEs and DELETEs, and pg_repack refuses it."""
    with db.transaction() as cur:
        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
                    " AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid"
                    "                 AND k.contype = 'p') ORDER BY 1")
        assert [r["relname"] for r in cur.fetchall()] == []
