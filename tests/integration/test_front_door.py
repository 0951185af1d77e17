"""The API's front door: rate limits in Redis, slow clients, data errors, and /openapi.json
checked by schemathesis against the running server."""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from config.settings import settings
from pipeline.domain.leads import parse_lead
from pipeline.entrypoints.access import Gate, Limits, Refused, retry_after
from tests.helpers import Server, cli, make_lead

UNKNOWN = f"/v1/leads/{uuid.uuid4()}"


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# ---- rate limits ---------------------------------------------------------------------------

def test_a_key_over_its_rate_limit_gets_429_with_retry_after_across_api_processes(
        database, tmp_path):
    hot, cool = f"hot-{uuid.uuid4().hex}", f"cool-{uuid.uuid4().hex}"
    env = {"PINGTREE_API_KEYS": f"{hot},{cool}", "PINGTREE_RATE_LIMIT": "6/minute"}
    one, two = Server(tmp_path / "one.log", **env), Server(tmp_path / "two.log", **env)
    try:
        # Two API processes, one count: three requests on each use the key's six.
        for server in (one, two, one, two, one, two):
            assert server.get(UNKNOWN, bearer(hot)).status_code == 404
        for server in (one, two):
            over = server.get(UNKNOWN, bearer(hot))
            assert over.status_code == 429
            assert over.json() == {"error": "too many requests"}
            assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert one.post(make_lead(), bearer(hot)).status_code == 429
        # Another key has its own count.
        assert two.get(UNKNOWN, bearer(cool)).status_code == 404
    finally:
        one.stop()
        two.stop()


def test_an_address_that_fails_auth_too_often_gets_429_whatever_key_it_tries(database, tmp_path):
    good = f"good-{uuid.uuid4().hex}"
    # This address's failures of the last minute, counted in Redis by earlier tests' servers
    # (a wrong key is a failure from 127.0.0.1 too), would be counted against this one's limit.
    Limits(settings.redis_url, "1/minute", "1/minute").redis.delete(
        *Limits._window("auth-fail", "127.0.0.1"))
    server = Server(tmp_path / "fail.log", PINGTREE_API_KEYS=good,
                    PINGTREE_AUTH_FAIL_LIMIT="3/minute")
    try:
        assert server.get(UNKNOWN, bearer(good)).status_code == 404
        for attempt in range(3):
            assert server.get(UNKNOWN, bearer(f"guess-{attempt}")).status_code == 401
        guessing = server.get(UNKNOWN, bearer("guess-4"))
        assert guessing.status_code == 429 and int(guessing.headers["Retry-After"]) >= 1
        # The right key learns nothing either, and a forged X-Forwarded-For is not an address.
        assert server.get(UNKNOWN, bearer(good)).status_code == 429
        assert server.get(UNKNOWN, {**bearer(good), "X-Forwarded-For": "198.51.100.9"}
                          ).status_code == 429
        assert server.get("/healthz").status_code == 200
    finally:
        server.stop()


def test_one_round_trip_counts_a_key_and_tests_its_address_with_the_sliding_window(broker):
    limits = Limits(settings.redis_url, "3/minute", "2/minute")
    address, key = f"198.51.100.{uuid.uuid4().int % 250}", f"key-{uuid.uuid4().hex}"
    before = broker.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    for _ in range(3):
        limits.admit(address, key)
    assert broker.info("commandstats")["cmdstat_evalsha"]["calls"] - before == 3
    with pytest.raises(Refused) as over:
        limits.admit(address, key)
    assert over.value.status == 429 and 1 <= int(over.value.headers["Retry-After"]) <= 60
    limits.admit(address, f"key-{uuid.uuid4().hex}")       # another key: its own count
    # Two failures block the address for every key, a fresh one included; another address is free.
    limits.fail(address)
    limits.fail(address)
    with pytest.raises(Refused):
        limits.admit(address, f"key-{uuid.uuid4().hex}")
    with pytest.raises(Refused):
        limits.admit(address, None)
    limits.admit("203.0.113.7", key + "-other")
    # Half a window on, the previous window's 3 weigh 1 (rounded down): two more fit in 3.
    prefix = f"pingtree-limits:{{key/{key}}}"
    broker.rename(prefix, prefix + "/-1")
    broker.pexpire(prefix + "/-1", 30_000)
    limits.admit(address + "0", key)
    limits.admit(address + "0", key)
    with pytest.raises(Refused):
        limits.admit(address + "0", key)


