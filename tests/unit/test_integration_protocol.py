"""Buyer integrations as pure translations: templates, escaping, answer rules, load-time checks."""
from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from pipeline.domain.integration_schema import IntegrationSchema
from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import InvalidTree
from pipeline.protocols.integration.check import sample_facts
from pipeline.protocols.integration.protocol import IntegrationProtocol
from pipeline.protocols.integration.templates import phone, value_map, yesno
from pipeline.protocols.interface import Answer, Outgoing
from pipeline.protocols.registry import parse_tree

JSON_ANSWER = {"format": "json", "accept": {"path": "result.decision", "equals": "accept"},
               "bid": {"path": "result.offer"}, "ref": {"path": "result.token"},
               "reason": {"path": "result.why"}}


def protocol(ping: dict | None, post: dict | None = None, *, credentials=None, bid_cents=None):
    integration = IntegrationSchema().load(
        {**({"ping": ping} if ping else {}),
         "post": post or {"url": "https://b.example/post", "body": {"lead": "{{ lead_id }}"}}})
    problems: list[str] = []
    built = IntegrationProtocol("b", integration, credentials or {"key": "s3cr3t-key"},
                                bid_cents=bid_cents, secret=None, problems=problems)
    assert problems == []
    return built


def json_ping(body, **extra) -> dict:
    return {"url": "https://b.example/ping", "format": "json", "body": body, "answer": JSON_ANSWER, **extra}


def test_value_filters():
    styles = ("e164", "digits", "digits11", "dashed", "dotted", "paren")
    assert [phone("+13055550142", s) for s in styles] == [
        "+13055550142", "3055550142", "13055550142", "305-555-0142", "305.555.0142", "(305) 555-0142"]
    assert (yesno(True), yesno(False), yesno(None, none="?"), yesno(True, "Y", "N")) == (
        "Yes", "No", "?", "Y")
    assert value_map("single_family", {"single_family": "Single Family"}) == "Single Family"
    assert value_map("igloo", {"single_family": "Single Family"}, default="Other") == "Other"


def test_a_json_body_keeps_numbers_numbers_and_escapes_every_string():
    p = protocol(json_ping({"zip": "{{ geo.zip }}", "bill": "{{ qualifiers.monthly_electric_bill }}",
                            "home": "{{ qualifiers.homeowner }}", "bid": "{{ bid }}",
                            "label": 'Zip "{{ geo.zip }}"', "key": "{{ credentials.key }}"}))
    ping, _ = sample_facts("solar")
    ping["geo"] = {**ping["geo"], "zip": '33"131'}
    out = p.ping(ping, 0)
    body = json.loads(out.body)
    assert body["bill"] == ping["qualifiers"]["monthly_electric_bill"] and isinstance(body["bill"], int)
    assert body["home"] is ping["qualifiers"]["homeowner"]
    assert body["bid"] == 25 and body["zip"] == '33"131' and body["label"] == 'Zip "33"131"'
    assert body["key"] == "s3cr3t-key" and out.headers["Content-Type"] == "application/json"


def test_xml_escapes_every_substitution_and_form_and_query_encode_theirs():
    xml = protocol({"url": "https://b.example/ping", "format": "xml",
                    "body": "<Lead><City>{{ geo.city }}</City></Lead>",
                    "answer": {"format": "xml", "accept": {"path": "//Status", "equals": "ok"}}})
    ping, _ = sample_facts("solar")
    ping["geo"] = {**ping["geo"], "city": "Tom & Jerry <Town>"}
    assert xml.ping(ping, 0).body == b"<Lead><City>Tom &amp; Jerry &lt;Town&gt;</City></Lead>"
    form = protocol({"url": "https://b.example/ping", "format": "form",
                     "body": {"Lead.City": "{{ geo.city }}"}, "answer": JSON_ANSWER})
    assert parse_qs(form.ping(ping, 0).body.decode()) == {"Lead.City": ["Tom & Jerry <Town>"]}
    query = protocol({"method": "GET", "url": "https://b.example/ping?v=1", "format": "query",
                      "body": {"city": "{{ geo.city }}"}, "answer": JSON_ANSWER})
    out = query.ping(ping, 0)
    assert out.method == "GET" and out.body == b""
    assert out.url == "https://b.example/ping?v=1&city=Tom+%26+Jerry+%3CTown%3E"


