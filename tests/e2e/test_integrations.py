"""Buyers that speak their own APIs, through the whole pipeline with real HTTP to buyers of each style."""
from __future__ import annotations

import hashlib
import json

import pytest

from pipeline import submit_lead
from pipeline.adapters import db, store
from tests.helpers import WORKER_LOG, cli, load_tree, make_lead, wait_for

pytestmark = pytest.mark.integration

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 300, "duplicate_window_h": 0, "stuck_after_s": 60}
# How each style's integration (pipeline/devtools/mockbuyers/styles.py) writes the phone.
PHONE_SHAPES = {"xml": "digits", "form": "digits", "json": "dashed", "text": "dashed", "direct": "e164"}


def setup(buyers, *fleet_buyers: dict, mode: str = "auction") -> dict:
    buyers.set_fleet({"defaults": {"latency_ms": 2}, "buyers": list(fleet_buyers)})
    return load_tree(buyers.tree(tiers=[{"tier": 1, "mode": mode}], network=NETWORK))


@pytest.mark.parametrize("style", ["xml", "form", "json", "text"])
def test_sold_at_the_bid_read_from_the_buyers_own_answer_and_its_ref_comes_back_in_the_post(
        clean_db, workers, buyers, style):
    setup(buyers, {"id": f"{style}-buyer", "style": style, "accept_rate": 1, "bid": 17.25,
                   "api_key": "k3y-" + style * 2})
    lead_id = submit_lead(make_lead("solar", seed=3))

    view = wait_for(lead_id, ("sold",))
    assert view["sale"] == {**view["sale"], "buyer_id": f"{style}-buyer", "price": 17.25}
    [ping] = buyers.pings(lead_id)
    assert ping["outcome"] == "accept" and ping["ref"]
    [post] = buyers.posts(lead_id)
    assert post["ping_ref"] == ping["ref"]              # PingId / TXID / token echoed in the post
    assert post["price"] == 17.25 and post["accepted"]
    assert post["phone_shape"] == PHONE_SHAPES[style]   # the phone as the template writes it
    assert post["idempotency_key"] == lead_id
    stats = buyers.stats(f"{style}-buyer")
    assert stats["bad_credentials"] == 0 and stats["bad_requests"] == 0 and stats["pii_violations"] == 0


def test_value_formats_as_the_templates_say(clean_db, workers, buyers):
    setup(buyers, {"id": "form-buyer", "style": "form", "accept_rate": 1, "bid": 9.0},
          {"id": "json-buyer", "style": "json", "accept_rate": 1, "bid": 8.0},
          {"id": "text-buyer", "style": "text", "accept_rate": 1, "bid": 7.0})
    lead_id = submit_lead(make_lead("home_insurance", seed=5, qualifiers__property_type="single_family"))
    wait_for(lead_id, ("sold",))
    pings = {p["buyer_id"]: p for p in buyers.pings(lead_id)}
    form = pings["form-buyer"]["fields"]
    assert form["Lead.Homeowner"] == "Unknown"          # home insurance has no homeowner qualifier
    assert form["Lead.Zip"].isdigit() and len(form["Lead.Zip"]) == 5
    attributes = pings["json-buyer"]["fields"]["attributes"]
    assert attributes["property_type"] == "Single Family"  # value_map
    assert isinstance(attributes["quality"], int)           # a lone {{ score }} stays a number
    assert pings["json-buyer"]["fields"]["product"] == "HOME_INSURANCE"
    assert pings["text-buyer"]["method"] == "GET"
    assert pings["text-buyer"]["fields"]["vertical"] == "home_insurance"


def test_consent_text_with_ampersand_and_angle_bracket_is_escaped_in_an_xml_post(clean_db, workers, buyers):
    setup(buyers, {"id": "exchange", "style": "xml", "accept_rate": 1, "bid": 20.0})
    lead = make_lead("solar", seed=8)
    lead["consent"]["text"] = 'I agree that Sun & Co <partners> may call me "today"; 5 < 6 & 7 > 3.'
    lead_id = submit_lead(lead)
    wait_for(lead_id, ("sold",))
    [post] = buyers.posts(lead_id)
    # The buyer parsed the XML and read back exactly the text the consumer agreed to.
    assert post["consent_text_sha256"] == hashlib.sha256(lead["consent"]["text"].encode()).hexdigest()
    assert buyers.stats("exchange")["bad_requests"] == 0


def test_a_rejection_is_recorded_with_the_buyers_reason(clean_db, workers, buyers):
    setup(buyers, {"id": "exchange", "style": "xml", "accept_rate": 0, "reason": "no coverage"},
          {"id": "oldie", "style": "text", "accept_rate": 0, "reason": "cap"})
    lead_id = submit_lead(make_lead("solar", seed=9))
    view = wait_for(lead_id, ("unsold",))
    reasons = {p["buyer_id"]: (p["outcome"], p["reason"]) for p in view["pings"]}
    assert reasons == {
        "exchange": ("reject", "answer did not match the accept rule: Status=Rejected, Reason=no coverage"),
        "oldie": ("reject", "answer did not match the accept rule: answer=REJECTED|cap, reason=cap")}


@pytest.mark.parametrize("style,why", [("xml", "unreadable answer: not XML"),
                                       ("json", "unreadable answer: not JSON"),
                                       ("text", "answer did not match the accept rule")])
