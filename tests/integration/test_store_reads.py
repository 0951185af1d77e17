"""How the store reads rows: plain dicts from every fetch, and the stages' claims with what else
they need in the same statement (the validation locks, the scoring history)."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from psycopg2.extras import execute_values

from pipeline import submit_lead
from pipeline.adapters import db, store
from pipeline.adapters.prepared import prepared
from pipeline.domain import validation
from pipeline.service import intake, lifecycle
from tests.helpers import load_tree, make_lead


def test_rows_are_plain_dicts_named_by_each_results_columns(database):
    with db.transaction() as cur:
        cur.execute("SELECT 1 AS a, 'x' AS b")
        row = cur.fetchone()
        assert type(row) is dict and row == {"a": 1, "b": "x"} and list(row) == ["a", "b"]
        assert cur.fetchone() is None
        cur.execute("SELECT n, n * 2 AS twice FROM generate_series(1, 5) AS n")
        assert cur.fetchmany(2) == [{"n": 1, "twice": 2}, {"n": 2, "twice": 4}]
        assert cur.fetchmany() == [{"n": 3, "twice": 6}]           # arraysize 1
        assert [type(r) for r in cur.fetchall()] == [dict, dict]
        cur.execute("SELECT 'y' AS c")                             # new columns, new names
        assert [r for r in cur] == [{"c": "y"}]
        cur.execute(prepared("SELECT %s::int AS p, %s::text AS q"), (7, "z"))
        assert cur.fetchall() == [{"p": 7, "q": "z"}]
        cur.execute("CREATE TEMP TABLE t (k int)")
        rows = execute_values(cur, "INSERT INTO t VALUES %s RETURNING k AS key", [(1,), (2,)], fetch=True)
        assert rows == [{"key": 1}, {"key": 2}]


def test_the_score_claim_counts_the_leads_from_the_same_ip_in_the_day_before(clean_db, monkeypatch):
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)
    same = [submit_lead(make_lead("solar", seed=s, consent__ip="203.0.113.7")) for s in range(4)]
    submit_lead(make_lead("solar", seed=9, consent__ip="198.51.100.1"))
    lead_id = same[-1]
    now = datetime.now(UTC)
    with db.transaction() as cur:
        assert store.claim_to_score(cur, lead_id, now) is None              # received, not validated
        cur.execute("UPDATE leads SET status='validated' WHERE id=%s", (lead_id,))
    try:
        with db.transaction() as cur:
            lead, consent, history = store.claim_to_score(cur, lead_id, now)
            assert str(lead.id) == lead_id and consent["ip"] == "203.0.113.7"
            assert history == {"same_ip_24h": 3}                            # itself not counted
        with db.transaction() as cur:
            assert store.claim_to_score(cur, lead_id, now + timedelta(hours=25))[2] == {"same_ip_24h": 0}
    finally:
        with db.transaction() as cur:
            cur.execute("UPDATE leads SET status='rejected'")     # none left moving


def test_the_validate_claim_locks_the_contact_hashes_taken_at_intake(clean_db, monkeypatch):
    """Validation's contact locks come with its claim, for the hashes the consent record names;
    only a phone too bad to hash at intake (its normalised hash is still compared) costs the
    stage a statement of its own to lock it."""
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)
    good = submit_lead(make_lead("solar", seed=21))
    bad = submit_lead(make_lead("solar", seed=22, contact__phone="(999) 999-9999"))
    try:
        with db.transaction() as cur:
            lead, _, locked = store.claim_to_validate(cur, good)
            assert locked == validation.contact_hashes(lead.contact) and None not in locked
            cur.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
                        " AND pid = pg_backend_pid() AND granted")
            assert cur.fetchone()["n"] == 2
        calls = []
        real = store.lock_contact
        monkeypatch.setattr(store, "lock_contact", lambda cur, vertical, *hashes: (
            calls.append(hashes), real(cur, vertical, *hashes)))
        lifecycle.validate_lead(good)
        assert calls == []
        lifecycle.validate_lead(bad)
        [(phone, email)] = calls
        assert phone == hashlib.sha256(b"+19999999999").hexdigest() and email is not None
    finally:
        with db.transaction() as cur:
            cur.execute("UPDATE leads SET status='rejected'")     # none left moving


def test_the_shard_claim_reads_of_the_leads_facts_only_the_geo(clean_db, buyers, monkeypatch):
    """The ping view shows the lead's geo; the rest of its facts (its contact among them) is
    neither read by the shard's claim nor held by the ping worker."""
    buyers.set_fleet({"buyers": [{"id": "b1", "accept_rate": 1, "bid": 22.0}]})
    load_tree(buyers.tree(network={"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2,
                                   "max_cycles": 1, "rerun_interval_s": 1, "duplicate_window_h": 0,
                                   "stuck_after_s": 60}))
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)
    lead_id = submit_lead(make_lead("solar", seed=62))
    lifecycle.validate_lead(lead_id)
    [ping] = lifecycle.score_lead(lead_id)
    try:
        with db.transaction() as cur:
            cur.execute("SELECT facts FROM leads WHERE id=%s", (lead_id,))
            facts = cur.fetchone()["facts"]
            auction, lead = store.claim_shard(cur, *ping.args)
        assert "phone_e164" in facts and lead.facts == {"geo": facts["geo"]}
        assert lifecycle.ping_view(lead)["geo"] == facts["geo"] and str(auction.lead_id) == lead_id
    finally:
        with db.transaction() as cur:
            cur.execute("UPDATE leads SET status='rejected'")     # none left moving


def test_the_intake_stores_the_leads_json_as_it_was_loaded(clean_db, monkeypatch):
    # contact, qualifiers, source and form go in as JSON text: the same jsonb as Json() wrote,
    # quotes, backslashes and other scripts included; a lead without a form has JSON null there.
    from psycopg2.extras import Json

    from pipeline.domain.leads import parse_lead
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)
    odd = make_lead("solar", seed=5, contact__address="1 O'Hara \\ \"Main\" St", contact__city="Zürich",
                    source__sub_id="ä'b\"c\\d")
    bare = make_lead("mortgage", seed=6, form=None)
    for payload in (odd, bare):
        lead_id = submit_lead(payload)
        lead = parse_lead(payload, datetime.now(UTC))
        with db.transaction() as cur:
            cur.execute("UPDATE leads SET status='rejected' WHERE id=%s", (lead_id,))   # not moving
            cur.execute("SELECT contact, qualifiers, source, form, jsonb_typeof(form) AS form_type,"
                        " contact = %s AND qualifiers = %s AND source = %s AND form = %s AS as_json"
                        " FROM leads WHERE id = %s",
                        (Json(lead["contact"]), Json(lead["qualifiers"]), Json(lead["source"]),
                         Json(lead["form"]), lead_id))
            row = cur.fetchone()
        assert row["as_json"] is True
        assert (row["contact"], row["qualifiers"], row["source"], row["form"]) == (
            lead["contact"], lead["qualifiers"], lead["source"], lead["form"])
        assert row["form_type"] == ("null" if payload is bare else "object")