def test_auth_kinds():
    ping, _ = sample_facts("solar")
    for auth, header, value in (
            ({"type": "bearer", "token": "{{ credentials.key }}"}, "Authorization", "Bearer s3cr3t-key"),
            ({"type": "basic", "username": "u", "password": "{{ credentials.key }}"}, "Authorization",
             "Basic dTpzM2NyM3Qta2V5"),
            ({"type": "header", "name": "X-Api-Key", "value": "{{ credentials.key }}"}, "X-Api-Key",
             "s3cr3t-key")):
        assert protocol(json_ping({}, auth=auth)).ping(ping, 0).headers[header] == value


@pytest.mark.parametrize("answer,outcome,bid,ref,reason", [
    ({"result": {"decision": "accept", "offer": "$22.40", "token": "T-1"}}, "accept", 2240, "T-1", None),
    ({"result": {"decision": "Accept", "offer": 17.25}}, "accept", 1725, None, None),
    ({"result": {"decision": "accept", "offer": "1,250.50 USD"}}, "accept", 125050, None, None),
    ({"result": {"decision": "accept"}}, "accept", 900, None, None),          # the standing bid
    ({"result": {"decision": "decline", "why": "cap"}}, "reject", None, None,
     "answer did not match the accept rule: decision=decline, why=cap"),
    ({"result": {"decision": "accept", "offer": "lots"}}, "error", None, None, "invalid bid: lots"),
    ({"result": {"decision": "accept", "offer": "-3"}}, "error", None, None, "invalid bid: -3"),
    ({"result": {"decision": "decline", "why": "bad key s3cr3t-key"}}, "reject", None, None,
     "answer did not match the accept rule: decision=decline, why=bad key ***"),
])
def test_a_json_answer_reads_by_its_rules(answer, outcome, bid, ref, reason):
    got = protocol(json_ping({}), bid_cents=900).read_ping(200, json.dumps(answer).encode(), 7)
    assert (got.outcome, got.bid_cents, got.ref, got.reason, got.latency_ms) == (outcome, bid, ref, reason, 7)


@pytest.mark.parametrize("body,reason", [
    (b'{"result": {"decision": "acc', "unreadable answer: not JSON (invalid_json)"),
    (b"[" * 100_000, "unreadable answer: not JSON (too_deep)"),
    (b"\xff\xfe", "unreadable answer: not JSON (invalid_utf8)"),
])
def test_a_malformed_answer_is_a_pass_never_an_exception(body, reason):
    assert protocol(json_ping({})).read_ping(200, body, 1) == Answer("error", reason=reason, latency_ms=1)
    assert protocol(json_ping({})).read_ping(503, b"", 1).reason == "http_503"


