"""What one lead costs PostgreSQL, stage by stage: statements, transactions and rows written.

The stages run in this process (no worker) against ten buyers on a local HTTP server that all
bid, in one auction tier, each statement counted on the way to the server. The ceilings are
today's counts: a change that sends more statements per lead fails here, a change that sends
fewer lowers them (`pytest -s` prints the table).
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import time
import types
from collections import Counter

import pytest

from pipeline import submit_lead
from pipeline.adapters import db, store
from pipeline.adapters.store import cycles
from pipeline.domain import scoring, validation
from pipeline.domain.records import Lead
from pipeline.protocols import native
from pipeline.protocols.integration.protocol import IntegrationProtocol
from pipeline.service import deliver, intake, lifecycle
from tests.helpers import ScriptedBuyers, load_tree, make_lead

NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 1,
           "rerun_interval_s": 1, "duplicate_window_h": 24, "stuck_after_s": 30}
BUYERS = 10

# stage: (transactions, statements) at most, for one lead sold at ten buyers on a warm process.
CEILINGS = {"intake": (1, 1), "validate": (1, 3), "score": (1, 2), "ping": (2, 3),
            "deliver": (2, 2)}


class Counting:
    """A cursor that counts what it sends (execute_values goes through execute too)."""

    def __init__(self, cur, tally: Counter):
        self._cur, self._tally = cur, tally

    def execute(self, query, params=None):
        self._tally["statements"] += 1
        self._tally[" ".join(str(query)[:70].split())] += 1
        return self._cur.execute(query, params)

    def commit_with(self, query, params=None):
        self._tally["statements"] += 1
        self._tally["sent with the COMMIT"] += 1
        self._tally[" ".join(str(query)[:70].split())] += 1
        return self._cur.commit_with(query, params)

    def __getattr__(self, name):
        return getattr(self._cur, name)

    def __iter__(self):
        return iter(self._cur)


@pytest.fixture
def counted(clean_db, monkeypatch):
    """(tallies by stage, a setter for the stage being counted)."""
    monkeypatch.setattr(intake, "dispatch", lambda nudges: None)   # the stages run here
    one_shard = dataclasses.replace(lifecycle.settings, ping_shard_size=50)
    monkeypatch.setattr(lifecycle, "settings", one_shard)
    tallies: dict[str, Counter] = {}
    stage = ["setup"]
    real = db.transaction

    @contextlib.contextmanager
    def transaction(url=None, each_statement=False, durable=True):
        tally = tallies.setdefault(stage[0], Counter())
        tally["transactions"] += 1
        tally["without BEGIN and COMMIT"] += each_statement
        tally["durable"] += durable
        with real(url, each_statement=each_statement, durable=durable) as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")     # rows written, counted below
            yield Counting(cur, tally)

    monkeypatch.setattr(db, "transaction", transaction)

    def at(name: str) -> None:
        stage[0] = name
    return tallies, at


def rows_written() -> int:
    time.sleep(0.1)           # each backend reports when it goes idle
    with db.transaction() as cur:
        cur.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) AS n"
                    " FROM pg_stat_user_tables")
        return int(cur.fetchone()["n"])


def lead_updates() -> tuple[int, int]:
    """(updates, HOT updates) of the leads table so far."""
    time.sleep(0.1)
    with db.transaction() as cur:
        cur.execute("SELECT n_tup_upd AS n, n_tup_hot_upd AS hot FROM pg_stat_user_tables"
                    " WHERE relname = 'leads'")
        row = cur.fetchone()
        return int(row["n"]), int(row["hot"])


@contextlib.contextmanager
def ten_bidders():
    """Ten buyers on a local HTTP server that all bid and accept every post, as the tree."""
    server = ScriptedBuyers()
    for i in range(BUYERS):
        server.add(f"b{i}", 10.0 + i, [(200, {"accepted": True}, 0)])
    server.start()
    try:
        load_tree(server.tree(NETWORK))
        yield
    finally:
        server.stop()


def sell_one(at, seed: int) -> str:
    at("intake")
    lead_id = submit_lead(make_lead("solar", seed=seed))
    at("validate")
    [score] = lifecycle.validate_lead(lead_id)
    at("score")
    [ping] = lifecycle.score_lead(*score.args)
    at("ping")
    [post] = lifecycle.ping_shard(*ping.args)
    at("deliver")
    assert deliver.deliver_post(*post.args) == []
    at("done")
    return lead_id


def test_one_lead_costs_at_most_its_statements(counted):
    tallies, at = counted
    with ten_bidders():
        sell_one(at, seed=1)                 # a cold process reads the tree once
        tallies.clear()
        before, updates_before = rows_written(), lead_updates()
        lead_id = sell_one(at, seed=2)
        written = rows_written() - before
        updates = [n - m for n, m in zip(lead_updates(), updates_before, strict=True)]
    with db.transaction() as cur:
        cur.execute("SELECT status FROM leads WHERE id=%s", (lead_id,))
        assert cur.fetchone()["status"] == "sold"
        # Statuses passed through in one statement keep their order on the timeline.
        cur.execute("SELECT status, detail FROM lead_events WHERE lead_id=%s ORDER BY id", (lead_id,))
        timeline = [(e["status"], e["detail"]) for e in cur.fetchall()]
        # Pings and timeline entries have no foreign keys (082): each is written from its
        # parent's row, the ping's lead its auction's.
        cur.execute("SELECT count(*) AS n, count(*) FILTER (WHERE p.lead_id = a.lead_id) AS whole,"
                    " count(*) FILTER (WHERE p.lead_id = %s) AS ours"
                    " FROM pings p LEFT JOIN auctions a ON a.id = p.auction_id", (lead_id,))
        assert tuple(cur.fetchone().values()) == (2 * BUYERS, 2 * BUYERS, BUYERS)   # both leads'
        # Nor post attempts and auction shards (084): each written from its lead's or auction's
        # row; nor sales (089): from the lead's row and its awarded ping's, that ping's buyer.
        cur.execute("SELECT (SELECT count(*) FROM lead_events e WHERE NOT EXISTS"
                    "   (SELECT FROM leads l WHERE l.id = e.lead_id))"
                    " + (SELECT count(*) FROM post_attempts a WHERE NOT EXISTS"
                    "   (SELECT FROM leads l JOIN pings p ON p.lead_id = l.id"
                    "    WHERE l.id = a.lead_id AND p.id = a.ping_id))"
                    " + (SELECT count(*) FROM auction_shards s WHERE NOT EXISTS"
                    "   (SELECT FROM auctions a WHERE a.id = s.auction_id))"
                    " + (SELECT count(*) FROM sales s WHERE NOT EXISTS"
                    "   (SELECT FROM leads l JOIN pings p ON p.lead_id = l.id WHERE l.id = s.lead_id"
                    "    AND p.id = s.ping_id AND p.buyer_id = s.buyer_id)) AS orphans")
        assert cur.fetchone()["orphans"] == 0
        cur.execute("SELECT count(*) AS n FROM sales")
        assert cur.fetchone()["n"] == 2                                              # both leads
    assert [s for s, _ in timeline] == ["received", "validated", "scored", "auctioning", "delivering",
                                        "sold"]
    assert isinstance(timeline[2][1]["score"], int) and timeline[3][1] == {"cycle": 1, "tier": 1}
    # The moves between the validation (the contact's hashes) and the sale (out of flight) change
    # no column any index of the lead names, so each may be a HOT update (the row rewritten on
    # its page, no index touched) when its page has room: how many are depends on the pages.
    with db.transaction() as cur:
        cur.execute("SELECT string_agg(pg_get_indexdef(indexrelid), ' ') AS defs FROM pg_index"
                    " WHERE indrelid = 'leads'::regclass")
        indexes = cur.fetchone()["defs"]
    for column in ("status", "status_at", "cycle", "auction_id", "award_ping_id", "score", "signals"):
        assert not re.search(rf"\b{column}\b", indexes), (column, indexes)
    # Nor does a shard's claim of its auction, which starts its clock (087).
    with db.transaction() as cur:
        cur.execute("SELECT string_agg(pg_get_indexdef(indexrelid), ' ') AS defs FROM pg_index"
                    " WHERE indrelid = 'auctions'::regclass")
        indexes = cur.fetchone()["defs"]
    for column in ("first_ping_at", "deadline_at"):
        assert not re.search(rf"\b{column}\b", indexes), (column, indexes)
    table = {s: (t["transactions"], t["statements"]) for s, t in tallies.items() if s in CEILINGS}
    for s, t in tallies.items():
        print(s, dict(t))
    print(f"\nper lead at {BUYERS} buyers: {table};"
          f" {sum(t for t, _ in table.values())} transactions,"
          f" {sum(s for _, s in table.values())} statements, {written} rows written,"
          f" leads updated {updates[0]} times ({updates[1]} HOT)")
    for stage, (most_xacts, most_statements) in CEILINGS.items():
        assert table[stage][0] <= most_xacts, (stage, table[stage])
        assert table[stage][1] <= most_statements, (stage, table[stage])
    # The award's move to delivering ends the ping stage's second transaction: it goes out with
    # the COMMIT, so the deliver nudge leaves one round trip sooner.
    assert tallies["ping"]["sent with the COMMIT"] == 1, tallies["ping"]
    # Its first, the shard's claim, is one statement committed as it answers: the pings go out
    # one round trip sooner. So is deliver's claim, which writes the attempt: the post too.
    assert tallies["ping"]["without BEGIN and COMMIT"] == 1, tallies["ping"]
    assert tallies["deliver"]["without BEGIN and COMMIT"] == 1, tallies["deliver"]
    # The score stage's move to auctioning (the auction opened) goes out with its COMMIT: the
    # ping message leaves one round trip sooner.
    assert tallies["score"]["sent with the COMMIT"] == 1, tallies["score"]
    # Only what is answered outside waits for the disk: the intake (its 202) and deliver (the
    # attempt written before the post goes out, and the post's outcome). Validate, score and
    # ping commit without waiting; deliver's first commit flushes them (db.py says why).
    for stage in ("intake", "deliver"):
        assert tallies[stage]["durable"] == tallies[stage]["transactions"], (stage, tallies[stage])
    for stage in ("validate", "score", "ping"):
        assert tallies[stage]["durable"] == 0, (stage, tallies[stage])


def _has_lz4() -> bool:
    """Whether the server was built with lz4 (migration 086 keeps pglz on one that was not)."""
    with db.transaction() as cur:
        cur.execute("SELECT 'lz4' = ANY(enumvals) AS lz4 FROM pg_settings"
                    " WHERE name = 'default_toast_compression'")
        return cur.fetchone()["lz4"]


def test_a_lead_row_past_the_compression_size_compresses_signals_with_lz4_not_facts(counted):
    """Scoring takes most lead rows just past the size at which PostgreSQL compresses a row's
    values (migration 086): signals is the value compressed, with lz4; facts stays as written
    (pglz tried it first and gave up, on every lead). Nothing is moved out of line, and every
    value reads back as the stages wrote it."""
    _, at = counted
    with ten_bidders():
        ids = [sell_one(at, seed=seed) for seed in range(8)]
    with db.transaction() as cur:
        cur.execute("SELECT id, pg_column_compression(signals) AS signals,"
                    " pg_column_compression(facts) AS facts, pg_column_compression(contact) AS contact,"
                    " pg_column_size(l.*) AS size, signals AS signals_value, facts AS facts_value"
                    " FROM leads l WHERE id = ANY(%s::uuid[])", ([str(i) for i in ids],))
        rows = cur.fetchall()
        cur.execute("SELECT pg_relation_size(reltoastrelid) AS n FROM pg_class WHERE relname = 'leads'")
        out_of_line = cur.fetchone()["n"]
    assert len(rows) == 8
    compressed = [r for r in rows if r["signals"] is not None]
    assert compressed, [r["size"] for r in rows]       # some rows needed it (most do)
    assert {r["signals"] for r in compressed} == {"lz4" if _has_lz4() else "pglz"}
    assert {r["facts"] for r in rows} == {None} and {r["contact"] for r in rows} == {None}
    assert out_of_line == 0
    for r in rows:
        assert set(r["signals_value"]) >= {"form_time", "email_valid"} and r["facts_value"]["geo"]


def test_the_narrow_claims_give_the_stages_and_the_post_all_they_read(counted):
    """The validate, score and deliver claims read only some of the lead's columns (each column
    of a claim's result costs the server): what each stage and the post it sends read of the
    lead is the same as from the whole row."""
    _, at = counted
    with ten_bidders():
        lead_id = submit_lead(make_lead("solar", seed=5))
        with db.transaction() as cur:
            validating = store.claim_to_validate(cur, lead_id)[0]
            whole = Lead.from_row(cycles.lead_row(cur, lead_id))
        assert validation.normalise({**validating.as_dict(), "consent": {}}) == validation.normalise(
            {**whole.as_dict(), "consent": {}})
        [score] = lifecycle.validate_lead(lead_id)
        with db.transaction() as cur:
            scoring_lead, consent, history = store.claim_to_score(cur, lead_id, lifecycle.now_utc())
            whole = Lead.from_row(cycles.lead_row(cur, lead_id))
        found = validation.Normalised.from_facts(whole.facts)
        assert (scoring.score({**scoring_lead.as_dict(), "consent": consent}, found, history)
                == scoring.score({**whole.as_dict(), "consent": consent}, found, history))
        scored = {"score": 50, "signals": {"form_time": 1.0}}
        assert (lifecycle.ping_view(dataclasses.replace(scoring_lead, **scored))
                == lifecycle.ping_view(dataclasses.replace(whole, **scored)))
        [ping] = lifecycle.score_lead(*score.args)
        [post] = lifecycle.ping_shard(*ping.args)
        with db.transaction() as cur:
            posting, consent, awarded, *_ = store.claim_post(cur, lead_id)
            whole = Lead.from_row(cycles.lead_row(cur, lead_id))
        assert deliver.deliver_post(*post.args) == []
    assert posting.status == "delivering" and posting.signals and posting.award_ping_id == awarded.id
    assert posting.auction_id == whole.auction_id and posting.cycle == whole.cycle == 1
    facts = {"consent": consent, "ping_id": awarded.id, "ping_ref": awarded.ref,
             "price_cents": awarded.bid_cents}
    assert (native.post_body(posting.as_dict(), consent, ping_id=awarded.id, ping_ref=awarded.ref,
                             price_cents=awarded.bid_cents)
            == native.post_body(whole.as_dict(), consent, ping_id=awarded.id, ping_ref=awarded.ref,
                                price_cents=awarded.bid_cents))
    stub = types.SimpleNamespace(credentials={})
    assert (IntegrationProtocol.post_context(stub, {**facts, "lead": posting.as_dict()})
            == IntegrationProtocol.post_context(stub, {**facts, "lead": whole.as_dict()}))
    assert lifecycle.ping_view(posting) == lifecycle.ping_view(whole)
