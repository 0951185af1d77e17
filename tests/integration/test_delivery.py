"""Single-flight delivery: one post in flight per lead, late answers kept, exclusivity first.

The stages run in this process (no worker) against buyers on a local HTTP server, so each
test can put two deliveries side by side, or let a lease run out, exactly where it wants.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid

import pytest

from pipeline import submit_lead
from pipeline.adapters import db, metrics, store, views
from pipeline.domain.records import Status
from pipeline.service import deliver, intake, lifecycle
from tests.helpers import ScriptedBuyers, load_tree, make_lead

# The auction's deadline and the buyers' ping budget are generous: these tests are about the post,
# and a loaded box once took longer than 2 s to answer a ping here (the shard then awarded nothing).
NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 20, "max_cycles": 1,
           "rerun_interval_s": 1, "duplicate_window_h": 0, "stuck_after_s": 5}
ACCEPT, DECLINE = {"accepted": True}, {"accepted": False, "reason": "not_today"}


@pytest.fixture
def scripted(clean_db, monkeypatch):
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)   # the stages run here
    fast = dataclasses.replace(deliver.settings, post_timeout_s=0.6, post_lease_s=1.2,
                               post_backoff_s=0.05, post_attempts=4)
    monkeypatch.setattr(deliver, "settings", fast)
    server = ScriptedBuyers().start()
    yield server
    server.stop()


def awarded(server: ScriptedBuyers, network: dict | None = None, seed: int = 1,
            caps: dict | None = None) -> str:
    """A lead taken through validate, score and its auction: `delivering` to the top bid."""
    tree = server.tree({**NETWORK, **(network or {})}, timeout_ms=20_000)
    load_tree({**tree, "buyers": [{**b, "caps": caps or {}} for b in tree["buyers"]]})
    lead_id = submit_lead(make_lead("solar", seed=seed))
    lifecycle.validate_lead(lead_id)
    [ping] = lifecycle.score_lead(lead_id)
    assert [n.task for n in lifecycle.ping_shard(*ping.args)] == [deliver.DELIVER]
    return lead_id


def run_out(lead_id: str, limit: int = 12) -> list:
    """Deliver, then every nudge the stage asks for (retries at once), until none is left."""
    nudges, sent = [deliver.DELIVER], []
    while nudges and limit:
        nudges = [n for n in deliver.deliver_post(lead_id) if n.task == deliver.DELIVER]
        sent += nudges
        limit -= 1
    return sent


def waiting_on_locks() -> int:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'")
        return cur.fetchone()["n"]


@contextlib.contextmanager
def holding_the_lead(lead_id: str, *threads: threading.Thread):
    """A transaction holding the lead's row lock while ``threads`` start and come to wait on it
    (each with its statement's snapshot taken); they are joined once it commits."""
    with db.transaction() as cur:
        cur.execute("SELECT id FROM leads WHERE id=%s FOR UPDATE", (lead_id,))
        for t in threads:
            t.start()
        until = time.monotonic() + 10
        while waiting_on_locks() < len(threads) and time.monotonic() < until:
            time.sleep(0.01)
        assert waiting_on_locks() == len(threads)
        yield cur
    for t in threads:
        t.join()


def view(lead_id: str) -> dict:
    with db.transaction() as cur:
        return views.lead_view(cur, lead_id)


def test_deliveries_side_by_side_send_one_post(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0.4)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    failed: list[BaseException] = []

    def deliver_once() -> None:
        try:
            deliver.deliver_post(lead_id)
        except BaseException as exc:     # a deliverer that lost the race must not fail its task
            failed.append(exc)
    threads = [threading.Thread(target=deliver_once) for _ in range(4)]
    # All four read the lead while another transaction holds it: each waits on the lock with its
    # snapshot taken, so three of them read the attempts as they were before the first one wrote.
    with holding_the_lead(lead_id, *threads):
        pass
    assert failed == []
    assert len(scripted.posts) == 1 and scripted.most_in_flight == {"a": 1}
    lead = view(lead_id)
    assert lead["status"] == "sold" and lead["sale"]["buyer_id"] == "a"
    assert [(p["buyer_id"], p["attempt"], p["outcome"]) for p in lead["posts"]] == [("a", 1, "accepted")]


def test_a_post_is_recorded_before_it_is_answered(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0.4)])
    lead_id = awarded(scripted)
    worker = threading.Thread(target=deliver.deliver_post, args=(lead_id,))
    worker.start()
    time.sleep(0.2)                                # the buyer has it, no answer yet
    assert [(p["attempt"], p["outcome"]) for p in view(lead_id)["posts"]] == [(1, None)]
    assert deliver.deliver_post(lead_id) == []     # a duplicate sees the post in flight
    worker.join()
    assert len(scripted.posts) == 1 and view(lead_id)["status"] == "sold"