def test_xml_answers_are_read_without_entities_and_by_xpath():
    p = protocol({"url": "https://b.example/ping", "format": "xml", "body": "<L/>",
                  "answer": {"format": "xml",
                             "accept": {"path": "/PingResponse/Status", "one_of": ["Accepted"]},
                             "bid": {"path": "/PingResponse/Price"}, "ref": {"path": "/PingResponse/@id"},
                             "reason": {"path": "/PingResponse/Reason"}}})
    ok = p.read_ping(
        200, b'<PingResponse id="P-9"><Status>Accepted</Status><Price>17.25</Price></PingResponse>', 1)
    assert (ok.outcome, ok.bid_cents, ok.ref) == ("accept", 1725, "P-9")
    bomb = (b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<PingResponse>&b;</PingResponse>")
    assert p.read_ping(200, bomb, 1).reason == "unreadable answer: not XML"


def test_text_answers_are_read_by_patterns():
    p = protocol({"method": "GET", "url": "https://b.example/ping", "format": "query", "body": {},
                  "answer": {"format": "text", "accept": {"pattern": "^ACCEPTED\\|"},
                             "bid": {"pattern": "^ACCEPTED\\|([0-9.]+)"},
                             "ref": {"pattern": "^ACCEPTED\\|[^|]*\\|(.+)$"},
                             "reason": {"pattern": "^REJECTED\\|(.*)$"}}})
    ok = p.read_ping(200, b"ACCEPTED|9.50|REF-123", 1)
    assert (ok.outcome, ok.bid_cents, ok.ref) == ("accept", 950, "REF-123")
    assert p.read_ping(200, b"REJECTED|cap", 1).reason == (
        "answer did not match the accept rule: answer=REJECTED|cap, reason=cap")


def test_a_direct_post_buyer_is_taken_at_its_standing_bid_without_a_request():
    p = protocol(None, bid_cents=4000)
    ping, post = sample_facts("solar")
    assert not p.pings and p.ping(ping, 0) == Answer(
        "accept", bid_cents=4000, reason="direct post: its post answer decides", latency_ms=0)
    assert isinstance(p.post(post, 0), Outgoing)


def test_a_template_failing_for_one_lead_is_a_pass_with_a_reason_that_holds_no_value():
    p = protocol(json_ping({"type": "{{ qualifiers.roof_shade | value_map({'no_shade': 'None'}) }}"}))
    ping, _ = sample_facts("solar")
    ping["qualifiers"] = {**ping["qualifiers"], "roof_shade": "Ana Lopez"}
    answer = p.ping(ping, 0)
    assert answer.outcome == "error" and "value_map" in answer.reason and "Ana" not in answer.reason


def tree_with(integration: dict, tier_mode: str = "auction", **buyer) -> str:
    return json.dumps({"network": {}, "tiers": [{"tier": 1, "mode": tier_mode}], "buyers": [
        {"id": "b1", "tier": 1, "verticals": ["solar", "auto_insurance"], "integration": integration,
         "credentials": {"key": "k"}, **buyer}]})


def test_tree_load_refuses_every_problem_of_an_integration_at_once():
    integration = {
        "ping": {"url": "https://b.example/ping", "format": "xml",
                 "body": "<Lead>\n<Zip>{{ geo.zip }}</Zip>\n<Email>{{ contact.email }}</Email>\n</Lead>",
                 "answer": {"format": "xml", "accept": {"path": "//[", "equals": "ok"}}},
        "post": {"url": "https://b.example/post", "format": "json",
                 "body": {"bill": "{{ qualifiers.monthly_electric_bill }}", "x": "{{ nope }}"}}}
    with pytest.raises(InvalidTree) as refused:
        parse_tree(tree_with(integration), VERTICALS)
    problems = refused.value.errors["buyers"]["b1"]["integration"]
    text = "\n".join(problems)
    assert "integration.ping.body: line 3: contact is personal data" in text
    assert "integration.ping.answer.accept: cannot compile '//['" in text
    assert "integration.post.body.x: line 1: unknown variable 'nope'" in text
    # A qualifier the auto_insurance sample does not have: the leaf, the vertical and the name.
    assert ("integration.post.body.bill (sample auto_insurance lead): 'dict object' has no attribute"
            " 'monthly_electric_bill'") in text
    assert len(problems) == 4


def test_tree_load_checks_shape_and_direct_post_rules():
    post = {"url": "https://b.example/post", "body": {"a": "{{ lead_id }}"}}
    with pytest.raises(InvalidTree) as refused:
        parse_tree(tree_with({"post": post}), VERTICALS)
    errors = refused.value.errors["buyers"]["b1"]
    assert "waterfall or round_robin" in errors["integration"][0] and "standing bid" in errors["bid"][0]
    loaded = parse_tree(tree_with({"post": post}, "waterfall", bid=12.5), VERTICALS)
    assert loaded["buyers"][0]["bid_cents"] == 1250
    with pytest.raises(InvalidTree) as refused:
        parse_tree(tree_with({"post": {**post, "format": "xml"}, "ping": {"url": "u", "method": "GET"}},
                             ping_url="https://x.example/p"), VERTICALS)
    errors = refused.value.errors["buyers"]["b1"]
    assert "xml body is a template string" in str(errors["integration"]["post"])
    assert "accept rule" in str(errors["integration"]["ping"])
    with pytest.raises(InvalidTree) as refused:
        parse_tree(tree_with({"post": post}, "waterfall", bid=1, ping_url="https://x.example/p"), VERTICALS)
    assert refused.value.errors["buyers"]["b1"] == {
        "ping_url": ["an integration buyer has its URLs in its integration"]}


def test_money_in_the_template_is_exact():
    p = protocol(json_ping({"price": "{{ bid | money }}", "raw": "{{ bid }}"}))
    ping, _ = sample_facts("solar")
    ping["bid_cents"] = 1999
    body = json.loads(p.ping(ping, 0).body, parse_float=Decimal)
    assert body == {"price": "19.99", "raw": Decimal("19.99")}
