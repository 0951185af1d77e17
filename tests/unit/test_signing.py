"""Buyer secrets and signatures a Standard Webhooks library verifies (issue: plain secrets could not)."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from pipeline.domain.buyer_secret import new_secret, secret_problem
from pipeline.domain.leads import VERTICALS
from pipeline.domain.tree import InvalidTree, parse_tree
from pipeline.protocols import signing

GOOD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


BAD_SECRETS = {
    "missing": None,
    "empty": "",
    "plain": "a-long-plain-secret-that-is-not-base64-1234567890",
    "plain_base64_without_prefix": b64(bytes(range(32))),
    "not_base64": "whsec_this is not base64!!",
    "url_safe_alphabet": "whsec_" + b64(bytes(range(200, 232))).replace("+", "-").replace("/", "_")
    .replace("=", ""),
    "missing_padding": "whsec_" + b64(bytes(range(25))).rstrip("="),
    "short": "whsec_" + b64(bytes(range(16))),
    "not_random": "whsec_" + b64(b"a" * 32),
}


@pytest.mark.parametrize("name", sorted(BAD_SECRETS))
def test_a_secret_in_any_other_form_is_refused(name):
    assert secret_problem(BAD_SECRETS[name])


def test_a_fresh_secret_is_whsec_and_32_random_bytes():
    one, two = new_secret(), new_secret()
    assert one != two and secret_problem(one) is None
    assert len(base64.b64decode(one[len("whsec_"):])) == 32


def tree_with_secret(secret) -> str:
    buyer = {"id": "acme-1", "tier": 1, "verticals": ["solar"], "ping_url": "https://acme.example/ping",
             "post_url": "https://acme.example/post"}
    if secret is not None:
        buyer["secret"] = secret
    return json.dumps({"network": {}, "tiers": [{"tier": 1}], "buyers": [buyer]})


@pytest.mark.parametrize("name", sorted(BAD_SECRETS))
def test_tree_load_refuses_a_missing_short_or_plain_secret_with_the_buyer_and_a_hint(name):
    with pytest.raises(InvalidTree) as refused:
        parse_tree(tree_with_secret(BAD_SECRETS[name]), VERTICALS)
    [message] = refused.value.errors["buyers"]["acme-1"]["secret"]   # named by id
    assert "acme-1" in message and "pingtree buyer secret" in message


def test_tree_load_takes_a_valid_secret():
    assert parse_tree(tree_with_secret(GOOD), VERTICALS)["buyers"][0]["secret"] == GOOD


def test_signing_with_an_invalid_secret_raises_instead_of_sending_unsigned():
    with pytest.raises(ValueError):
        signing.sign_headers(None, "msg_1", 1700000000, b"{}")
    with pytest.raises(ValueError):
        signing.sign_headers("plain", "msg_1", 1700000000, b"{}")


def test_the_standard_webhooks_reference_vector():
    ref = signing.signature(GOOD, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert ref == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def at(monkeypatch, moment: datetime) -> None:
    """The library's clock, set to ``moment``."""
    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", Clock)


def test_the_library_verifies_what_pingtree_signs(monkeypatch):
    secret, other = new_secret(), new_secret()
    body, now = b'{"lead_id":"l-1","bid":30.0}', int(datetime.now(UTC).timestamp())
    headers = signing.sign_headers(secret, "msg_1", now, body)
    standardwebhooks.Webhook(secret).verify(body, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(b'{"lead_id":"l-1","bid":99.0}', headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(body, headers)
    at(monkeypatch, datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)