def test_a_dead_workers_post_is_taken_over_only_when_its_lease_runs_out(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    with db.transaction() as cur:                  # a worker took the lease, then died
        lead = store.claim(cur, lead_id, Status.DELIVERING)
        store.begin_post(cur, lead_id, lead.award_ping_id, "a", 1, __import__("uuid").uuid4(), 0.8)
    assert deliver.deliver_post(lead_id) == [] and scripted.posts == []
    with db.transaction() as cur:                  # the sweep leaves a post in flight alone
        cur.execute("UPDATE leads SET status_at = status_at - interval '1 hour' WHERE id=%s", (lead_id,))
    assert lifecycle.sweep_stuck() == []
    time.sleep(0.9)
    deliver.deliver_post(lead_id)
    lead = view(lead_id)
    assert lead["status"] == "sold"
    assert [(p["attempt"], p["outcome"], p["reason"]) for p in lead["posts"]] == [
        (1, "unknown", "lease_expired"), (2, "accepted", None)]
    assert [p["idempotency_key"] for p in scripted.posts] == [lead_id]


def stuck_gauge() -> int:
    """`pingtree_stuck_leads{status="delivering"}` as /metrics reads it."""
    with db.transaction() as cur:
        return metrics.open_leads(cur, NETWORK["stuck_after_s"]).get("delivering", {}).get("stuck", 0)


def test_a_killed_deliverers_lead_is_re_driven_once_its_lease_runs_out_not_a_stuck_period_later(
        scripted):
    # Deliver's claim writes the attempt and leaves the lead's row alone (its stuck clock is not
    # restarted): the lease alone keeps the sweep off a post that may be on the wire.
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    with db.transaction() as cur:                  # idle past stuck_after_s (5 s) since its award
        cur.execute("UPDATE leads SET status_at = status_at - interval '1 hour' WHERE id=%s", (lead_id,))
        cur.execute("SELECT status_at, xmin::text AS version FROM leads WHERE id=%s", (lead_id,))
        before = cur.fetchone()
    with db.transaction(each_statement=True) as cur:   # a worker claims, then is killed unsent
        claimed = store.claim_post(cur, lead_id, uuid.uuid4(), 1.0, 4)
    assert claimed is not None and claimed[-1] is True
    with db.transaction() as cur:
        cur.execute("SELECT status_at, xmin::text AS version FROM leads WHERE id=%s", (lead_id,))
        assert cur.fetchone() == before            # the claim did not rewrite the lead
    assert lifecycle.sweep_stuck() == []           # the lease holds: the sweep leaves it
    assert stuck_gauge() == 0                      # and the stuck-leads gauge does not count it
    time.sleep(1.1)
    assert stuck_gauge() == 1                      # the lease ran out: the sweep's work now
    [redrive] = lifecycle.sweep_stuck()            # at once, not stuck_after_s after the claim
    assert redrive.task == deliver.DELIVER and scripted.posts == []
    assert deliver.deliver_post(*redrive.args) == []
    lead = view(lead_id)
    assert lead["status"] == "sold" and lead["redrives"] == 1
    assert [(p["attempt"], p["outcome"], p["reason"]) for p in lead["posts"]] == [
        (1, "unknown", "lease_expired"), (2, "accepted", None)]
    assert len(scripted.posts) == 1                # one post on the wire, by the take-over


def test_a_late_acceptance_sells_to_that_buyer_and_is_raised(scripted):
    # The first post outlives its lease (a stalled worker); the takeover posts again.
    scripted.add("a", 30.0, [(200, ACCEPT, 1.5), (200, ACCEPT, 0.1)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    slow = dataclasses.replace(deliver.settings, post_timeout_s=3.0, post_lease_s=0.5)
    stalled = threading.Thread(target=lambda: _with(slow, deliver.deliver_post, lead_id))
    stalled.start()
    time.sleep(0.8)
    deliver.deliver_post(lead_id)                  # takes over: attempt 2, answered at once
    stalled.join()
    lead = view(lead_id)
    assert lead["status"] == "sold" and lead["sale"]["buyer_id"] == "a"
    assert scripted.posts_to("b") == []
    assert [(p["attempt"], p["outcome"], p["late_outcome"]) for p in lead["posts"]] == [
        (1, "unknown", "accepted"), (2, "accepted", None)]
    assert "late_acceptance" in [t["status"] for t in lead["timeline"]]


def test_an_answer_that_waited_on_a_take_over_is_late_and_never_sells_in_the_settle(scripted):
    """The settle is one statement under the lead's lock. An answer that waited on that lock
    while another deliverer took its attempt over (expired it, opened the next) reads the
    attempt as the take-over left it: recorded as late, not as ours, so the sale comes from the
    late-acceptance rule (raised on the timeline), never from the settle's own sale."""
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    with db.transaction() as cur:                  # our post is on the wire
        _, _, ping, _, _, _ = store.claim_post(cur, lead_id)
        assert store.begin_post(cur, lead_id, ping.id, "a", 1, mine, 30)
    failed: list[BaseException] = []

    def answer() -> None:
        try:
            deliver.settle_post(lead_id, ping, mine, "accepted", None, 200, 5, [])
        except BaseException as exc:
            failed.append(exc)
    # Meanwhile a take-over holds the lead.
    with holding_the_lead(lead_id, threading.Thread(target=answer)) as cur:
        cur.execute("SELECT id FROM post_attempts WHERE token=%s", (mine,))
        store.expire_post(cur, lead_id, cur.fetchone()["id"])
        assert store.begin_post(cur, lead_id, ping.id, "a", 2, theirs, 30)
    assert failed == []
    lead = view(lead_id)
    assert lead["status"] == "sold" and lead["sale"]["buyer_id"] == "a"
    assert [(p["attempt"], p["outcome"], p["late_outcome"]) for p in lead["posts"]] == [
        (1, "unknown", "accepted"), (2, None, None)]
    assert [t["status"] for t in lead["timeline"]][-2:] == ["late_acceptance", "sold"]


def _with(settings, fn, *args):
    saved, deliver.settings = deliver.settings, settings
    try:
        return fn(*args)
    finally:
        deliver.settings = saved


def test_5xx_is_retried_with_the_same_keys_then_the_next_bid_gets_the_lead(scripted):
    scripted.add("a", 30.0, [(503, None, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    retries = run_out(lead_id)
    assert [n.countdown for n in retries][:3] == [0.05, 0.1, 0.2]      # back-off doubles
    tried = scripted.posts_to("a")
    assert len(tried) == 4
    assert {(p["idempotency_key"], p["webhook_id"]) for p in tried} == {(lead_id, tried[0]["webhook_id"])}
    lead = view(lead_id)
    assert lead["status"] == "sold" and lead["sale"]["buyer_id"] == "b"
    assert {p["buyer_id"]: (p["outcome"], p["reason"]) for p in lead["pings"]}["a"] == (
        "post_rejected", "gave_up:http_503")


def test_posts_that_time_out_never_free_the_lead_for_a_second_buyer(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 1.0)])      # answers after our 0.6 s budget
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    run_out(lead_id)
    lead = view(lead_id)
    assert lead["status"] == "unsold" and lead["reject_reasons"] == ["post_unconfirmed"]
    assert len(scripted.posts_to("a")) == 4 and scripted.posts_to("b") == []
    # Each attempt began after the last one's budget ran out: the attempts' own start times,
    # written before each post was sent (the buyer server's arrival times also carry its
    # threads' lag under load, which made this flaky).
    with db.transaction() as cur:
        cur.execute("SELECT extract(epoch FROM at) AS at FROM post_attempts WHERE lead_id=%s"
                    " ORDER BY attempt", (lead_id,))
        began = [float(r["at"]) for r in cur.fetchall()]
    assert len(began) == 4
    assert all(later - earlier >= 0.6 for earlier, later in zip(began, began[1:], strict=False))


def test_409_to_a_re_sent_post_never_frees_the_lead(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 1.0), (409, {"error": "duplicate"}, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    run_out(lead_id)
    lead = view(lead_id)
    assert lead["status"] == "unsold" and lead["reject_reasons"] == ["post_unconfirmed"]
    assert [p["outcome"] for p in lead["posts"]] == ["unknown", "conflict"]
    assert scripted.posts_to("b") == []


def test_a_definitive_answer_after_a_time_out_frees_the_lead(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 1.0), (200, DECLINE, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    run_out(lead_id)
    lead = view(lead_id)
    assert lead["status"] == "sold" and lead["sale"]["buyer_id"] == "b"
    assert [(p["buyer_id"], p["outcome"]) for p in lead["posts"]] == [
        ("a", "unknown"), ("a", "rejected"), ("b", "accepted")]


def test_the_post_goes_to_at_most_max_post_buyers(scripted):
    scripted.add("a", 30.0, [(200, DECLINE, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted, network={"max_post_buyers": 1})
    run_out(lead_id)
    lead = view(lead_id)
    assert lead["status"] == "unsold"                   # max_cycles 1: no later cycle
    assert scripted.posts_to("b") == []
    assert [p["buyer_id"] for p in lead["posts"]] == ["a"]


def test_a_lead_the_sweep_cannot_move_ends_with_its_reason_and_caps_released(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted, network={"max_redrives": 2}, caps={"daily": 5})
    for _ in range(3):                              # every deliver message the sweep sends is lost
        with db.transaction() as cur:
            cur.execute("UPDATE leads SET status_at = status_at - interval '1 hour' WHERE id=%s",
                        (lead_id,))
        lifecycle.sweep_stuck()
    lead = view(lead_id)
    assert lead["status"] == "unsold" and lead["reject_reasons"] == ["stuck_delivering"]
    assert lead["redrives"] == 3
    with db.transaction() as cur:
        cur.execute("SELECT coalesce(sum(leads), 0) AS n FROM cap_usage WHERE buyer_id='a'")
        assert cur.fetchone()["n"] == 0
    assert deliver.deliver_post(lead_id) == [] and scripted.posts == []


def sales_of(lead_id) -> list[dict]:
    with db.transaction() as cur:
        cur.execute("SELECT buyer_id, ping_id, price_cents FROM sales WHERE lead_id=%s", (lead_id,))
        return [dict(r) for r in cur.fetchall()]


def test_a_sale_is_written_only_from_its_lead_and_the_ping_that_lead_was_awarded(scripted):
    """Sales have no foreign keys (089): each is written from the lead's row, its ping the one
    that row names as its award (which the award took from the ping it read). A sale for a lead
    that is not there, or for any ping but the lead's award, is never written, and the lead is
    not sold without one."""
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    with db.transaction() as cur:
        cur.execute("SELECT award_ping_id FROM leads WHERE id=%s", (lead_id,))
        award = cur.fetchone()["award_ping_id"]
        cur.execute("SELECT id FROM pings WHERE lead_id=%s AND id <> %s", (lead_id, award))
        [other] = [r["id"] for r in cur.fetchall()]
        cur.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'sales'::regclass"
                    " AND contype = 'f'")
        assert cur.fetchall() == []

    def sell(lead, ping) -> None:
        with db.transaction() as cur:
            store.sell(cur, lead, "a", ping, 3000)

    nobody = uuid.uuid4()
    for lead, ping in ((lead_id, other), (lead_id, uuid.uuid4()), (nobody, award)):
        with pytest.raises(LookupError):
            sell(lead, ping)
    # Nor does settling an accepted post to another ping sell it: the attempt is settled, the
    # lead stays where it was; nor a post of a lead that is not there.
    token = uuid.uuid4()
    with db.transaction() as cur:
        assert store.begin_post(cur, lead_id, other, "b", 1, token, 30)
    with db.transaction() as cur:
        standing, ours, sold = store.settle(cur, lead_id, token, "accepted", None, 200, 5,
                                            ("b", other, 2000))
        assert store.settle(cur, nobody, token, "accepted", None, 200, 5, ("a", award, 3000)) is None
    assert ours and not sold and standing.status == Status.DELIVERING
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM sales WHERE lead_id = ANY(%s)", ([lead_id, nobody],))
        assert cur.fetchone()["n"] == 0
    assert view(lead_id)["status"] == "delivering"

    # The award's ping sells it, once: a second sale is never written.
    sell(lead_id, award)
    assert sales_of(lead_id) == [{"buyer_id": "a", "ping_id": award, "price_cents": 3000}]
    assert view(lead_id)["status"] == "sold"
    with pytest.raises(LookupError):
        sell(lead_id, award)
    assert len(sales_of(lead_id)) == 1
    assert [e["status"] for e in view(lead_id)["timeline"]].count("sold") == 1
    with db.transaction() as cur:                  # the sale's ping is there, the lead's own
        cur.execute("SELECT p.lead_id, p.buyer_id FROM sales s JOIN pings p ON p.id = s.ping_id"
                    " WHERE s.lead_id=%s", (lead_id,))
        assert dict(cur.fetchone()) == {"lead_id": uuid.UUID(str(lead_id)), "buyer_id": "a"}


def test_a_lease_run_out_is_expired_by_its_lead_and_id(scripted):
    """No index on an attempt's id (089): expire_post finds the lead's open attempt; the same id
    under another lead is not that attempt."""
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    with db.transaction() as cur:
        cur.execute("SELECT award_ping_id FROM leads WHERE id=%s", (lead_id,))
        award = cur.fetchone()["award_ping_id"]
        assert store.begin_post(cur, lead_id, award, "a", 1, uuid.uuid4(), 30)
        attempt = store.open_post(cur, lead_id)["id"]
        store.expire_post(cur, uuid.uuid4(), attempt)
        assert store.open_post(cur, lead_id)["id"] == attempt
        store.expire_post(cur, lead_id, attempt)
        assert store.open_post(cur, lead_id) is None
        cur.execute("SELECT outcome, reason FROM post_attempts WHERE lead_id=%s", (lead_id,))
        assert [dict(r) for r in cur.fetchall()] == [{"outcome": "unknown", "reason": "lease_expired"}]
    run_out(lead_id)                   # the next attempt goes out and sells
    assert view(lead_id)["status"] == "sold"


def test_a_deliverer_that_waited_on_a_re_award_posts_the_new_award(scripted):
    """A duplicated deliver message waits on the lead's lock while a rejected post is settled and
    the next bid awarded. Its claim then reads the lead's new row, which PostgreSQL re-checks
    against the ping row the claim's snapshot had joined, the old award's: before, the award's
    ping came back empty and the deliverer failed (seen in `make chaos`, duplicate messages)."""
    scripted.add("a", 30.0, [(200, DECLINE, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id = awarded(scripted)
    with db.transaction() as cur:                  # a's post is on the wire
        _, _, ping_a, _, _, _ = store.claim_post(cur, lead_id)
        assert ping_a.buyer_id == "a"
        mine = uuid.uuid4()
        assert store.begin_post(cur, lead_id, ping_a.id, "a", 1, mine, 30)
        cur.execute("SELECT id FROM pings WHERE lead_id=%s AND buyer_id='b'", (lead_id,))
        ping_b = cur.fetchone()["id"]
    failed: list[BaseException] = []

    def duplicate() -> None:
        try:
            deliver.deliver_post(lead_id)
        except BaseException as exc:
            failed.append(exc)
    # a's answer, rejected, is settled and b's bid awarded while the duplicate waits.
    with holding_the_lead(lead_id, threading.Thread(target=duplicate)) as cur:
        store.settle(cur, lead_id, mine, "rejected", "not_today", 200, 5, None)
        store.mark_ping(cur, ping_a.id, "post_rejected", "not_today")
        store.move(cur, lead_id, Status.DELIVERING, {"buyer_id": "b", "price_cents": 2000},
                   award_ping_id=ping_b)
    assert failed == []
    assert [p["buyer_id"] for p in scripted.posts] == ["b"]
    lead = view(lead_id)
    assert lead["status"] == "sold" and lead["sale"]["buyer_id"] == "b"