def test_a_malformed_answer_is_a_pass_with_a_reason(clean_db, workers, buyers, style, why):
    setup(buyers, {"id": "broken", "style": style, "accept_rate": 1, "invalid_json_rate": 1},
          {"id": "fine", "style": "form", "accept_rate": 1, "bid": 5.0})
    lead_id = submit_lead(make_lead("solar", seed=10))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "fine"
    [broken] = [p for p in view["pings"] if p["buyer_id"] == "broken"]
    assert broken["outcome"] in ("error", "reject") and broken["reason"].startswith(why)
    assert buyers.stats("broken")["pings"] == 1           # never retried


def test_a_direct_post_buyer_takes_its_turn_at_its_standing_bid_and_its_post_decides(
        clean_db, workers, buyers):
    setup(buyers, {"id": "direct-no", "style": "direct", "bid": 30.0, "post_reject_rate": 1,
                   "post_reject_reason": "duplicate", "tree": {"priority": 9}},
          {"id": "direct-yes", "style": "direct", "bid": 12.0, "tree": {"priority": 5}},
          mode="waterfall")
    lead_id = submit_lead(make_lead("solar", seed=11))
    view = wait_for(lead_id, ("sold",))
    assert view["sale"]["buyer_id"] == "direct-yes" and view["sale"]["price"] == 12.0
    outcomes = {p["buyer_id"]: (p["outcome"], p["reason"]) for p in view["pings"]}
    assert outcomes["direct-no"] == (
        "post_rejected", "answer did not match the accept rule: status=rejected, reason=duplicate")
    assert outcomes["direct-yes"][0] == "accept"
    assert [p["buyer_id"] for p in buyers.posts(lead_id)] == ["direct-no", "direct-yes"]
    assert buyers.stats("direct-yes")["pings"] == 0        # no ping API: nothing but the post


def test_credentials_are_masked_in_tree_show_and_absent_from_views_and_logs(clean_db, workers, buyers):
    key = "sk_live_Zq81xWvUte3"
    setup(buyers, {"id": "exchange", "style": "xml", "accept_rate": 1, "bid": 20.0, "api_key": key,
                   "post_reject_rate": 1, "post_reject_reason": f"bad key {key}"})
    lead_id = submit_lead(make_lead("solar", seed=12))
    view = wait_for(lead_id, ("unsold",))
    shown = cli("tree", "show")
    assert shown.returncode == 0
    [entry] = json.loads(shown.stdout)["buyers"]
    assert entry["credentials"] == {"api_key": "***"}
    # What tree show prints loads back: "***" keeps the stored credential.
    path = WORKER_LOG.parent / "shown-tree.json"
    path.write_text(shown.stdout)
    assert cli("tree", "load", str(path)).returncode == 0
    with db.transaction() as cur:
        assert store.buyers(cur)[0].credentials == {"api_key": key}
    lead_cli = cli("lead", lead_id, "--json")
    for text in (shown.stdout, lead_cli.stdout, json.dumps(view), WORKER_LOG.read_text()):
        assert key not in text
    [ping] = [p for p in view["pings"] if p["buyer_id"] == "exchange"]
    assert ping["outcome"] == "post_rejected" and "***" in ping["reason"]   # an echoed key is masked


def test_buyer_test_prints_the_requests_with_credentials_masked_and_sends_only_the_ping(
        clean_db, buyers, tmp_path):
    key = "tok_9f8e7d6c5b4a"
    setup(buyers, {"id": "owned", "style": "json", "accept_rate": 1, "bid": 22.4, "api_key": key})
    lead = make_lead("solar", seed=13)
    path = tmp_path / "lead.json"
    path.write_text(json.dumps(lead))

    shown = cli("buyer", "test", "owned", "--lead", str(path))
    assert shown.returncode == 0, shown.stderr
    assert key not in shown.stdout
    assert "Authorization: Bearer ***" in shown.stdout
    assert f"POST {buyers.url}/owned/ping" in shown.stdout and f"POST {buyers.url}/owned/post" in shown.stdout
    digits = "".join(c for c in lead["contact"]["phone"] if c.isdigit())
    assert f'"phone":"{digits[:3]}-{digits[3:6]}-{digits[6:]}"' in shown.stdout   # the post, dashed
    assert buyers.stats("owned")["pings"] == 0

    sent = cli("buyer", "test", "owned", "--send")
    assert sent.returncode == 0, sent.stderr
    assert '"decision": "accept"' in sent.stdout and '"offer": "$22.40"' in sent.stdout
    assert "read as: accept  bid 22.40  ref owned-1" in sent.stdout
    assert key not in sent.stdout
    stats = buyers.stats("owned")
    assert stats["pings"] == 1 and stats["posts"] == 0 and stats["bad_credentials"] == 0
    assert cli("buyer", "test", "nobody").returncode == 1


def test_a_ping_template_reaching_for_contact_data_is_refused_at_load(clean_db, buyers, tmp_path):
    buyers.set_fleet({"buyers": [{"id": "exchange", "style": "xml"}]})
    tree = buyers.tree(tiers=[{"tier": 1, "mode": "auction"}], network=NETWORK)
    ping = tree["buyers"][0]["integration"]["ping"]
    ping["body"] = "<Lead>\n  <Zip>{{ geo.zip }}</Zip>\n  <Phone>{{ contact.phone }}</Phone>\n</Lead>"
    tree["buyers"][0]["integration"]["post"]["url"] = "{{ credentials.missing }}"
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(tree))
    result = cli("tree", "load", str(path))
    assert result.returncode == 2 and "nothing was loaded" in result.stderr
    refusal = "buyers.exchange.integration: integration.ping.body: line 3: contact is personal data"
    assert refusal in result.stderr
    assert "integration.post.url (sample solar lead)" in result.stderr   # every problem, not the first
    with db.transaction() as cur:
        assert store.buyers(cur) == []
