"""The post rules: which answers free a lead for another buyer, and which never do."""
from pipeline.domain import delivery as d


def test_what_one_answer_means():
    assert d.attempt_outcome("accepted", None, 200, earlier=0) == d.ACCEPTED
    assert d.attempt_outcome("rejected", None, 422, earlier=0) == d.REJECTED
    assert d.attempt_outcome("retry", None, 503, earlier=2) == d.RETRY
    assert d.attempt_outcome("retry", "timeout", None, earlier=0) == d.UNKNOWN
    assert d.attempt_outcome("retry", "connect_error", None, earlier=0) == d.UNKNOWN
    assert d.attempt_outcome("rejected", "too_large", 200, earlier=0) == d.REJECTED
    assert d.attempt_outcome("retry", "insecure_url", None, earlier=0) == d.REJECTED


def test_409_is_a_rejection_first_and_a_conflict_on_a_re_sent_post():
    assert d.attempt_outcome("rejected", None, 409, earlier=0) == d.REJECTED
    assert d.attempt_outcome("rejected", None, 409, earlier=1) == d.CONFLICT
    assert d.next_step([d.UNKNOWN, d.CONFLICT], 4) == d.UNCONFIRMED


def test_retries_then_next_bid_only_when_every_failure_was_an_answer():
    assert d.next_step([d.RETRY], 4) == d.TRY_AGAIN
    assert d.next_step([d.RETRY] * 4, 4) == d.NEXT_BID
    assert d.next_step([d.RETRY, d.UNKNOWN, d.RETRY, d.RETRY], 4) == d.UNCONFIRMED
    assert d.next_step([d.UNKNOWN] * 4, 4) == d.UNCONFIRMED


def test_a_definitive_answer_settles_whatever_came_before():
    assert d.next_step([d.UNKNOWN, d.REJECTED], 4) == d.NEXT_BID
    assert d.next_step([d.UNKNOWN, d.ACCEPTED], 4) == d.SELL


def test_a_lead_reaches_at_most_max_post_buyers():
    assert d.may_post_to("a", set(), 1)
    assert not d.may_post_to("b", {"a"}, 1)
    assert d.may_post_to("a", {"a", "b"}, 2)
