"""HTTP intake on real parts: a `pingtree serve` subprocess, real HTTP, real PostgreSQL."""
from __future__ import annotations

import json
import random
import unicodedata
import uuid

import pytest

from config import schedule
from pipeline import submit_lead
from pipeline.adapters import db
from pipeline.domain.leads import InvalidLead
from tests.helpers import Server, cli, make_lead, settle

LIMIT = 64 * 1024
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def api(database, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serve") / "serve.log")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def settled(workers):
    """Accepted leads go on to the real workers; let them rest before the next test's TRUNCATE,
    which would otherwise race (and deadlock with) a worker's transaction."""
    yield
    assert settle(20), "leads still moving through the pipeline"


def counts() -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT (SELECT count(*) FROM leads) AS leads,"
                    " (SELECT count(*) FROM consents) AS consents,"
                    " (SELECT count(*) FROM lead_events) AS events")
        return dict(cur.fetchone())


NOTHING = {"leads": 0, "consents": 0, "events": 0}


def stored(lead_id: str) -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT * FROM leads WHERE id=%s", (lead_id,))
        lead = dict(cur.fetchone())
        cur.execute("SELECT * FROM consents WHERE lead_id=%s", (lead_id,))
        lead["consent_row"] = dict(cur.fetchone())
    return lead


def raw_lead(**changes) -> str:
    return json.dumps(make_lead(**changes))


# ---- the happy path and health -------------------------------------------------------------

def test_healthz_is_200_when_postgresql_and_redis_answer(api):
    answer = api.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert {k: body[k] for k in ("status", "postgresql", "redis")} == {
        "status": "ok", "postgresql": "ok", "redis": "ok"}
    assert set(body["beat"]) == set(schedule.BEAT_SCHEDULE)       # detail only: never a 503 here
    assert api.get("/readyz").json() == {"status": "ok", "postgresql": "ok", "redis": "ok"}
    assert api.get("/livez").status_code == 200


def test_a_lead_is_accepted_202_and_stored_with_its_consent(api, clean_db):
    answer = api.post(make_lead())
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "received"
    now = counts()
    assert now["leads"] == now["consents"] == 1 and now["events"] >= 1
    assert str(stored(body["lead_id"])["id"]) == body["lead_id"]


# ---- size, shape, strict JSON ----------------------------------------------------------------

