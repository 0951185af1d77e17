"""Publishers end to end over HTTP: keys from the CLI, isolation, scoped idempotency, limits."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from pipeline.adapters import db
from pipeline.adapters.views import PUBLISHER_FIELDS
from tests.helpers import Server, cli, make_lead, one_taker, settle, wait_for

OPERATOR = "operator-key-0123456789"


@pytest.fixture(scope="module")
def api(database, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serve") / "publishers.log",
                    PINGTREE_API_KEYS=OPERATOR)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def settled(workers):
    yield
    assert settle(20), "leads still moving through the pipeline"


def add_publisher(publisher_id: str, *options: str) -> dict:
    """`pingtree publisher add`: the key is printed once, on stdout."""
    done = cli("publisher", "add", publisher_id, "--name", f"Site {publisher_id}", *options)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("ptk_")
    return {"Authorization": f"Bearer {key}"}


def op() -> dict:
    return {"Authorization": f"Bearer {OPERATOR}"}


def lead_for(publisher_id: str | None = None, **changes) -> dict:
    lead = make_lead(**changes)
    if publisher_id is None:
        del lead["source"]["publisher_id"]
    else:
        lead["source"]["publisher_id"] = publisher_id
    return lead


def stored_source(lead_id: str) -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT source FROM leads WHERE id=%s", (lead_id,))
        return cur.fetchone()["source"]


def lead_count() -> int:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM leads")
        return cur.fetchone()["n"]


def test_a_publisher_key_is_its_publisher_and_nobody_else(api, clean_db, buyers):
    one_taker(buyers)
    alpha = add_publisher("alpha", "--fixed", "5.00")
    beta = add_publisher("beta", "--share", "50", "--verticals", "solar")

    # The key says who sent the lead; the body need not, and cannot say someone else.
    answer = api.post(lead_for(None, seed=1), alpha)
    assert answer.status_code == 202, answer.text
    sold_id = answer.json()["lead_id"]
    assert stored_source(sold_id)["publisher_id"] == "alpha"
    assert api.post(lead_for("alpha", seed=2), alpha).status_code == 202
    before = lead_count()
    posing = api.post(lead_for("beta", seed=3), alpha)
    assert posing.status_code == 422
    assert list(posing.json()["errors"]["source"]) == ["publisher_id"]
    assert lead_count() == before

    # A publisher sends only its verticals.
    refused = api.post(lead_for(None, vertical="mortgage", seed=4), beta)
    assert refused.status_code == 422 and "vertical" in refused.json()["errors"]
    assert lead_count() == before

    view = wait_for(sold_id, ("sold",))
    assert view["sale"]["buyer_id"] == "taker"
    # Its own lead, without buyers, bids, prices or another lead's id.
    own = api.get(f"/v1/leads/{sold_id}", alpha)
    assert own.status_code == 200
    assert set(own.json()) == set(PUBLISHER_FIELDS)
    assert set(own.json()["sale"]) == {"sold_at", "returned"}
    for secret in ("taker", "20.0", "buyer_id", "bid", "price", "duplicate_of", "pings", "skipped"):
        assert secret not in own.text, secret
    # Another publisher's lead does not exist for it; the operator sees everything.
    assert api.get(f"/v1/leads/{sold_id}", beta).status_code == 404
    full = api.get(f"/v1/leads/{sold_id}", op())
    assert full.status_code == 200 and full.json()["sale"]["price"] == 20.0
    assert full.json()["pings"][0]["buyer_id"] == "taker"


def test_a_resubmitted_phone_reveals_no_other_lead_id(api, clean_db, buyers):
    one_taker(buyers)
    alpha = add_publisher("alpha", "--fixed", "5.00")
    beta = add_publisher("beta", "--fixed", "5.00")
    first = api.post(lead_for(None, seed=11), alpha).json()["lead_id"]
    wait_for(first, ("sold",))
    twin = lead_for(None, seed=11)          # the same consumer, sent by another publisher
    second = api.post(twin, beta).json()["lead_id"]
    wait_for(second, ("rejected",))
    mine = api.get(f"/v1/leads/{second}", beta)
    assert mine.json()["status"] == "rejected"
    assert first not in mine.text and "duplicate_of" not in mine.json()
    assert api.get(f"/v1/leads/{second}", op()).json()["duplicate_of"] == first


def test_idempotency_keys_are_the_publishers_own_and_expire(api, clean_db):
    alpha = add_publisher("alpha", "--fixed", "5.00")
    beta = add_publisher("beta", "--fixed", "5.00")
    key = {"Idempotency-Key": "form-submission-1"}
    body = json.dumps(lead_for(None, seed=21))
    a_first = api.post(body, {**alpha, **key})
    assert a_first.status_code == 202
    # Another publisher's same key is another lead: it cannot block a real one...
    b_first = api.post(body, {**beta, **key})
    assert b_first.status_code == 202
    assert b_first.json()["lead_id"] != a_first.json()["lead_id"]
    # ...and a conflict hands out only the publisher's own lead id.
    conflict = api.post(json.dumps(lead_for(None, seed=22)), {**beta, **key})
    assert conflict.status_code == 409
    assert conflict.json()["lead_id"] == b_first.json()["lead_id"]
    replay = api.post(body, {**alpha, **key})
    assert replay.status_code == 202 and replay.json()["lead_id"] == a_first.json()["lead_id"]
    assert lead_count() == 2

    # Past the window (24 h by default) the key is free again.
    with db.transaction() as cur:
        cur.execute("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'"
                    " WHERE publisher_id = 'alpha'")
    fresh = api.post(json.dumps(lead_for(None, seed=23)), {**alpha, **key})
    assert fresh.status_code == 202
    assert fresh.json()["lead_id"] != a_first.json()["lead_id"]
    again = api.post(json.dumps(lead_for(None, seed=23)), {**alpha, **key})
    assert again.json()["lead_id"] == fresh.json()["lead_id"]


def test_a_key_revoked_from_the_cli_stops_working_at_once(api, clean_db):
    alpha = add_publisher("alpha", "--fixed", "5.00")
    spare = cli("publisher", "key", "alpha").stdout.strip()
    unknown = f"/v1/leads/{uuid.uuid4()}"
    assert api.get(unknown, alpha).status_code == 404
    key_id = alpha["Authorization"].split("_")[1]
    listed = json.loads(cli("publisher", "list", "--json").stdout)
    assert [k["id"] for k in listed[0]["keys"]][0] == key_id
    assert key_id in cli("publisher", "list").stdout and "ptk_" not in cli("publisher", "list").stdout

    done = cli("publisher", "revoke", key_id)
    assert done.returncode == 0, done.stderr
    assert api.get(unknown, alpha).status_code == 401
    assert api.post(lead_for(None), alpha).status_code == 401
    assert api.get(unknown, {"Authorization": f"Bearer {spare}"}).status_code == 404
    assert cli("publisher", "revoke", key_id).returncode == 1

    # An inactive publisher's keys are refused with 403 until it is active again.
    assert cli("publisher", "update", "alpha", "--inactive").returncode == 0
    assert api.get(unknown, {"Authorization": f"Bearer {spare}"}).status_code == 403
    assert cli("publisher", "update", "alpha", "--active").returncode == 0
    assert api.get(unknown, {"Authorization": f"Bearer {spare}"}).status_code == 404


def test_operator_keys_submit_for_any_publisher_named_in_the_body(api, clean_db):
    answer = api.post(lead_for("legacy-site", seed=31), op())
    assert answer.status_code == 202
    assert stored_source(answer.json()["lead_id"])["publisher_id"] == "legacy-site"
    missing = api.post(lead_for(None, seed=32), op())
    assert missing.status_code == 422
    assert missing.json()["errors"]["source"] == {"publisher_id": ["Missing data for required field."]}


def test_only_json_is_taken(api, clean_db):
    body = json.dumps(lead_for("legacy-site", seed=41))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                         "application/jsonx", ""):
        answer = api.post(body, {**op(), "Content-Type": content_type})
        assert answer.status_code == 415, (content_type, answer.text)
        assert answer.json() == {"error": "Content-Type must be application/json"}
    assert lead_count() == 0
    assert api.post(body, {**op(), "Content-Type": "application/json; charset=utf-8"}).status_code == 202


def test_an_ipv6_zone_in_the_consent_ip_is_a_422_and_never_logged(api, clean_db):
    lead = lead_for("legacy-site", seed=51)
    lead["consent"]["ip"] = "fe80::1%eth0"
    answer = api.post(lead, op())
    assert answer.status_code == 422, answer.text
    assert list(answer.json()["errors"]["consent"]) == ["ip"]
    assert lead_count() == 0
    lead["consent"]["ip"] = "fe80::1"
    assert api.post(lead, op()).status_code == 202
    time.sleep(0.2)
    assert "eth0" not in api.log_path.read_text()


def test_payouts_from_the_same_sales_as_billing_returns_deducted(api, clean_db, buyers):
    one_taker(buyers)                           # every lead sells at 20.00
    alpha = add_publisher("alpha", "--fixed", "5.00")
    beta = add_publisher("beta", "--share", "33.33")
    ids = {"alpha": [api.post(lead_for(None, seed=60 + i), alpha).json()["lead_id"] for i in range(3)],
           "beta": [api.post(lead_for(None, seed=70 + i), beta).json()["lead_id"] for i in range(2)],
           "legacy": [api.post(lead_for("legacy", seed=80), op()).json()["lead_id"]]}
    for lead_id in sum(ids.values(), []):
        wait_for(lead_id, ("sold",))
    assert cli("return", ids["alpha"][0], "--reason", "disconnected").returncode == 0

    month = time.strftime("%Y-%m", time.gmtime())
    doc = json.loads(cli("payouts", "--month", month, "--json").stdout)
    rows = {r["publisher_id"]: r for r in doc["publishers"]}
    assert rows["alpha"] == {"publisher_id": "alpha", "name": "Site alpha",
                             "rule": {"kind": "fixed", "per_sold_lead": 5.0}, "sold": 2,
                             "returned": 1, "revenue": 40.0, "owed": 10.0}
    # 33.33 % of 40.00 is 13.332: rounded down to the cent.
    assert (rows["beta"]["sold"], rows["beta"]["revenue"], rows["beta"]["owed"]) == (2, 40.0, 13.33)
    assert rows["legacy"]["rule"] is None and rows["legacy"]["owed"] is None
    assert doc["total_owed"] == 23.33
    bill = json.loads(cli("billing", "--month", month, "--json").stdout)
    assert sum(r["revenue"] for r in doc["publishers"]) == bill["total"] == 100.0
    text = cli("payouts", "--month", month)
    assert text.returncode == 0 and "alpha" in text.stdout and "23.33" in text.stdout
    assert cli("payouts", "--month", "2026-13").returncode == 2
    empty = json.loads(cli("payouts", "--month", "2001-01", "--json").stdout)
    assert empty["total_owed"] == 0 and all(r["sold"] == 0 for r in empty["publishers"])


def test_the_first_publisher_key_turns_auth_on_in_an_open_api(clean_db, tmp_path):
    server = Server(tmp_path / "open.log")           # no operator key: open while no key exists
    try:
        unknown = f"/v1/leads/{uuid.uuid4()}"
        assert server.get(unknown).status_code == 404
        key = add_publisher("first", "--fixed", "1")
        deadline = time.monotonic() + 5
        while server.get(unknown).status_code != 401:
            assert time.monotonic() < deadline, "auth did not turn on"
            time.sleep(0.2)
        assert server.get(unknown, key).status_code == 404
        assert server.get(unknown, {"Authorization": "Bearer made-up"}).status_code == 401
    finally:
        server.stop()


def test_the_sweep_deletes_idempotency_keys_past_their_window(api, clean_db):
    from pipeline.service import lifecycle

    alpha = add_publisher("alpha", "--fixed", "5.00")
    old = api.post(lead_for(None, seed=91), {**alpha, "Idempotency-Key": "old"})
    new = api.post(lead_for(None, seed=92), {**alpha, "Idempotency-Key": "new"})
    assert old.status_code == new.status_code == 202
    with db.transaction() as cur:
        cur.execute("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'"
                    " WHERE key = 'old'")
    lifecycle.sweep_stuck()
    with db.transaction() as cur:
        cur.execute("SELECT key FROM idempotency_keys ORDER BY key")
        assert [r["key"] for r in cur.fetchall()] == ["new"]
        cur.execute("SELECT count(*) AS n FROM leads")
        assert cur.fetchone()["n"] == 2              # the leads stay; only the keys go
