"""Hostile buyer answers: whatever the bytes, the reader returns a pass or a rejection with a reason."""
from __future__ import annotations

import json

import pytest

from pipeline.protocols import answers
from pipeline.protocols import native as protocol

DEEP = b"[" * 5000
HOSTILE_BODIES = {
    "deep_list": DEEP,
    "deep_object": b'{"a":' * 5000,
    "deep_inside_accept": b'{"accept": true, "bid": 50, "x": ' + DEEP + b"}",
    "invalid_utf8": b'{"accept": true, "bid": 50, "ref": "\xff\xfe"}',
    "huge_int": b'{"accept": true, "bid": ' + b"9" * 5000 + b"}",
    "huge_float": b'{"accept": true, "bid": 1e999999}',
    "huge_exponent_text": b'{"accept": true, "bid": "1e999999999"}',
    "tiny_exponent_text": b'{"accept": true, "bid": "1e-999999999"}',
    "nan": b'{"accept": true, "bid": NaN}',
    "not_json": b"\x00\x01\x02",
    "empty": b"",
}


def storable(text: str | None) -> bool:
    """What PostgreSQL accepts in a text column and a terminal prints as it is."""
    if text is None:
        return True
    text.encode("utf-8")               # a lone surrogate raises here
    return len(text) <= answers.MAX_TEXT and not any(
        ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_an_unreadable_ping_answer_is_a_pass_with_a_reason(name):
    answer = protocol.read_ping_answer(200, HOSTILE_BODIES[name], 2000, 7)
    assert answer.outcome == "error"
    assert answer.reason and storable(answer.reason)
    assert answer.latency_ms == 7 and answer.bid_cents is None


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_an_unreadable_pre_ping_answer_is_ineligible(name):
    answer = protocol.read_pre_ping_answer(200, HOSTILE_BODIES[name], 3)
    assert answer.outcome == "ineligible" and answer.reason


UNREADABLE = ("deep_list", "deep_object", "deep_inside_accept", "invalid_utf8", "huge_int", "nan",
              "not_json")


@pytest.mark.parametrize("name", UNREADABLE)
def test_an_unreadable_post_answer_is_a_rejection_with_a_reason(name):
    result = protocol.read_post_answer(200, HOSTILE_BODIES[name], 9)
    assert result.outcome == "rejected"
    assert result.reason.startswith("unreadable_answer") and storable(result.reason)


def test_an_empty_2xx_post_answer_is_still_an_accept():
    assert protocol.read_post_answer(200, b"", 9).outcome == "accepted"
    assert protocol.read_post_answer(204, b"  \n", 9).outcome == "accepted"
    assert protocol.read_post_answer(200, b'{"accepted": true}', 9).outcome == "accepted"


@pytest.mark.parametrize("text", [
    "no\u0000thanks", "cap\ud800", "\x1b[31mred\x1b[0m", "a\rb\nc\td", "x" * 5000, "\u009b2J",
    "bidi\u202eevil", "line\u2028sep",
])
def test_text_from_a_buyer_is_made_safe_where_it_is_read(text):
    body = json.dumps({"accept": False, "reason": text, "ref": text}).encode()
    answer = protocol.read_ping_answer(200, body, None, 1)
    assert answer.outcome == "reject"
    assert storable(answer.reason) and storable(answer.ref)
    assert "\u202e" not in answer.reason and "\u2028" not in answer.reason
    post = protocol.read_post_answer(200, json.dumps({"accepted": False, "reason": text}).encode(), 1)
    assert post.outcome == "rejected" and storable(post.reason)


def test_an_accept_keeps_a_safe_ref_and_plain_text_is_kept_as_it_is():
    body = json.dumps({"accept": True, "bid": 50, "ref": "B-77\u00e9812 \u4e2d"}).encode()
    answer = protocol.read_ping_answer(200, body, None, 1)
    assert (answer.outcome, answer.bid_cents, answer.ref) == ("accept", 5000, "B-77\u00e9812 \u4e2d")
    assert answers.safe_text("no\u0000thanks") == "no\ufffdthanks"
    assert answers.safe_text(12345) == "12345"
    assert answers.safe_text(True) is None and answers.safe_text({"a": 1}) is None


@pytest.mark.parametrize("value,cents", [
    (30, 3000), (30.5, 3050), ("12.345", 1234), (0, 0), ("1e-9", None),
    (-1, None), (float("inf"), None), ("NaN", None), ("sNaN", None), (True, None), ([1], None),
    (10**400, None), ("9" * 60000, None), ("1e999999999", None), ("abc", None), (None, None),
])
def test_reading_a_bid_never_raises(value, cents):
    assert answers.read_bid(value) == cents


def test_read_json_names_why_it_could_not_read():
    assert answers.read_json(b'{"a": 1}') == ({"a": 1}, None)
    assert answers.read_json(DEEP)[1] == "too_deep"
    assert answers.read_json(b"\xff\xfe\xfd")[1] == "invalid_utf8"
    assert answers.read_json(b"{")[1] == "invalid_json"
    assert answers.read_json(b'{"a": NaN}')[1] == "invalid_json"
    assert answers.read_json(b'{"a": 1, "a": 2}')[1] == "invalid_json"


def test_a_post_answer_too_big_to_read_is_a_rejection_and_a_time_out_is_retried():
    assert protocol.read_post_failure("too_large", 200, 5).outcome == "rejected"
    assert protocol.read_post_failure("timeout", None, 5).outcome == "retry"
    assert protocol.read_post_failure("connect_error", None, 5).outcome == "retry"
