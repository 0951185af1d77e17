"""The consent record: verbatim, hashed, immutable, retrievable per lead, and in the post."""
from __future__ import annotations

import hashlib

import psycopg2
import pytest

from pipeline import submit_lead
from pipeline.adapters import db, store
from pipeline.domain.leads import InvalidLead
from tests.helpers import make_lead, one_taker, wait_for

TEXT = ("  By clicking Submit, I agree that Dreamy Leads and its partners may contact me at the\n"
        "number above, including by autodialer; consent is not a condition of purchase.\n\n")


def consent_of(lead_id: str) -> dict | None:
    with db.transaction() as cur:
        return store.consent(cur, lead_id)


def test_consent_is_stored_verbatim_with_its_hash_and_retrievable(clean_db):
    lead = make_lead()
    lead["consent"].update(text=TEXT, ip="2001:DB8::0:1")
    lead_id = submit_lead(lead)
    consent = consent_of(lead_id)
    assert consent["text"] == TEXT                     # not stripped, not reflowed
    assert consent["text_sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    assert consent["ip"] == "2001:db8::1"
    assert consent["page_url"] == lead["consent"]["page_url"]
    assert consent["timestamp"].endswith("Z")
    # The same words on another lead: a record of its own, with the same proof.
    again = make_lead()
    again["consent"]["text"] = TEXT
    other = submit_lead(again)
    with db.transaction() as cur:
        cur.execute("SELECT lead_id FROM consents WHERE text_sha256=%s", (consent["text_sha256"],))
        assert {str(r["lead_id"]) for r in cur.fetchall()} == {lead_id, other}


def test_consent_records_cannot_be_changed_or_deleted(clean_db):
    lead_id = submit_lead(make_lead())
    before = consent_of(lead_id)
    for statement in ("UPDATE consents SET text = 'I agree to nothing' WHERE lead_id=%s",
                      "UPDATE consents SET text_sha256 = repeat('0', 64) WHERE lead_id=%s",
                      "DELETE FROM consents WHERE lead_id=%s"):
        with pytest.raises(psycopg2.Error, match="immutable"):
            with db.transaction() as cur:
                cur.execute(statement, (lead_id,))
    assert consent_of(lead_id) == before


@pytest.mark.parametrize("missing", ["ip", "timestamp", "text"])
def test_no_consent_no_lead(clean_db, missing):
    lead = make_lead()
    del lead["consent"][missing]
    with pytest.raises(InvalidLead) as raised:
        submit_lead(lead)
    assert raised.value.errors == {"consent": {missing: ["Missing data for required field."]}}
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM leads")
        assert cur.fetchone()["n"] == 0


@pytest.mark.integration
def test_the_consent_hash_goes_in_the_post(clean_db, workers, buyers):
    one_taker(buyers)
    lead = make_lead()
    lead["consent"]["text"] = TEXT
    lead_id = submit_lead(lead)
    assert wait_for(lead_id, ("sold", "rejected", "unsold"))["status"] == "sold"
    posts = buyers.posts(lead_id)
    assert len(posts) == 1 and posts[0]["accepted"]
    assert posts[0]["consent_text_sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    assert buyers.stats("taker")["pii_violations"] == 0     # and the ping carried none of it


def test_the_consent_text_is_hashed_byte_for_byte_as_submitted(clean_db):
    decomposed = "I agree. Caf\u0065\u0301 Lopez may call me.\u00a0Th\u0061\u0308nks"   # e + combining acute
    lead = make_lead()
    lead["consent"]["text"] = decomposed
    consent = consent_of(submit_lead(lead))
    assert consent["text"] == decomposed
    assert consent["text_sha256"] == hashlib.sha256(decomposed.encode("utf-8")).hexdigest()


def test_the_consent_record_keeps_the_phone_and_email_hashes_it_covers(clean_db):
    lead = make_lead()
    lead["contact"].update(phone="(305) 555-0142", email="Ana.Lopez@Example.com")
    lead_id = submit_lead(lead)
    with db.transaction() as cur:
        cur.execute("SELECT phone_sha256, email_sha256 FROM consents WHERE lead_id=%s", (lead_id,))
        row = cur.fetchone()
    assert row["phone_sha256"] == hashlib.sha256(b"+13055550142").hexdigest()
    assert row["email_sha256"] == hashlib.sha256(b"ana.lopez@example.com").hexdigest()


def test_the_application_role_cannot_update_delete_or_truncate_consent_records(clean_db):
    lead_id = submit_lead(make_lead())
    before = consent_of(lead_id)
    for statement in ("UPDATE consents SET text = 'I agree to nothing' WHERE lead_id=%s",
                      "DELETE FROM consents WHERE lead_id=%s",
                      "TRUNCATE consents CASCADE"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            with db.transaction() as cur:
                cur.execute("SET LOCAL ROLE pingtree_app")
                cur.execute(statement, (lead_id,) if "%s" in statement else None)
    with db.transaction() as cur:      # what the application role may do
        cur.execute("SET LOCAL ROLE pingtree_app")
        cur.execute("SELECT text FROM consents WHERE lead_id=%s", (lead_id,))
        cur.execute("UPDATE leads SET status_at = status_at WHERE id=%s", (lead_id,))
        cur.execute("DELETE FROM suppressions WHERE false")
    assert consent_of(lead_id) == before


def test_even_the_owner_cannot_truncate_consent_records(clean_db):
    lead_id = submit_lead(make_lead())
    with pytest.raises(psycopg2.Error, match="immutable"):
        with db.transaction() as cur:
            cur.execute("TRUNCATE consents CASCADE")
    assert consent_of(lead_id) is not None
