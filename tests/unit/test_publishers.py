"""Publisher rules without services: payout arithmetic, payout options, the consent IP."""
from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from pipeline.adapters.publishers import Publisher, owed_cents
from pipeline.domain.leads import InvalidLead, parse_lead
from pipeline.domain.samples import make_lead
from pipeline.entrypoints.cli.common import UserError
from pipeline.entrypoints.cli.publishers import _rule


def publisher(kind: str, cents: int | None = None, share_bp: int | None = None) -> Publisher:
    return Publisher("p", "P", True, (), kind, cents, share_bp)


def test_a_fixed_payout_is_per_sold_lead_and_a_share_rounds_down_to_the_cent():
    assert owed_cents(publisher("fixed", cents=1250), sold=3, revenue_cents=99_999) == 3750
    assert owed_cents(publisher("share", share_bp=3333), sold=2, revenue_cents=4000) == 1333
    assert owed_cents(publisher("share", share_bp=6000), sold=1, revenue_cents=1999) == 1199
    assert owed_cents(publisher("share", share_bp=10000), sold=1, revenue_cents=1) == 1
    assert owed_cents(publisher("share", share_bp=0), sold=9, revenue_cents=10_000) == 0


@pytest.mark.parametrize(("fixed", "share", "expected"), [
    ("12.50", None, ("fixed", 1250, None)), ("0", None, ("fixed", 0, None)),
    (None, "60", ("share", None, 6000)), (None, "62.5%", ("share", None, 6250)),
    (None, "0.01", ("share", None, 1))])
def test_payout_options_are_exact(fixed, share, expected):
    assert _rule(argparse.Namespace(fixed=fixed, share=share), None) == expected


@pytest.mark.parametrize(("fixed", "share"), [
    ("12.505", None), ("-1", None), ("NaN", None), ("lots", None), (None, "100.5"),
    (None, "-5"), (None, "33.333"), (None, "Infinity"), ("1", "50"), (None, None)])
def test_payout_options_that_are_not_exact_are_refused(fixed, share):
    with pytest.raises(UserError):
        _rule(argparse.Namespace(fixed=fixed, share=share), None)


def test_an_ipv6_zone_in_the_consent_ip_is_refused_at_intake():
    import random
    lead = make_lead(random.Random(5), "solar", now=datetime.now(UTC))
    lead["consent"]["ip"] = "fe80::1%eth0"
    with pytest.raises(InvalidLead) as refused:
        parse_lead(lead, datetime.now(UTC))
    assert list(refused.value.errors) == ["consent"] and list(refused.value.errors["consent"]) == ["ip"]
    lead["consent"]["ip"] = "fe80::1"
    assert parse_lead(lead, datetime.now(UTC))["consent"]["ip"] == "fe80::1"
