"""The native protocol's ids, bodies and signatures, as the standard library would make them:
uuid5 ids, compact JSON, a Decimal price, an ISO deadline and HMAC-SHA256 (each now made with
less work a ping: one encoder, one keyed HMAC copied, the deadline written once an auction)."""
from __future__ import annotations

import base64
import hmac
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from pipeline.domain.instants import iso
from pipeline.domain.money import as_number
from pipeline.protocols import answers, native, signing

NAMES = ["a", "5f0e3d7c-6d6c-4ac2-9a7b-1d2c3b4a5e6f:b1:ping", "é€😀:" * 40, ""]


def test_ping_and_webhook_ids_are_uuid5_of_their_names():
    for name in NAMES:
        expected = uuid.uuid5(native.NAMESPACE, name)
        made = native._named.__wrapped__(name)
        assert made == expected and str(made) == str(expected) and made.version == 5
        assert native.webhook_id(name, "b1", "post") == "msg_" + uuid.uuid5(
            native.NAMESPACE, f"{name}:b1:post").hex


def test_a_price_is_the_float_nearest_its_exact_cents():
    rng = random.Random(7)
    cents = [*range(-1000, 100_000), *(rng.randrange(-2**62, 2**62) for _ in range(20_000)),
             2**53 - 1, 2**53, -2**53, 10**30, None]
    for c in cents:
        assert as_number(c) == (None if c is None else float(Decimal(c) / 100)), c
    for total in (Decimal(9000), Decimal("12345.67"), True):   # a PostgreSQL sum, a bool
        assert as_number(total) == float(Decimal(total) / 100) and type(as_number(total)) is float


def test_the_ping_body_is_compact_json_with_the_deadline_of_each_auction():
    view = {"lead_id": "l1", "vertical": "solar", "score": 55, "qualifiers": {"roof": "ok", "é": 1},
            "geo": {"zip": "94107", "city": "San Francisco", "state": "CA"}}
    first = datetime(2026, 11, 30, 4, 30, 0, 123456, tzinfo=UTC)
    # Equal instants, other objects and offsets: each is written as itself, never as the last one.
    for at in (first, first, first + timedelta(seconds=1),
               first.astimezone(timezone(timedelta(hours=1))), first):
        body = native.ping_body(view, ping_id="p1", cycle=1, bid_cents=1234, expires_at=at)
        assert body["expires_at"] == iso(at)
        assert native.dumps(body) == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_signatures_from_the_kept_key_are_those_of_a_fresh_hmac():
    secret = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
    for body in (b"", b"{}", b"x" * 5000, b"{}"):          # the same key, again and again
        expected = hmac.digest(bytes(range(7, 39)), b"msg_1.1700000000." + body, "sha256")
        assert signing.signature(secret, "msg_1", 1700000000, body) == "v1," + base64.b64encode(
            expected).decode()


def test_an_answer_is_read_as_json_loads_reads_it_and_hostile_ones_are_still_refused():
    assert answers.read_json(b'{"accept": true, "bid": 10.5}') == ({"accept": True, "bid": 10.5}, None)
    assert answers.read_json(b' [1] \n') == ([1], None)
    for hostile in (b"\xef\xbb\xbf{}", b'{"a": 1, "a": 2}', b"NaN", b"[Infinity]", b"{} {}", b"",
                    b"\xff"):
        doc, why = answers.read_json(hostile)
        assert doc is None and why in ("invalid_json", "invalid_utf8"), hostile
    assert answers.read_json(b"[" * 100_000) == (None, "too_deep")


def test_a_ping_is_written_byte_for_byte_as_its_body_encoded_whole():
    """The lead's part of a ping is written once an auction and kept with the very objects it
    was written from: each buyer's ping (its id and bid spliced in) is the body's compact JSON."""
    first = datetime(2026, 11, 30, 4, 30, 0, 123456, tzinfo=UTC)
    geo = {"zip": "94107", "city": "Säo \"Francisco\"\n", "state": "CA", "extra": "left out"}
    view = {"lead_id": uuid.UUID(int=7), "vertical": "solar", "score": 55, "geo": geo,
            "qualifiers": {"roof": "ok", "é": 1, "n": None, "f": 1.5, "l": [1, "😀"]}}
    other = {**view, "score": 55.0, "qualifiers": {**view["qualifiers"], "é": True}}   # equal, not alike
    cases = [(view, 1, 1234, first), (view, 1, None, first), (view, 2, 10**30, first),
             (other, 2, 1, first), (view, 2, 1, first + timedelta(seconds=1)),
             (view, 2, True, first.astimezone(timezone(timedelta(hours=1)))), (view, 2, 1, first)]
    for lead, cycle, bid, at in cases:
        for ping_id in (uuid.UUID(int=5), "p\"1"):
            body = native.ping_body(lead, ping_id=ping_id, cycle=cycle, bid_cents=bid, expires_at=at)
            assert native.ping_bytes(lead, ping_id=ping_id, cycle=cycle, bid_text=native.bid_json(bid),
                                     expires_at=at) == native.dumps(body)


def test_answers_and_bids_read_as_the_plain_decoder_and_parse_bid_read_them():
    """The answer's scanner called without JSONDecoder.decode, and bids read once per type and
    value: the same documents, refusals and cents as before, hostile ones included."""
    from pipeline.domain.money import parse_bid
    decoder = json.JSONDecoder(parse_constant=answers._refuse_constant,
                               object_pairs_hook=answers._no_duplicate_keys)
    texts = ['{"accept": true, "bid": 10.5}', " [1] \n", "\t{}\r", "", " ", "{} {}", "1 x", '"s"',
             "\ufeff{}", '{"a": 1, "a": 2}', "NaN", "[-Infinity]", "1e400", "[" * 3 + "]" * 3,
             "{" * 5, '{"a":', "9" * 5000, "null", " 0 ", '"\\ud800"']
    for text in texts:
        try:
            expected: tuple = (decoder.decode(text), None)
        except (ValueError, TypeError):
            expected = (None, "invalid_json")
        assert answers.read_json(text.encode()) == expected, text
    bids = [0, 1, -1, 10, 10.0, 10.5, 0.29, -0.0, 0.0, 1e400, float("nan"), 10000, 10000.01,
            10001, 2**63, -(2**63), "22.40", "$22.40", "1e3", " 12", "1_000", "x" * 39, "1" * 45,
            True, None, [1], {"a": 1}, Decimal("12.3"), 12.345678]
    for _ in range(2):                                   # read, then found again
        for bid in bids:
            try:
                expected_cents = parse_bid(bid)
            except (ArithmeticError, ValueError, TypeError):
                expected_cents = None
            assert answers.read_bid(bid) == expected_cents, bid
    assert answers.read_bid(10) == 1000 and answers.read_bid(10.0) == 1000 and answers.read_bid(0.1) == 10