def _padded(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = b'{"pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _json_413(answer) -> bool:
    return (answer.status_code == 413 and answer.headers["Content-Type"] == "application/json"
            and answer.json() == {"error": f"body over {LIMIT} bytes"})


def test_a_body_over_64_kib_is_413_and_stores_nothing(api, clean_db):
    assert _json_413(api.post(_padded(LIMIT + 1)))
    # Far over: refused by the HTTP server before the app reads it, in JSON all the same.
    assert _json_413(api.post(_padded(4 * LIMIT)))
    # Chunked, without a Content-Length: the limit holds on the bytes actually read.
    chunks = iter([_padded(LIMIT + 1000)[i:i + 4096] for i in range(0, LIMIT + 1000, 4096)])
    assert _json_413(api.post(chunks))
    # At the limit it is read and judged: an unknown field, field by field.
    at_limit = api.post(_padded(LIMIT))
    assert at_limit.status_code == 422
    assert at_limit.json()["errors"]["pad"] == ["Unknown field."]
    assert counts() == NOTHING


def test_a_lead_sent_chunked_is_accepted(api, clean_db):
    body = raw_lead().encode()
    answer = api.post(iter([body[i:i + 100] for i in range(0, len(body), 100)]))
    assert answer.status_code == 202, answer.text
    assert counts()["leads"] == 1


@pytest.mark.parametrize("body", [b"", b"[]", b'"lead"', b"1", b"null", b"true", b"{",
                                  b'{"a": 1}{"b": 2}', b"not json", b"\xef\xbb\xbf{}"])
def test_a_body_that_is_not_one_json_object_is_400(api, clean_db, body):
    answer = api.post(body)
    assert answer.status_code == 400, (body, answer.text)
    assert "error" in answer.json()
    assert counts() == NOTHING


def test_a_body_that_is_not_json_says_where_it_broke(api, clean_db):
    answer = api.post(b'{"vertical": "solar",\n "contact": {"phone": 1,}}')
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("body is not valid JSON: Expecting property name")
    assert "line 2 column 25" in answer.json()["error"]   # the } after "1,"


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


STRICT_JSON_CASES = {
    "nan": ('"monthly_electric_bill": ', '"monthly_electric_bill": NaN, "x": '),
    "infinity": ('"monthly_electric_bill": ', '"monthly_electric_bill": Infinity, "x": '),
    "minus_infinity": ('"monthly_electric_bill": ', '"monthly_electric_bill": -Infinity, "x": '),
    "overflow_to_infinity": ('"monthly_electric_bill": ', '"monthly_electric_bill": 1e400, "x": '),
    "duplicate_top_key": ('"vertical": "solar"', '"vertical": "solar", "vertical": "mortgage"'),
    "duplicate_nested_key": ('"first_name": ', '"first_name": "Eve", "first_name": '),
    "too_deep": ('"homeowner": ', f'"deep": {_nested(40)}, "homeowner": '),
    "far_too_deep": ('"homeowner": ', f'"deep": {"[" * 20000}{"]" * 20000}, "homeowner": '),
    "lone_surrogate": ('"first_name": ', '"first_name": "\\ud800", "x": '),
}


@pytest.mark.parametrize("case", sorted(STRICT_JSON_CASES))
def test_json_that_is_not_strict_is_400(api, clean_db, case):
    text = raw_lead(vertical="solar")
    old, new = STRICT_JSON_CASES[case]
    assert old in text
    answer = api.post(text.replace(old, new, 1))
    assert answer.status_code == 400, (case, answer.status_code, answer.text)
    assert counts() == NOTHING
    # The control: the same lead unmangled is accepted, so the 400 came from the mangling.
    assert api.post(text).status_code == 202


def test_invalid_utf8_is_400(api, clean_db):
    text = raw_lead(contact__first_name="Ana").encode()
    for bad in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"):   # stray, cut, surrogate, overlong
        body = text.replace(b'"first_name": "Ana"', b'"first_name": "Ana' + bad + b'"', 1)
        assert body != text
        assert api.post(body).status_code == 400, bad
    assert counts() == NOTHING
    assert api.post(text).status_code == 202          # the control: the bytes made the 400


def test_nul_characters_are_422_with_the_field_path(api, clean_db):
    lead = make_lead()
    lead["contact"]["first_name"] = "Ana\u0000"
    lead["consent"]["text"] += "\u0000"
    answer = api.post(lead)
    assert answer.status_code == 422
    assert answer.json() == {"errors": {
        "contact": {"first_name": ["NUL characters are not allowed."]},
        "consent": {"text": ["NUL characters are not allowed."]}}}
    assert counts() == NOTHING


def test_unicode_is_stored_nfc_normalised(api, clean_db):
    decomposed_first, decomposed_city = "Jose\u0301", "San\u0303a"
    lead = make_lead(contact__first_name=decomposed_first, contact__last_name="Mu\u0308ller")
    lead["contact"]["city"] = decomposed_city
    answer = api.post(lead)
    assert answer.status_code == 202, answer.text
    row = stored(answer.json()["lead_id"])
    assert row["contact"]["first_name"] == "José" == unicodedata.normalize("NFC", decomposed_first)
    assert row["contact"]["first_name"] != decomposed_first
    assert row["contact"]["last_name"] == "Müller"
    assert row["contact"]["city"] == "Saña"


def test_sql_looking_text_is_stored_literally(api, clean_db):
    hostile = "Robert'); DROP TABLE leads;--"
    lead = make_lead(contact__last_name=hostile)
    lead["contact"]["address"] = "1 Main St'; DELETE FROM consents WHERE ''='"
    lead["source"]["sub_id"] = "' OR 1=1 --"
    lead["consent"]["text"] += " $$; DROP TABLE consents; $$"
    earlier = make_lead()
    first = api.post(earlier).json()["lead_id"]
    answer = api.post(lead)
    assert answer.status_code == 202, answer.text
    row = stored(answer.json()["lead_id"])
    assert row["contact"]["last_name"] == hostile
    assert row["contact"]["address"] == lead["contact"]["address"]
    assert row["source"]["sub_id"] == "' OR 1=1 --"
    assert row["consent_row"]["text"] == lead["consent"]["text"]
    assert counts()["leads"] == 2 and counts()["consents"] == 2
    # The DELETE-looking address deleted nothing: the earlier lead's consent is intact.
    assert stored(first)["consent_row"]["text"] == earlier["consent"]["text"]


# ---- field-by-field errors -------------------------------------------------------------------

def test_422_errors_are_field_by_field(api, clean_db):
    lead = make_lead()
    lead["contact"]["phone"] = "12"
    lead["contact"]["email"] = "not-an-email"
    del lead["contact"]["zip"]
    lead["qualifiers"]["monthly_electric_bill"] = "a lot"
    answer = api.post(lead)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert set(errors) == {"contact", "qualifiers"}
    assert set(errors["contact"]) == {"phone", "email", "zip"}
    assert errors["contact"]["zip"] == ["Missing data for required field."]
    assert all(isinstance(m, str) and m for m in errors["contact"]["phone"])
    assert errors["qualifiers"] == {"monthly_electric_bill": ["Not a valid integer."]}
    assert counts() == NOTHING


def test_the_same_errors_from_python_http_and_the_cli(api, clean_db, tmp_path):
    lead = make_lead()
    lead["contact"]["phone"] = "(305) 55"
    lead["contact"]["state"] = "ZZ"
    lead["consent"]["ip"] = "999.1.1.1"
    with pytest.raises(InvalidLead) as raised:
        submit_lead(lead)
    python_errors = raised.value.errors
    assert set(python_errors) == {"contact", "consent"}

    answer = api.post(lead)
    assert answer.status_code == 422
    assert answer.json() == {"errors": python_errors}

    path = tmp_path / "lead.json"
    path.write_text(json.dumps(lead, indent=2))
    submitted = cli("submit", str(path))
    assert submitted.returncode == 2, submitted.stderr
    assert submitted.stdout == ""                 # no lead id printed
    lines = {line.strip() for line in submitted.stderr.splitlines() if line.startswith("  ")}
    expected = {f"{section}.{field}: {'; '.join(messages)}"
                for section, fields in python_errors.items() for field, messages in fields.items()}
    assert lines == expected
    assert any(line.startswith("contact.phone: ") for line in lines)
    assert counts() == NOTHING


# ---- idempotency -----------------------------------------------------------------------------

def test_idempotency_key_replays_the_first_lead_and_refuses_another_body(api, clean_db):
    key = {"Idempotency-Key": f"form-{uuid.uuid4()}"}
    body = raw_lead()
    first = api.post(body, key)
    again = api.post(body, key)
    assert first.status_code == again.status_code == 202
    assert again.json()["lead_id"] == first.json()["lead_id"]
    assert counts()["leads"] == 1

    # The key is the publisher's: the same publisher's other lead under it is a conflict.
    publisher = json.loads(body)["source"]["publisher_id"]
    other = api.post(raw_lead(source__publisher_id=publisher), key)
    assert other.status_code == 409
    assert other.json()["lead_id"] == first.json()["lead_id"]
    assert counts()["leads"] == 1 and counts()["consents"] == 1

    # Another key (or none) is another lead.
    assert api.post(body, {"Idempotency-Key": f"form-{uuid.uuid4()}"}).status_code == 202
    assert counts()["leads"] == 2


def test_an_overlong_idempotency_key_is_422(api, clean_db):
    answer = api.post(raw_lead(), {"Idempotency-Key": "k" * 256})
    assert answer.status_code == 422
    assert "idempotency_key" in answer.json()["errors"]
    assert counts() == NOTHING


# ---- the lead view ---------------------------------------------------------------------------

def test_the_lead_view_carries_no_personal_data(api, clean_db):
    token = uuid.uuid4().hex[:10]
    lead = make_lead(contact__first_name=f"Firstname{token}", contact__last_name=f"Last{token}",
                     contact__email=f"Mail.{token}@Example.com",
                     contact__address=f"{token} Brickell Ave")
    lead["consent"]["ip"] = "203.0.113.77"
    lead_id = api.post(lead).json()["lead_id"]
    answer = api.get(f"/v1/leads/{lead_id}")
    assert answer.status_code == 200
    view = answer.json()
    assert view["lead_id"] == lead_id and view["vertical"] == lead["vertical"]
    text = answer.text
    contact = stored(lead_id)["contact"]
    for secret in (lead["contact"]["email"], lead["contact"]["email"].lower(), contact["email"],
                   lead["contact"]["phone"], contact["phone"], lead["contact"]["first_name"],
                   lead["contact"]["last_name"], lead["contact"]["address"], token, "203.0.113.77"):
        assert secret not in text, secret


def test_an_unknown_lead_is_404(api, clean_db):
    for lead_id in (str(uuid.uuid4()), "not-a-uuid", "1", "x" * 300, "%00", "'%20OR%201=1--"):
        answer = api.get(f"/v1/leads/{lead_id}")
        assert answer.status_code == 404, (lead_id, answer.status_code)
        assert answer.json() == {"error": "no such lead"} or answer.json() == {"error": "not found"}


# ---- never a 500, never half-stored ----------------------------------------------------------

def _mutations(rng: random.Random, text: str):
    """Malformed or odd bodies derived from a valid lead, deterministically."""
    doc = json.loads(text)
    odd_values = [None, [], {}, "", " ", "x" * 3000, -1, 0, 2 ** 70, 1.5, 1e308, True,
                  "\u0000", "\u202e", "\U0001F600", {"$gt": ""}, ["a"], "<script>", "9" * 400]
    paths = [(k,) for k in doc] + [(k, f) for k, v in doc.items() if isinstance(v, dict) for f in v]
    for _ in range(60):
        body = json.loads(text)
        path = rng.choice(paths)
        node = body
        for part in path[:-1]:
            node = node[part]
        if rng.random() < 0.2:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = rng.choice(odd_values)
        yield json.dumps(body).encode()
    raw = text.encode()
    for _ in range(60):
        data = bytearray(raw)
        kind = rng.randrange(4)
        at = rng.randrange(len(data))
        if kind == 0:
            data[at] = rng.randrange(256)
        elif kind == 1:
            del data[at:]
        elif kind == 2:
            data[at:at] = rng.choice([b"{", b"}", b"[", b'"', b",", b"\\", b"\\u00", b":", b"\x00",
                                      b"\xff", b"NaN", b"-", b"1e999"])
        else:
            data[at:at + rng.randrange(1, 20)] = b""
        yield bytes(data)


def test_malformed_bodies_never_get_a_500_or_a_half_stored_lead(api, clean_db):
    rng = random.Random(20261122)
    base = raw_lead()
    seen: dict[int, int] = {}
    accepted = 0
    for body in _mutations(rng, base):
        answer = api.post(body)
        seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
        assert answer.status_code in (202, 400, 422), (answer.status_code, body[:200], answer.text)
        accepted += answer.status_code == 202
        now = counts()
        assert now["leads"] == now["consents"] == accepted, (answer.status_code, body[:200])
    # The fuzz reached every kind of refusal, so it exercised the parser and the schema.
    assert seen.get(400, 0) > 10 and seen.get(422, 0) > 10, seen


# ---- API keys --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed_api(database, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serve") / "keyed.log",
                    PINGTREE_API_KEYS="key-one, key-two")
    yield server
    server.stop()


