"""Post rules: what one post answer means, and what the lead does next (exclusivity first).

A post can end four ways. ``accepted`` sells the lead. ``rejected`` (a 2xx saying
``accepted: false``, a 4xx, an answer that cannot be read, a URL we refuse to send to) is
definitive: the lead may go to the next bid. ``retry`` is a 5xx: the buyer answered that it
did not process the post. ``unknown`` is no answer at all (time-out, a dropped connection, a
worker that died mid-post): the buyer may hold the lead. ``conflict`` is a 409 to a re-sent
post: the buyer says it has this key already.

The rule: the lead moves to another buyer only after a definitive rejection with no post
outstanding, or after every attempt ended in a 5xx. Once an attempt's outcome was unknown,
only a definitive answer to the same Idempotency-Key frees the lead; a conflict, or running
out of attempts, ends it ``unsold`` with ``post_unconfirmed`` for the operator to resolve.
Exclusivity wins over revenue.
"""
from __future__ import annotations

ACCEPTED, REJECTED, RETRY, UNKNOWN, CONFLICT = "accepted", "rejected", "retry", "unknown", "conflict"
SELL, TRY_AGAIN, NEXT_BID, UNCONFIRMED = "sell", "try_again", "next_bid", "unconfirmed"

# Transport failures where nothing reached the buyer.
NEVER_SENT = frozenset({"insecure_url", "private_address"})


def attempt_outcome(answer: str, failure: str | None, http_status: int | None, earlier: int) -> str:
    """The outcome of one attempt: ``answer`` is the protocol's reading of the reply (a post
    answer that cannot be read is its rejection); a failure with no answer is unknown."""
    if failure:
        return REJECTED if answer == REJECTED or failure in NEVER_SENT else UNKNOWN
    if http_status == 409 and earlier:
        return CONFLICT
    return answer


def next_step(outcomes: list[str], max_attempts: int) -> str:
    """What the lead does after the attempts so far (oldest first) to its awarded buyer."""
    last = outcomes[-1]
    if last == ACCEPTED:
        return SELL
    if last == REJECTED:
        return NEXT_BID
    if last == CONFLICT:
        return UNCONFIRMED
    if len(outcomes) < max_attempts:
        return TRY_AGAIN
    return UNCONFIRMED if UNKNOWN in outcomes else NEXT_BID


def may_post_to(buyer_id: str, posted: set[str], max_buyers: int) -> bool:
    """A lead's post goes to at most ``max_buyers`` buyers; one that had it may have it again."""
    return buyer_id in posted or len(posted) < max_buyers
