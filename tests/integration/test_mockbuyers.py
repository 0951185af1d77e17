"""The simulated buyer fleet, served for real in a subprocess and spoken to over HTTP."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from pipeline.devtools.mockbuyers import (
    VERTICALS,
    BadFleet,
    MockBuyersProcess,
    buyers_from,
    fleet_from_flags,
    main,
    tree_for_fleet,
)
from pipeline.domain.buyer_secret import new_secret, secret_problem
from pipeline.protocols import signing

EXAMPLE_FLEET = str(Path(__file__).resolve().parents[2] / "config/examples/fleet.json")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

FLEET = {
    "defaults": {"latency_ms": 0, "hang_s": 0.5},
    "buyers": [
        {"id": "eager", "accept_rate": 1.0, "bid": [20.0, 40.0]},
        {"id": "picky", "accept_rate": 0.3, "bid": [10.0, 12.0], "reason": "not_interested"},
        {"id": "signed", "accept_rate": 1.0, "bid": 15.0, "secret": SECRET},
    ],
}


def ping_body(lead_id: str = "lead-1", **extra) -> dict:
    return {"ping_id": f"{lead_id}-p", "lead_id": lead_id, "vertical": "solar", "score": 81,
            "cycle": 1, "geo": {"zip": "33131", "city": "Miami", "state": "FL"},
            "qualifiers": {"homeowner": True, "monthly_electric_bill": 180},
            "bid": 34.0, "expires_at": "2026-11-22T10:00:10Z", **extra}


def post_body(lead_id: str = "lead-1") -> dict:
    return {"lead_id": lead_id, "ping_id": f"{lead_id}-p", "ping_ref": "eager-1", "price": 30.0,
            "vertical": "solar", "score": 81, "signals": {}, "qualifiers": {},
            "contact": {"first_name": "Ana", "email": "ana@example.com"}, "consent": {},
            "source": {}, "submitted_at": "2026-11-22T10:00:00Z"}


@pytest.fixture(scope="module")
def server():
    with MockBuyersProcess(FLEET, seed=7) as buyers:
        yield buyers


@pytest.fixture
def buyers(server):
    server.set_fleet(FLEET)
    server.reset()
    return server


def ping(buyers, buyer_id: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(f"{buyers.url}/{buyer_id}/ping", json=body, timeout=5, **kwargs)


def test_an_accept_carries_a_bid_in_range_with_cents(buyers):
    answer = ping(buyers, "eager", ping_body()).json()
    assert answer["accept"] is True
    assert 20.0 <= answer["bid"] <= 40.0
    assert round(answer["bid"], 2) == answer["bid"]
    assert answer["ref"].startswith("eager-")
    [record] = buyers.pings("lead-1")
    assert record["outcome"] == "accept" and record["bid"] == answer["bid"]
    assert record["ping_id"] == "lead-1-p" and record["cycle"] == 1


def test_the_accept_rate_holds_and_a_seed_makes_it_repeat(buyers):
    session = requests.Session()

    def answers() -> list[bool]:
        return [session.post(f"{buyers.url}/picky/ping", json=ping_body(f"lead-{i}"),
                             timeout=5).json()["accept"] for i in range(300)]

    first = answers()
    assert 0.22 <= sum(first) / len(first) <= 0.38
    assert buyers.stats("picky")["rejects"] == first.count(False)
    buyers.reset()
    assert answers() == first


def test_personal_data_in_a_ping_is_counted(buyers):
    ping(buyers, "eager", ping_body())
    assert buyers.stats("eager")["pii_violations"] == 0
    ping(buyers, "eager", ping_body(contact={"first_name": "Ana"}))
    ping(buyers, "eager", ping_body(qualifiers={"homeowner": True, "Email": "a@b.c"}))
    assert buyers.stats("eager")["pii_violations"] == 2
    # Hashes are what a pre-ping is meant to carry.
    requests.post(f"{buyers.url}/eager/pre_ping", timeout=5,
                  json=ping_body(phone_sha256="ab" * 32, email_sha256="cd" * 32))
    assert buyers.stats("eager")["pii_violations"] == 2


def test_signatures_are_checked_with_the_buyer_secret(buyers):
    body = json.dumps(ping_body()).encode()
    now = int(time.time())
    good = signing.sign_headers(SECRET, "msg-1", now, body)
    forged = signing.sign_headers(new_secret(), "msg-1", now, body)
    for headers in (good, forged, {}):
        response = requests.post(f"{buyers.url}/signed/ping", data=body, timeout=5,
                                 headers={**headers, "Content-Type": "application/json"})
        assert response.json()["accept"] is True      # counted, not enforced by default
    assert buyers.stats("signed")["bad_signatures"] == 2
    assert [p["signature_ok"] for p in buyers.pings("lead-1")] == [True, False, False]
    assert buyers.stats("eager")["bad_signatures"] == 0


MALFORMED = {
    "non_ascii_signature": {"webhook-signature": "v1,\u00e9\u00e9\u00e9".encode("utf-8")},
    "huge_timestamp": {"webhook-timestamp": "9" * 400},
    "non_numeric_timestamp": {"webhook-timestamp": "soon"},
    "unicode_digit_timestamp": {"webhook-timestamp": "\u0661\u0662".encode("utf-8")},
    "no_comma": {"webhook-signature": "v1"},
    "not_base64": {"webhook-signature": "v1,@@@@"},
    "missing_id": {"webhook-id": ""},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_buyer_that_enforces_signatures_refuses_malformed_headers_without_failing(buyers, name):
    buyers.set_fleet({"buyers": [{"id": "strict", "accept_rate": 1, "bid": 9.0, "secret": SECRET,
                                  "enforce_signature": True}]})
    body = json.dumps(ping_body()).encode()
    headers = {**signing.sign_headers(SECRET, "msg-1", int(time.time()), body), **MALFORMED[name]}
    response = requests.post(f"{buyers.url}/strict/ping", data=body, timeout=5,
                             headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 401
    assert buyers.stats("strict")["bad_signatures"] == 1


def test_every_simulated_buyer_has_a_valid_secret_in_its_tree(buyers):
    tree = buyers.tree()
    assert all(secret_problem(b["secret"]) is None for b in tree["buyers"])
    assert len({b["secret"] for b in tree["buyers"]}) == len(tree["buyers"])


def test_a_post_is_idempotent_per_key(buyers):
    url = f"{buyers.url}/eager/post"
    headers = {"Idempotency-Key": "lead-9", "webhook-id": "post-lead-9-eager"}
    first = requests.post(url, json=post_body("lead-9"), headers=headers, timeout=5)
    again = requests.post(url, json=post_body("lead-9"), headers=headers, timeout=5)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"accepted": True}
    [post] = buyers.posts()
    assert post["lead_id"] == "lead-9" and post["idempotency_key"] == "lead-9"
    assert post["webhook_id"] == "post-lead-9-eager" and post["ping_ref"] == "eager-1"
    assert post["duplicates"] == 1 and "contact" not in post
    stats = buyers.stats("eager")
    assert (stats["posts"], stats["post_accepts"], stats["post_duplicates"]) == (1, 1, 1)


def test_a_rejected_post_stays_rejected_and_a_post_needs_contact(buyers):
    fleet = {"buyers": [{"id": "eager", "post_reject_rate": 1.0, "post_reject_reason": "dup"}]}
    buyers.set_fleet(fleet)
    url = f"{buyers.url}/eager/post"
    for _ in range(2):
        answer = requests.post(url, json=post_body(), headers={"Idempotency-Key": "lead-1"},
                               timeout=5)
        assert answer.json() == {"accepted": False, "reason": "dup"}
    no_contact = {k: v for k, v in post_body("lead-2").items() if k != "contact"}
    answer = requests.post(url, json=no_contact, headers={"Idempotency-Key": "lead-2"}, timeout=5)
    assert answer.status_code == 400
    stats = buyers.stats("eager")
    assert stats["post_rejects"] == 2 and stats["post_missing_contact"] == 1


def test_a_fleet_change_takes_effect_at_once(buyers):
    assert ping(buyers, "eager", ping_body()).json()["accept"] is True
    buyers.set_fleet({"buyers": [
        {"id": "eager", "accept_rate": 0.0, "reason": "budget"},
        {"id": "broken", "error_rate": 1.0},
        {"id": "garbled", "invalid_json_rate": 1.0},
        {"id": "hanging", "hang_rate": 1.0, "hang_s": 0.5},
    ]})
    assert ping(buyers, "eager", ping_body()).json() == {"accept": False, "reason": "budget"}
    assert ping(buyers, "broken", ping_body()).status_code == 500
    assert ping(buyers, "picky", ping_body()).status_code == 404     # left out: gone
    garbled = ping(buyers, "garbled", ping_body())
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()
    with pytest.raises(requests.Timeout):
        requests.post(f"{buyers.url}/hanging/ping", json=ping_body(), timeout=0.15)
    stats = buyers.stats()["buyers"]
    assert stats["broken"]["errors"] == stats["garbled"]["invalid_json"] == 1
    assert stats["hanging"]["hangs"] == 1
    with pytest.raises(BadFleet):
        buyers.set_fleet({"buyers": [{"id": "eager", "acept_rate": 1.0}]})


def test_an_unknown_buyer_is_404(buyers):
    for kind in ("ping", "pre_ping", "post"):
        response = requests.post(f"{buyers.url}/nobody/{kind}", json=ping_body(), timeout=5)
        assert response.status_code == 404


def test_pre_ping_answers_eligibility(buyers):
    buyers.set_fleet({"buyers": [{"id": "eager", "pre_ping_eligible_rate": 0.0}]})
    answer = requests.post(f"{buyers.url}/eager/pre_ping", json=ping_body(), timeout=5).json()
    assert answer == {"eligible": False}
    assert buyers.pings("lead-1")[0]["kind"] == "pre_ping"


def test_the_tree_points_at_the_fleet():
    fleet = fleet_from_flags(3, accept_rate=0.5, bid=(10.0, 20.0), secret=SECRET)
    assert list(buyers_from(fleet)) == ["buyer-01", "buyer-02", "buyer-03"]
    tree = tree_for_fleet(fleet, "http://127.0.0.1:9100/")
    first = tree["buyers"][0]
    assert first["ping_url"] == "http://127.0.0.1:9100/buyer-01/ping"
    assert first["post_url"] == "http://127.0.0.1:9100/buyer-01/post"
    assert first["pre_ping_url"] is None and first["verticals"] == list(VERTICALS)
    assert first["bid"] == 15.0 and first["secret"] == SECRET and "geo" not in first
    assert tree["tiers"] == [{"tier": 1, "name": "main", "mode": "auction"}]


def test_the_example_fleet_and_the_cli_print_a_tree(capsys):
    assert main(["--config", EXAMPLE_FLEET, "--print-tree"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert len(tree["buyers"]) == 13
    assert {b["tier"] for b in tree["buyers"]} == {t["tier"] for t in tree["tiers"]}
    # Native buyers and one integration buyer of every style, the tree file checked in beside it.
    styles = {b["id"]: "integration" in b for b in tree["buyers"]}
    assert sum(styles.values()) == 5
    assert tree == json.loads((Path(EXAMPLE_FLEET).parent / "tree.json").read_text())
    assert main(["--buyers", "2", "--config", EXAMPLE_FLEET]) == 2