def test_api_keys_guard_v1_but_not_healthz(keyed_api, clean_db):
    body = raw_lead()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "key-one"},
                    {"Authorization": "Basic a2V5LW9uZTo="}, {"Authorization": "Bearer "},
                    {"Authorization": "Bearer key-one-and-more"},
                    {"Authorization": "Bearer k\u00e9y".encode("latin-1")}):
        answer = keyed_api.post(body, headers)
        assert answer.status_code == 401, (headers, answer.status_code)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert counts() == NOTHING
    assert keyed_api.get(f"/v1/leads/{uuid.uuid4()}").status_code == 401
    assert keyed_api.get(f"//v1/leads/{uuid.uuid4()}").status_code in (401, 404)

    answer = keyed_api.post(body, {"Authorization": "Bearer key-two"})
    assert answer.status_code == 202
    lead_id = answer.json()["lead_id"]
    assert keyed_api.get(f"/v1/leads/{lead_id}").status_code == 401
    assert keyed_api.get(f"/v1/leads/{lead_id}",
                         {"Authorization": "Bearer key-one"}).status_code == 200
    assert keyed_api.get("/healthz").status_code == 200


# ---- PostgreSQL down -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_without_db(database, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serve") / "nodb.log", PINGTREE_API_KEYS="op-key",
                    PINGTREE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/pingtree_test")
    yield server
    server.stop()


