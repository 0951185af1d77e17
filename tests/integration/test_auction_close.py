"""When an auction may be awarded, and what the sweep does with a lead that stopped moving.

Stages run in this process against buyers on a local HTTP server (tests/helpers.py).
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pipeline import submit_lead
from pipeline.adapters import db, metrics, store, views
from pipeline.service import deliver, intake, lifecycle
from pipeline.service.nudges import Fanout
from tests.helpers import ScriptedBuyers, load_tree, make_lead

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 1, "duplicate_window_h": 0, "stuck_after_s": 5}
ACCEPT = {"accepted": True}


@pytest.fixture
def scripted(clean_db, monkeypatch):
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)   # the stages run here
    server = ScriptedBuyers().start()
    yield server
    server.stop()


def scored(server, mode: str = "auction", **network) -> tuple[str, list]:
    load_tree(server.tree({**NETWORK, **network}, mode=mode))
    lead_id = submit_lead(make_lead("solar", seed=5))
    lifecycle.validate_lead(lead_id)
    return lead_id, lifecycle.score_lead(lead_id)


def status(lead_id: str) -> str:
    with db.transaction() as cur:
        return views.lead_view(cur, lead_id)["status"]


def auction_open(lead_id: str) -> bool:
    with db.transaction() as cur:
        cur.execute("SELECT closed_at FROM auctions WHERE lead_id=%s", (lead_id,))
        return cur.fetchone()["closed_at"] is None


def idle(lead_id: str) -> None:
    """As if the lead had not moved for an hour."""
    with db.transaction() as cur:
        cur.execute("UPDATE leads SET status_at = status_at - interval '1 hour' WHERE id=%s", (lead_id,))


def test_the_chord_awards_only_when_every_shard_has_answered(scripted):
    for buyer, bid in (("a", 30.0), ("b", 20.0), ("c", 10.0)):      # two shards of two
        scripted.add(buyer, bid, [(200, ACCEPT, 0)])
    lead_id, [chord] = scored(scripted)
    assert isinstance(chord, Fanout) and len(chord.header) == 2
    lifecycle.ping_shard(*chord.header[0].args)
    # A duplicated header found its shard claimed and returned: the chord fires too early.
    assert lifecycle.award_auction(*chord.body.args) == []
    assert auction_open(lead_id) and status(lead_id) == "auctioning"
    lifecycle.ping_shard(*chord.header[1].args)
    [post] = lifecycle.award_auction(*chord.body.args)
    deliver.deliver_post(*post.args)
    assert status(lead_id) == "sold"


def test_the_deadline_close_leaves_a_walking_waterfall_alone(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)], ping_delay_s=1.2)   # answers after the deadline
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])
    lead_id, [walk] = scored(scripted, mode="waterfall", auction_timeout_s=0.3)
    result = {}
    walker = threading.Thread(target=lambda: result.update(n=lifecycle.walk_waterfall(*walk.args)))
    walker.start()
    time.sleep(0.8)                                   # past deadline + grace, the walk still on
    assert lifecycle.close_overdue() == []
    assert auction_open(lead_id)
    walker.join()
    assert [n.task for n in result["n"]] == [deliver.DELIVER]
    deliver.deliver_post(lead_id)
    with db.transaction() as cur:
        view = views.lead_view(cur, lead_id)
    assert view["status"] == "sold" and view["sale"]["buyer_id"] == "a"
    assert [p["buyer_id"] for p in view["pings"]] == ["a"]           # b was never pinged
    assert [p["buyer_id"] for p in scripted.posts] == ["a"]


def test_the_sweep_re_drives_a_stuck_waterfall_walk(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    lead_id, _lost_walk = scored(scripted, mode="waterfall")
    idle(lead_id)
    [walk] = lifecycle.sweep_stuck()
    assert walk.task == lifecycle.WALK
    [post] = lifecycle.walk_waterfall(*walk.args)
    deliver.deliver_post(*post.args)
    assert status(lead_id) == "sold"


def test_the_sweep_re_drives_a_stuck_scored_lead(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    load_tree(scripted.tree(NETWORK))
    lead_id = submit_lead(make_lead("solar", seed=6))
    lifecycle.validate_lead(lead_id)
    with db.transaction() as cur:                     # scored, and its auction never opened
        store.move(cur, lead_id, "scored", score=70, signals={})
    idle(lead_id)
    [ping] = lifecycle.sweep_stuck()
    assert status(lead_id) == "auctioning"
    [post] = lifecycle.ping_shard(*ping.args)
    deliver.deliver_post(*post.args)
    assert status(lead_id) == "sold"


def test_a_shard_of_an_auction_that_is_not_there_claims_nothing(scripted):
    """A shard is claimed from its auction's row (no foreign key since 084): a ping message
    for an auction that is not there pings nobody and writes nothing."""
    assert lifecycle.ping_shard(str(uuid.uuid4()), 0) == []
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM auction_shards")
        assert cur.fetchone()["n"] == 0


def test_the_auction_clock_starts_at_the_first_ping(scripted):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)], ping_delay_s=0.3)
    lead_id, [ping] = scored(scripted, auction_timeout_s=0.5)
    time.sleep(1.0)                                   # the ping task waited in a backlog
    assert lifecycle.close_overdue() == []            # its clock has not started
    [post] = lifecycle.ping_shard(*ping.args)         # a full 0.5 s for the buyer's 0.3 s
    with db.transaction() as cur:
        view = views.lead_view(cur, lead_id)
    assert [(p["buyer_id"], p["outcome"]) for p in view["pings"]] == [("a", "accept")]
    deliver.deliver_post(*post.args)
    assert status(lead_id) == "sold"


def test_a_buyer_whose_shard_never_started_is_recorded_as_never_pinged(scripted):
    for buyer, bid in (("a", 30.0), ("b", 20.0), ("c", 10.0)):      # shards {a, c} and {b}
        scripted.add(buyer, bid, [(200, ACCEPT, 0)])
    lead_id, [chord] = scored(scripted, auction_timeout_s=0.3)
    lifecycle.ping_shard(*chord.header[0].args)       # the other shard's message is lost
    time.sleep(0.3 + lifecycle.settings.close_grace_s + 0.2)
    [post] = lifecycle.close_overdue()
    deliver.deliver_post(*post.args)
    with db.transaction() as cur:
        view = views.lead_view(cur, lead_id)
        report = {b["buyer_id"]: b for b in views.report(cur)["buyers"]}
    assert view["status"] == "sold" and view["sale"]["buyer_id"] == "a"
    assert sorted((p["buyer_id"], p["outcome"], p["reason"]) for p in view["pings"]) == [
        ("a", "accept", None), ("b", "not_pinged", "never_pinged"), ("c", "accept", None)]
    assert (report["b"]["pings"], report["b"]["timeouts"]) == (0, 0)  # not charged a time-out


def test_a_ping_that_raises_is_a_pass_for_its_buyers_and_the_auction_still_ends(scripted, monkeypatch):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])                      # one shard of two
    lead_id, [ping] = scored(scripted)

    def broken(*args, **kwargs):
        raise RuntimeError("the HTTP client broke")
    monkeypatch.setattr(lifecycle.transport, "send_many", broken)
    assert lifecycle.ping_shard(*ping.args) == []     # no exception: the chord would never fire
    with db.transaction() as cur:
        view = views.lead_view(cur, lead_id)
    assert view["status"] == "unsold" and not auction_open(lead_id)  # awarded: no bid, one cycle
    assert sorted((p["buyer_id"], p["outcome"], p["reason"]) for p in view["pings"]) == [
        ("a", "error", "internal_error"), ("b", "error", "internal_error")]
    assert scripted.posts == []


def test_a_lone_shard_whose_award_fails_keeps_its_answers_for_the_deadline_close(scripted, monkeypatch):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])                      # one shard of two
    lead_id, [ping] = scored(scripted, auction_timeout_s=0.3)
    real_award = lifecycle.award

    def broken(*args, **kwargs):
        raise RuntimeError("the award broke")
    # The shard writes its answers and awards in one transaction: the failed award takes the
    # answers with it, so they are written again on their own.
    monkeypatch.setattr(lifecycle, "award", broken)
    with pytest.raises(RuntimeError):
        lifecycle.ping_shard(*ping.args)
    with db.transaction() as cur:
        view = views.lead_view(cur, lead_id)
    assert view["status"] == "auctioning" and auction_open(lead_id)
    assert sorted((p["buyer_id"], p["outcome"]) for p in view["pings"]) == [("a", "accept"), ("b", "accept")]
    monkeypatch.setattr(lifecycle, "award", real_award)
    time.sleep(0.3 + lifecycle.settings.close_grace_s + 0.2)
    [post] = lifecycle.close_overdue()                # the deadline close awards the best bid
    deliver.deliver_post(*post.args)
    with db.transaction() as cur:
        view = views.lead_view(cur, lead_id)
    assert view["status"] == "sold" and view["sale"]["buyer_id"] == "a"
    assert len(scripted.posts) == 1


def test_a_lone_shard_that_the_deadline_close_overtook_records_its_accept_late_and_sells_nothing(
        scripted, monkeypatch):
    scripted.add("a", 30.0, [(200, ACCEPT, 0)])
    scripted.add("b", 20.0, [(200, ACCEPT, 0)])                      # one shard of two
    lead_id, [ping] = scored(scripted, auction_timeout_s=0.3)
    real_ping_many = lifecycle.ping_many
    closed = []

    def stalled(*args, **kwargs):
        answers = real_ping_many(*args, **kwargs)    # both accept in time
        # The shard stalls (a paused worker) until the deadline close has awarded the tier
        # without its answers.
        time.sleep(0.3 + lifecycle.settings.close_grace_s + 0.2)
        closed.append(lifecycle.close_overdue())
        return answers
    monkeypatch.setattr(lifecycle, "ping_many", stalled)
    assert lifecycle.ping_shard(*ping.args) == []
    assert closed == [[]]                             # no bid when it closed: unsold, max_cycles 1
    with db.transaction() as cur:
        view = views.lead_view(cur, lead_id)
    assert view["status"] == "unsold" and not auction_open(lead_id)
    assert sorted((p["buyer_id"], p["outcome"]) for p in view["pings"]) == [("a", "late"), ("b", "late")]
    assert scripted.posts == []



def index_entries_read(index: str) -> int:
    """Entries the scans of ``index`` have returned so far (this backend's counts reported)."""
    time.sleep(0.05)
    with db.transaction() as cur:
        cur.execute("SELECT pg_stat_force_next_flush()")
    with db.transaction() as cur:
        cur.execute("SELECT idx_tup_read AS n FROM pg_stat_user_indexes WHERE indexrelname = %s",
                    (index,))
        return int(cur.fetchone()["n"])


def test_the_deadline_close_and_the_sweep_read_what_ended_since_once_not_at_every_run(scripted):
    """An auction closed (a lead ended) leaves its old row's entry in the partial index of open
    auctions (of leads in flight) until a vacuum. The deadline close, four times a second in
    every award worker, and the sweep read each such entry once and mark it dead: their next
    runs skip it. (A bitmap scan, which PostgreSQL chose for both, read all of them every time.)"""
    leads = [submit_lead(make_lead("solar", seed=1000 + i)) for i in range(150)]
    with db.transaction() as cur:
        cur.execute("INSERT INTO auctions (id, lead_id, cycle, tier, mode, deadline_at, buyer_ids, shards,"
                    " timeout_ms) SELECT gen_random_uuid(), gen_random_uuid(), 1, 1, 'auction',"
                    " clock_timestamp(), '{}', 1, 2000 FROM generate_series(1, 300)")
    with db.transaction() as cur:
        cur.execute("UPDATE auctions SET closed_at = clock_timestamp()")
        cur.execute("UPDATE leads SET status = 'rejected' WHERE id = ANY(%s::uuid[])", (leads,))
    for index, run in (("auctions_open", lambda cur: store.overdue_auctions(cur, 0.5, 5, 200)),
                       ("leads_in_flight", lambda cur: store.stuck(cur, 0, 200))):
        reads = []
        for _ in range(3):
            before = index_entries_read(index)
            with db.transaction() as cur:
                assert run(cur) == []
            reads.append(index_entries_read(index) - before)
        assert reads[0] >= 150 and reads[1:] == [0, 0], (index, reads)


def seq_scans(cur, table: str) -> int:
    """Sequential scans of ``table`` by this backend not yet reported (this transaction's among them)."""
    cur.execute("SELECT seq_scan AS n FROM pg_stat_xact_user_tables WHERE relname = %s", (table,))
    return int(cur.fetchone()["n"])


def test_the_periodic_scans_take_their_partial_index_whatever_the_statistics_say(scripted):
    """The sweep (every 10 s), the held-lead cycle (every 5 s), the deadline close (four times
    a second in every award worker) and /metrics (every scrape) each look for the few rows of a
    partial index. On statistics
    taken while most rows matched (a burst, a restore, a lagging autovacuum), PostgreSQL chose to
    read the whole table for the sweep instead: 30 ms a run after 15,000 leads, and growing with
    the table. Each must scan its index, never the table."""
    leads = [submit_lead(make_lead("solar", seed=2000 + i)) for i in range(400)]
    with db.transaction() as cur:
        cur.execute("INSERT INTO auctions (id, lead_id, cycle, tier, mode, deadline_at, buyer_ids, shards,"
                    " timeout_ms) SELECT gen_random_uuid(), gen_random_uuid(), 1, 1, 'auction',"
                    " clock_timestamp() + interval '1 hour', '{}', 1, 2000 FROM generate_series(1, 400)")
        cur.execute("UPDATE leads SET status = 'held', next_run_at = clock_timestamp() + interval '1 hour'"
                    " WHERE id = ANY(%s::uuid[])", (leads[:200],))
    with db.transaction() as cur:     # statistics taken while every lead is in flight or held,
        cur.execute("ANALYZE leads")  # every auction open
        cur.execute("ANALYZE auctions")
    with db.transaction() as cur:     # then nearly all of them ended
        cur.execute("UPDATE auctions SET closed_at = clock_timestamp()")
        cur.execute("UPDATE leads SET status = 'rejected', next_run_at = NULL WHERE id = ANY(%s::uuid[])",
                    (leads[1:],))
    later = datetime.now(UTC) + timedelta(hours=2)
    runs = {"the sweep": ("leads", lambda cur: store.stuck(cur, 0, 500)),
            "the held-lead cycle": ("leads", lambda cur: store.due_held(cur, later)),
            "the deadline close": ("auctions", lambda cur: store.overdue_auctions(cur, 0.5, 5, 200)),
            "the metrics scrape": ("leads", lambda cur: list(metrics.open_leads(cur, 0)))}
    scanned = {}
    for name, (table, run) in runs.items():
        with db.transaction() as cur:
            before = seq_scans(cur, table)
            found = run(cur)
            scanned[name] = seq_scans(cur, table) - before
        assert len(found) == (1 if name in ("the held-lead cycle", "the metrics scrape") else 0), name
    assert scanned == {name: 0 for name in runs}
