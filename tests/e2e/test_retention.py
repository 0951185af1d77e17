"""Retention: old detail summed per buyer and day, then pruned; records kept five years."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from config.settings import settings
from pipeline import submit_lead
from pipeline.adapters import db, views
from pipeline.service import retention
from tests.helpers import APP_ROLE, cli, load_tree, make_lead, pingtree, wait_for

pytestmark = pytest.mark.integration
TABLES = {"leads": ["created_at", "status_at"], "lead_events": ["at"], "pings": ["at"],
          "auctions": ["started_at", "deadline_at", "closed_at"], "post_attempts": ["at"],
          "sales": ["sold_at"]}


def backdate(lead_id: str, days: int, consent: bool = False) -> None:
    """Move a lead and its detail ``days`` into the past (the consent too, trigger off)."""
    with db.transaction() as cur:
        for table, columns in TABLES.items():
            key = "id" if table == "leads" else "lead_id"
            sets = ", ".join(f"{c} = {c} - make_interval(days => %(d)s)" for c in columns)
            cur.execute(f"UPDATE {table} SET {sets} WHERE {key} = %(id)s", {"d": days, "id": lead_id})
        if consent:
            cur.execute("ALTER TABLE consents DISABLE TRIGGER consents_no_change")
            cur.execute("UPDATE consents SET recorded_at = recorded_at - make_interval(days => %s)"
                        " WHERE lead_id = %s", (days, lead_id))
            cur.execute("ALTER TABLE consents ENABLE TRIGGER consents_no_change")


def counts(lead_id: str) -> dict[str, int]:
    with db.transaction() as cur:
        out = {}
        for table in ("leads", "consents", "sales", "pings", "lead_events", "auctions", "post_attempts"):
            key = "id" if table == "leads" else "lead_id"
            cur.execute(f"SELECT count(*) AS n FROM {table} WHERE {key} = %s", (lead_id,))
            out[table] = cur.fetchone()["n"]
        return out


def two_bidders(buyers) -> None:
    buyers.set_fleet({"defaults": {"latency_ms": 0}, "buyers": [
        {"id": "taker", "accept_rate": 1, "bid": 20.0}, {"id": "cheap", "accept_rate": 1, "bid": 5.0}]})
    load_tree(buyers.tree(tiers=[{"tier": 1, "mode": "auction"}],
                          network={"score_floor": 0, "bid_floor": 1.0, "auction_timeout_s": 2,
                                   "max_cycles": 1, "rerun_interval_s": 300, "duplicate_window_h": 24,
                                   "stuck_after_s": 60}))


def test_old_detail_is_summed_then_pruned_and_sales_and_consents_stay(clean_db, workers, buyers):
    two_bidders(buyers)
    old, recent = (submit_lead(make_lead("solar")) for _ in range(2))
    for lead_id in (old, recent):
        wait_for(lead_id, ("sold",))
    backdate(old, 40)
    assert counts(old)["pings"] == 2
    now = datetime.now(UTC)
    window = now - timedelta(days=60), now + timedelta(minutes=1)
    with db.transaction() as cur:
        before = views.report(cur, *window)

    done = retention.prune(detail_days=30, record_days=1827)
    assert done["finished"] and done["days_summed"] == 1 and done["detail_rows"] >= 3

    left = counts(old)
    assert left["leads"] == left["consents"] == left["sales"] == 1
    assert left["pings"] == 1 and left["auctions"] == 1      # the sale's winning ping and its auction
    assert left["lead_events"] == 0
    assert counts(recent)["pings"] == 2 and counts(recent)["lead_events"] > 0
    with db.transaction() as cur:
        after = views.report(cur, *window, detail_from=datetime.combine(
            now.date(), datetime.min.time(), UTC) - timedelta(days=30))
    # The old day's figures now come from its daily sums: the report over the window is the same.
    keys = ("pings", "accepts", "timeouts", "errors", "wins", "sold", "post_rejects", "posted", "revenue")
    assert [{k: b[k] for k in keys} for b in after["buyers"]] == [
        {k: b[k] for k in keys} for b in before["buyers"]]
    assert retention.prune(detail_days=30, record_days=1827)["detail_rows"] == 0   # nothing twice


def test_records_go_after_five_years_and_never_before(clean_db, workers, buyers):
    two_bidders(buyers)
    ancient, young = (submit_lead(make_lead("solar")) for _ in range(2))
    for lead_id in (ancient, young):
        wait_for(lead_id, ("sold",))
    backdate(ancient, 6 * 366, consent=True)
    backdate(young, 4 * 366, consent=True)
    with pytest.raises(retention.RetentionTooShort):
        retention.prune(detail_days=30, record_days=365)
    done = retention.prune(detail_days=30, record_days=1827)
    assert done["leads"] == 1
    assert set(counts(ancient).values()) == {0}
    assert counts(young)["consents"] == counts(young)["sales"] == 1
    with pytest.raises(psycopg2.Error, match="immutable"), db.transaction() as cur:
        cur.execute("DELETE FROM consents WHERE lead_id = %s", (young,))


def test_db_prune_and_a_bounded_report_from_the_command_line(clean_db):
    run = cli("db", "prune", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["finished"] is True
    assert cli("db", "prune", "--record-days", "30").returncode == 2
    report = json.loads(cli("report", "--json", "--days", "1").stdout)
    assert report["leads"] == {} and report["since"] < report["until"]


def test_the_application_role_prunes_expired_records_without_the_right_to_delete_consents(
        clean_db, workers, buyers):
    two_bidders(buyers)
    ancient = submit_lead(make_lead("solar"))
    wait_for(ancient, ("sold",))
    backdate(ancient, 6 * 366, consent=True)
    as_app = settings.database_url + ("&" if "?" in settings.database_url else "?") + APP_ROLE
    # Its own process: the database url (the role) is a setting read at start.
    done = pingtree("db", "prune", "--record-days", "1827", "--json",
                    env={"PINGTREE_DATABASE_URL": as_app}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(counts(ancient).values()) == {0}


def test_a_database_published_for_logical_replication_still_sells_settles_and_prunes(
        clean_db, workers, buyers):
    """With every table in a publication (a reporting replica or a change-data feed), PostgreSQL
    refuses an UPDATE or DELETE of a table without a replica identity: every table has a key."""
    with db.transaction() as cur:
        cur.execute("CREATE PUBLICATION pingtree_test_feed FOR ALL TABLES")
    try:
        two_bidders(buyers)
        ancient, old = (submit_lead(make_lead("solar")) for _ in range(2))
        for lead_id in (ancient, old):
            wait_for(lead_id, ("sold",))          # its post attempt settled: an UPDATE
        backdate(ancient, 6 * 366, consent=True)
        backdate(old, 40)
        done = retention.prune(detail_days=30, record_days=1827)
        assert done["finished"] and done["leads"] == 1
        assert set(counts(ancient).values()) == {0}
        assert counts(old)["lead_events"] == 0 and counts(old)["pings"] == 1   # the sale's, kept
        assert cli("suppress", "add", "+13035550142").returncode == 0
        assert cli("suppress", "remove", "+13035550142").returncode == 0
    finally:
        with db.transaction() as cur:
            cur.execute("DROP PUBLICATION pingtree_test_feed")