def test_postgresql_down_is_503_never_a_false_202(api_without_db, clean_db):
    operator = {"Authorization": "Bearer op-key"}
    for headers in (operator, {**operator, "Idempotency-Key": f"k-{uuid.uuid4()}"}):
        answer = api_without_db.post(make_lead(), headers)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert "lead_id" not in answer.json()
    health = api_without_db.get("/healthz")
    assert health.status_code == 503
    assert health.json()["postgresql"].startswith("down") and health.json()["redis"] == "ok"
    assert api_without_db.get(f"/v1/leads/{uuid.uuid4()}", operator).status_code == 503
    # A publisher's key cannot be checked without PostgreSQL: 503, never let in unchecked.
    publisher = api_without_db.get(f"/v1/leads/{uuid.uuid4()}", {"Authorization": "Bearer ptk_x_y"})
    assert publisher.status_code == 503
    # Bad input is still bad input: judged before storage is needed.
    assert api_without_db.post(b"[]", operator).status_code == 400
    assert counts() == NOTHING


def test_a_broker_failure_after_the_commit_still_answers_with_the_stored_lead(clean_db,
                                                                              monkeypatch):
    from pipeline.service import intake
    from pipeline.service.nudges import Nudge

    def broker_down(nudges):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(intake, "dispatch", broker_down)
    lead_id = submit_lead(make_lead())                # stored: the sweep will re-drive it
    assert stored(lead_id)["status"] == "received"
    assert counts()["consents"] == 1
    monkeypatch.undo()
    intake.dispatch([Nudge("pingtree.validate_lead", (lead_id,))])   # as the sweep would