def test_a_sliding_window_says_when_it_admits_again():
    assert retry_after(0, 0, 0, 0, 60_000) == 1
    assert retry_after(0, 0, 5, 42_300, 60_000) == 43            # the current window turns
    assert retry_after(6, 35_500, 0, 0, 60_000) == 6             # one of six stops counting


def test_without_keys_a_request_costs_the_gate_no_redis_round_trip(broker, database):
    gate = Gate((), settings.redis_url, "3/minute", "2/minute")
    before = broker.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    assert all(gate.admit("", "192.0.2.1").operator for _ in range(5))
    assert broker.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) == before


# ---- slow clients --------------------------------------------------------------------------

def half_open(port: int, count: int) -> list[socket.socket]:
    """Connections that start a request and never finish it (a slow-loris client)."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /v1/leads HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n")
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_half_open_connections_neither_block_healthz_nor_stay_open(database, tmp_path):
    server = Server(tmp_path / "slow.log", PINGTREE_HTTP_CHANNEL_TIMEOUT_S="4")
    socks = half_open(server.port, 150)
    try:
        # Before the time-out frees anything: 150 sockets are far below the connection limit.
        answer = requests.get(f"{server.url}/healthz", timeout=3)
        assert answer.status_code == 200
        # Idle past the channel time-out (4 s here, checked every 2 s): closed by the server.
        assert all(closed_by_server(s, 12) for s in socks)
    finally:
        for s in socks:
            s.close()
        server.stop()


def test_the_connection_limit_holds_and_the_time_out_frees_it(database, tmp_path):
    server = Server(tmp_path / "limit.log", PINGTREE_HTTP_CHANNEL_TIMEOUT_S="2",
                    PINGTREE_HTTP_CONNECTION_LIMIT="20")
    socks = half_open(server.port, 20)
    try:
        started = time.monotonic()
        answer = requests.get(f"{server.url}/healthz", timeout=15)
        waited = time.monotonic() - started
        assert answer.status_code == 200
        # It waited for the time-out to free a connection: the limit was reached, and held.
        assert waited >= 1.0, waited
    finally:
        for s in socks:
            s.close()
        server.stop()


# ---- database data errors ------------------------------------------------------------------

def test_a_value_postgresql_refuses_is_a_422_without_personal_data_in_the_log(
        clean_db, monkeypatch, caplog):
    from pipeline.entrypoints.http import create_app
    from pipeline.service import intake

    lead = parse_lead(make_lead(), datetime.now(UTC))
    lead["consent"]["ip"] = "fe80::1%eth0"       # as if the schema had let it through
    monkeypatch.setattr(intake, "parse_lead", lambda *args, **kwargs: lead)
    client = create_app().test_client()
    with caplog.at_level(logging.DEBUG):
        answer = client.post("/v1/leads", json=make_lead())
    assert answer.status_code == 422
    assert "nothing was stored" in answer.get_json()["errors"]["_schema"][0]
    assert "fe80" not in caplog.text and "eth0" not in answer.get_data(as_text=True)


def test_an_internal_error_is_a_500_whose_log_line_carries_no_message(clean_db, monkeypatch,
                                                                       caplog):
    from pipeline.entrypoints.http import create_app
    from pipeline.service import intake

    def broken(*args, **kwargs):
        raise RuntimeError("ana.lopez@example.com 203.0.113.7")

    monkeypatch.setattr(intake, "submit_lead", broken)
    with caplog.at_level(logging.DEBUG):
        answer = create_app().test_client().post("/v1/leads", json=make_lead())
    assert answer.status_code == 500 and answer.get_json() == {"error": "internal error"}
    assert "RuntimeError" in caplog.text
    assert "example.com" not in caplog.text and "203.0.113.7" not in caplog.text


# ---- the description, checked --------------------------------------------------------------

def test_openapi_describes_every_vertical_and_status(database, tmp_path):
    server = Server(tmp_path / "doc.log")
    try:
        doc = server.get("/openapi.json").json()
    finally:
        server.stop()
    schemas = doc["components"]["schemas"]
    variants = doc["paths"]["/v1/leads"]["post"]["requestBody"]["content"]["application/json"]
    verticals = {schemas[v["$ref"].rsplit("/", 1)[1]]["properties"]["vertical"]["enum"][0]
                 for v in variants["schema"]["oneOf"]}
    assert verticals == {"auto_insurance", "home_insurance", "health_insurance", "life_insurance",
                         "mortgage", "solar", "debt_relief"}
    assert schemas["SolarQualifiers"]["required"] == ["homeowner", "monthly_electric_bill"]
    assert set(doc["paths"]["/v1/leads"]["post"]["responses"]) == {
        "202", "400", "401", "403", "409", "413", "415", "422", "429", "503"}
    assert set(doc["paths"]["/v1/leads/{lead_id}"]["get"]["responses"]) == {
        "200", "401", "403", "404", "429", "503"}


@pytest.mark.timeout(180)
def test_schemathesis_finds_no_500_and_no_answer_outside_the_description(clean_db, workers,
                                                                          tmp_path):
    """Generated requests, valid and not, with a publisher's key (schemathesis also tries them
    without it): every answer is one the description allows, never a 500."""
    done = cli("publisher", "add", "fuzz", "--name", "Fuzzer", "--fixed", "1")
    key = done.stdout.strip()
    server = Server(tmp_path / "fuzz.log", PINGTREE_RATE_LIMIT="100000/minute",
                    PINGTREE_AUTH_FAIL_LIMIT="100000/minute")
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    try:
        run = subprocess.run(
            [schemathesis, "run", f"{server.url}/openapi.json", "--checks",
             "not_a_server_error,status_code_conformance,content_type_conformance,"
             "response_headers_conformance,response_schema_conformance",
             "--include-path-regex", "^/v1/",       # the probes answer 503 by design
             "--header", f"Authorization: Bearer {key}", "--max-time", "35", "--seed", "20261129",
             "--workers", "1", "--generation-database", "none", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=150)
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    assert "internal error" not in server.log_path.read_text()



# ---- POST /v1/leads outside Flask's request machinery ----------------------------------------

def _both_ways(client, body, headers, through_flask: bool):
    # Mounted under a SCRIPT_NAME, the route is Flask's; at the root, the API's own quick path.
    environ = {"SCRIPT_NAME": "/mounted"} if through_flask else {}
    answer = client.post("/v1/leads", data=body, headers=headers, environ_base=environ)
    return answer.status, list(answer.headers.items()), answer.get_data()


def test_the_quick_lead_route_answers_as_flasks_route_does(workers, clean_db, monkeypatch, caplog):
    import json

    from pipeline.entrypoints.http import create_app
    from pipeline.service import intake
    from tests.helpers import settle

    client = create_app().test_client()
    json_type = {"Content-Type": "application/json"}
    lead = make_lead()
    bad_lead = make_lead(contact__email="not an address", consent__ip="300.1.1.1")
    cases = [
        (json.dumps(bad_lead), json_type),                              # 422, field by field
        (json.dumps(lead), {"Content-Type": "text/plain"}),             # 415
        (json.dumps(lead), {"Content-Type": "application/json; charset=utf-8"}),   # 202
        (b'{"vertical": "solar",', json_type),                          # 400
        (b"[]", json_type),                                             # 400
        (b"x" * (settings.max_body_bytes + 1), json_type),              # 413
        (json.dumps(make_lead(vertical="mortgage")), {**json_type, "Idempotency-Key": "k-1"}),
        (json.dumps(make_lead(vertical="solar")), {**json_type, "Idempotency-Key": "k-1"}),  # 409
        (json.dumps(lead), {**json_type, "Idempotency-Key": ""}),       # 422
    ]
    for body, headers in cases:
        quick = _both_ways(client, body, headers, through_flask=False)
        flask = _both_ways(client, body, headers, through_flask=True)
        if quick[0] == "202 ACCEPTED":          # two leads: their ids differ, nothing else
            assert json.loads(quick[2]).keys() == json.loads(flask[2]).keys() == {"lead_id", "status"}
            quick, flask = quick[:2], flask[:2]
        assert quick == flask, (headers, quick, flask)
    assert _both_ways(client, json.dumps(bad_lead), json_type, False)[0] == "422 UNPROCESSABLE ENTITY"
    assert settle(20), "the accepted leads still moving through the pipeline"

    def broken(*args, **kwargs):
        raise RuntimeError("ana.lopez@example.com")

    monkeypatch.setattr(intake, "submit_lead", broken)
    with caplog.at_level(logging.ERROR, logger="pingtree.http"):
        assert _both_ways(client, json.dumps(lead), json_type, False) == \
            _both_ways(client, json.dumps(lead), json_type, True)
    quick_line, flask_line = (r.getMessage() for r in caplog.records)
    assert quick_line == flask_line
    assert quick_line.startswith("internal error on POST /v1/leads: RuntimeError at ")
