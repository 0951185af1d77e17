"""Prepared statements: a marked statement is prepared once per pooled connection and executed
with its values, each coerced to its parameter's type; a list goes as one array literal (arrays
of NULLs, of JSON texts, of awkward strings included)."""
from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from psycopg2.extras import Json

from pipeline.adapters import db
from pipeline.adapters import prepared as sql_values
from pipeline.adapters.prepared import prepared
from pipeline.domain.records import Outcome


def test_placeholders_are_numbered_once_per_name_and_in_order_when_positional():
    named = prepared("SELECT %(a)s, %(b)s, %(a)s, 7 %% 2")
    assert (named.text, named.keys) == ("SELECT $1, $2, $1, 7 % 2", ("a", "b"))
    positional = prepared("SELECT %s, %s")
    assert (positional.text, positional.keys) == ("SELECT $1, $2", (0, 1))
    assert prepared("SELECT %s, %s") is positional           # built once per text


def test_a_statement_is_prepared_once_per_connection_and_survives_a_rollback(database):
    statement = prepared("SELECT %(n)s::int + 1 AS n, %(ids)s::uuid[] AS ids, %(bids)s::bigint[] AS bids,"
                         " %(docs)s::jsonb[] AS docs")
    ids = [uuid.uuid4(), uuid.uuid4()]
    values = {"n": 41, "ids": ids, "bids": [None, None], "docs": [Json({"a": 1}), None]}
    with pytest.raises(ZeroDivisionError), db.transaction() as cur:
        cur.execute(statement, values)
        raise ZeroDivisionError              # rolled back: the statement stays prepared
    for _ in range(3):
        with db.transaction() as cur:
            cur.execute(statement, values)
            row = cur.fetchone()
            cur.execute("SELECT count(*) AS n FROM pg_prepared_statements WHERE name = %s",
                        (statement.name,))
            assert cur.fetchone()["n"] == 1
    assert (row["n"], row["ids"], row["bids"], row["docs"]) == (42, ids, [None, None], [{"a": 1}, None])


def test_a_value_other_than_an_array_goes_uncast_and_is_coerced_to_its_parameters_type(database):
    statement = prepared("SELECT %(t)s::text AS t, %(at)s::timestamptz AS at, %(doc)s::jsonb AS doc,"
                         " %(none)s::int AS none, make_interval(secs => %(s)s) AS span, %(id)s::uuid AS id,"
                         " %(ok)s::boolean AS ok, %(n)s::bigint AS n")
    at = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)
    values = {"t": "it's", "at": at, "doc": Json({"a": [1]}), "none": None, "s": 1.5,
              "id": uuid.uuid4(), "ok": True, "n": 2**40}
    with db.transaction() as cur:
        cur.execute(statement, values)
        row = cur.fetchone()
    assert "::" not in statement.execute
    assert row == {"t": "it's", "at": at, "doc": {"a": [1]}, "none": None, "span": timedelta(seconds=1.5),
                   "id": values["id"], "ok": True, "n": 2**40}


def test_a_list_goes_as_one_array_literal_and_comes_back_as_it_was(database):
    """Quotes, backslashes, commas, braces, the text NULL, empty and non-ASCII strings, NULLs,
    JSON texts with quotes, a str enum, numbers, booleans, UUIDs, times, an empty and a nested
    list: each array arrives element for element as psycopg2's ARRAY[…] would have sent it."""
    statement = prepared("SELECT %(texts)s::text[] AS texts, %(docs)s::jsonb[] AS docs,"
                         " %(nums)s::float8[] AS nums, %(big)s::bigint[] AS big, %(oks)s::boolean[] AS oks,"
                         " %(ids)s::uuid[] AS ids, %(ats)s::timestamptz[] AS ats, %(none)s::int[] AS none,"
                         " %(grid)s::int[] AS grid, %(outcomes)s::text[] AS outcomes")
    texts = ['it\'s "quoted"', "back\\slash\\", "a,b", "{x}", "NULL", "", "ünï ✓", None, " spaced "]
    at = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)
    values = {"texts": texts, "docs": [Json({"say": 'he said "hi" \\ bye', "n": [1, None]}), None],
              "nums": [1.5, -2.0, 1e-05, 3], "big": [2**40, None, -1], "oks": [True, False, None],
              "ids": [uuid.uuid4(), None], "ats": [at, at + timedelta(microseconds=1)], "none": [],
              "grid": [[1, 2], [3, 4]], "outcomes": [Outcome.ACCEPT, Outcome.REJECT]}
    with db.transaction() as cur:
        cur.execute(statement, values)
        row = cur.fetchone()
        cur.execute("SELECT %(texts)s::text[] AS texts, %(docs)s::jsonb[] AS docs", values)   # psycopg2's own
        unmarked = cur.fetchone()
    assert row["texts"] == texts == unmarked["texts"]
    assert row["docs"] == [{"say": 'he said "hi" \\ bye', "n": [1, None]}, None] == unmarked["docs"]
    assert (row["nums"], row["big"], row["oks"], row["ids"], row["ats"], row["none"], row["grid"]) == (
        [1.5, -2.0, 1e-05, 3.0], [2**40, None, -1], [True, False, None], values["ids"], values["ats"],
        [], [[1, 2], [3, 4]])
    assert row["outcomes"] == ["accept", "reject"]


@pytest.mark.parametrize("element", [{"a": 1}, b"raw", timedelta(seconds=1), (1, 2)])
def test_an_array_element_psycopg2_would_not_write_into_an_array_is_refused_before_sending(database, element):
    statement = prepared("SELECT %s::text[] AS texts")
    with pytest.raises(psycopg2.ProgrammingError, match="can't adapt"), db.transaction() as cur:
        cur.execute(statement, ([element],))


def test_a_prepared_statement_is_prepared_again_on_the_connection_that_replaces_a_lost_one(database):
    """A backend terminated under the pool (a PostgreSQL restart, an administrator): the
    transaction that meets it is an outage, and the next one, on a fresh connection that has
    prepared nothing yet, prepares the statement there and gives the same answer."""
    statement = prepared("SELECT %(ids)s::uuid[] AS ids, %(n)s::int * 2 AS n")
    values = {"ids": [uuid.uuid4()], "n": 21}
    with db.transaction() as cur:
        cur.execute(statement, values)
        first = cur.fetchone()
        cur.execute("SELECT pg_backend_pid() AS pid")
        pid = cur.fetchone()["pid"]
    admin = psycopg2.connect(database)
    admin.autocommit = True
    with admin.cursor() as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()
    with pytest.raises(db.DatabaseDown), db.transaction() as cur:
        cur.execute(statement, values)

    def again():
        with db.transaction() as cur:
            cur.execute(statement, values)
            row = cur.fetchone()
            cur.execute("SELECT pg_backend_pid() AS pid, (SELECT count(*) FROM pg_prepared_statements"
                        " WHERE name = %s) AS prepared", (statement.name,))
            return row, cur.fetchone()
    row, there = db.retrying(again)
    assert row == first == {"ids": values["ids"], "n": 42}
    assert there["pid"] != pid and there["prepared"] == 1


def test_an_unmarked_statement_is_sent_as_it_is(database):
    with db.transaction() as cur:
        cur.execute("SELECT %s::int AS n", (5,))
        assert cur.fetchone()["n"] == 5
        cur.execute("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE %s",
                    ("%$1::int AS n%",))
        assert cur.fetchone()["n"] == 0


def test_a_migration_under_prepared_statements_costs_one_retry_not_a_broken_worker(database):
    """A column added while workers run (a rolling deploy) outdates every pooled connection's
    `SELECT *`: the transaction that meets it is refused as an outage (the stages retry those),
    the pool's connections are dropped, and the next transaction prepares afresh."""
    with db.transaction() as cur:
        cur.execute("DROP TABLE IF EXISTS prepared_probe")
        cur.execute("CREATE TABLE prepared_probe (id int PRIMARY KEY)")
        cur.execute("INSERT INTO prepared_probe VALUES (1)")
    statement = prepared("SELECT * FROM prepared_probe WHERE id = %s")
    try:
        with db.transaction() as cur:
            cur.execute(statement, (1,))
            assert cur.fetchone() == {"id": 1}
        migrator = psycopg2.connect(database)  # the migration, on a connection of its own
        with migrator, migrator.cursor() as other:
            other.execute("ALTER TABLE prepared_probe ADD COLUMN note text DEFAULT 'new'")
        migrator.close()
        with pytest.raises(db.DatabaseDown, match="schema change"), db.transaction() as cur:
            cur.execute(statement, (1,))
        assert db.retrying(lambda: _select(statement)) == {"id": 1, "note": "new"}
    finally:
        with db.transaction() as cur:
            cur.execute("DROP TABLE IF EXISTS prepared_probe")


def _select(statement):
    with db.transaction() as cur:
        cur.execute(statement, (1,))
        return cur.fetchone()


@contextlib.contextmanager
def probe_table(name: str):
    """An empty table ``name`` (id int PRIMARY KEY) for the block, dropped after it."""
    with db.transaction() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {name} (id int PRIMARY KEY)")
        cur.execute(f"TRUNCATE {name}")
    try:
        yield
    finally:
        with db.transaction() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")


def ids_in(name: str) -> list[int]:
    with db.transaction() as cur:
        cur.execute(f"SELECT array_agg(id ORDER BY id) AS ids FROM {name}")
        return cur.fetchone()["ids"]


def test_a_transactions_last_statement_goes_with_its_commit(database):
    """commit_with: the statement and its COMMIT in one message; the transaction is over when it
    returns (another connection sees the row before the block ends), the cursor takes nothing
    more, and a statement that fails skips the COMMIT and rolls back."""
    statement = prepared("INSERT INTO commit_probe VALUES (%s)")
    with probe_table("commit_probe"):
        with db.transaction() as cur:
            cur.execute("INSERT INTO commit_probe VALUES (1)")
            cur.commit_with(statement, (2,))
            other = psycopg2.connect(database)
            with other, other.cursor() as look:
                look.execute("SELECT array_agg(id ORDER BY id) FROM commit_probe")
                assert look.fetchone()[0] == [1, 2]
            other.close()
            with pytest.raises(RuntimeError, match="committed"):
                cur.execute("SELECT 1")
        with pytest.raises(psycopg2.errors.UniqueViolation), db.transaction() as cur:
            cur.execute("INSERT INTO commit_probe VALUES (3)")
            cur.commit_with(statement, (2,))          # fails: nothing of this transaction stays
        assert ids_in("commit_probe") == [1, 2]


def test_a_cursor_of_statements_each_its_own_transaction_sends_no_begin_or_commit(database):
    """transaction(each_statement=True): each statement is committed when it answers (another
    connection sees its row inside the block, and no transaction is left open to COMMIT), so a
    later statement that fails takes nothing back; the error still reaches the caller."""
    statement = prepared("INSERT INTO each_probe VALUES (%s) RETURNING id")
    with probe_table("each_probe"):
        with pytest.raises(psycopg2.errors.UniqueViolation), \
                db.transaction(each_statement=True) as cur:
            cur.execute(statement, (1,))
            assert cur.fetchone()["id"] == 1
            assert cur.connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
            other = psycopg2.connect(database)
            with other, other.cursor() as look:
                look.execute("SELECT array_agg(id) FROM each_probe")
                assert look.fetchone()[0] == [1]
            other.close()
            cur.execute(statement, (1,))
        assert ids_in("each_probe") == [1]


def test_a_lazy_transaction_commits_without_waiting_and_leaves_the_next_one_durable(database):
    """transaction(durable=False): each of its statements runs with synchronous_commit off, in a
    transaction (BEGIN) and in a cursor of statements each its own (the implicit transaction of
    its message), a prepared one or not, and its work is committed; the connection's next
    transaction, on the same pooled connection, waits for the disk again."""
    setting = prepared("SELECT current_setting('synchronous_commit') AS s, pg_backend_pid() AS pid")
    with probe_table("lazy_probe"):
        pids = set()
        for each in (False, True):
            with db.transaction(each_statement=each, durable=False) as cur:
                for query in (setting, "SELECT current_setting('synchronous_commit') AS s,"
                              " pg_backend_pid() AS pid"):
                    cur.execute(query)
                    row = cur.fetchone()
                    assert row["s"] == "off", (each, query)
                    pids.add(row["pid"])
                cur.execute("INSERT INTO lazy_probe VALUES (%s)", (int(each),))
            with db.transaction(each_statement=each) as cur:
                cur.execute(setting)
                row = cur.fetchone()
                assert (row["s"], row["pid"]) == ("on", *pids), each     # the same connection
        assert ids_in("lazy_probe") == [0, 1]


def test_json_and_jsonb_come_back_as_json_loads_reads_them(database):
    # The C scanner reads them (json.loads costs three Python calls more a value); a text it does
    # not take whole (a json value with whitespace around it) goes to json.loads.
    texts = ['{"a": [1, 2.5, "x\\u00e9\\"\\\\"], "b": null, "c": {"d": true}}', '"text"', "null", "[]",
             "12345678901234567890", "-0.5e-3"]
    with db.transaction() as cur:
        for text in texts:
            cur.execute("SELECT %s::jsonb AS b, %s::json AS j, %s::json AS padded,"
                        " ARRAY[%s::jsonb, NULL] AS arr", (text, text, f" \n{text} \t", text))
            row = cur.fetchone()
            cur.execute("SELECT %s::jsonb::text AS b", (text,))
            expected = json.loads(cur.fetchone()["b"])
            assert row == {"b": expected, "j": json.loads(text), "padded": json.loads(text),
                           "arr": [expected, None]}
            assert type(row["b"]) is type(expected)
        cur.execute("SELECT NULL::jsonb AS b, NULL::json AS j")
        assert cur.fetchone() == {"b": None, "j": None}


class _OwnStr(str):
    def __str__(self):
        return "not its value"


def test_array_elements_are_written_as_the_type_checks_wrote_them():
    # The commonest types are written inline or by type; the rest take the checks (a str enum,
    # a nested list, a Json, text types): the same literal either way. A subclass of str (a str
    # enum), once seen, is written by its type, as its value.
    elements = ["a", 'b"c', "d\\e", "", None, 0, -5, 2**70, True, False, 1.5, float("nan"),
                uuid.UUID(int=5), Outcome.ACCEPT, [1, None, "x", [True]], Json({"a": 1}),
                datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), _OwnStr('o"wn'), Outcome.REJECT]
    assert sql_values._array(elements) == "{" + ",".join(map(sql_values._any_element, elements)) + "}"
    assert [sql_values._element(e) for e in elements] == [sql_values._any_element(e) for e in elements]


def test_a_pooled_connection_never_compiles_a_query(database):
    """JIT is off for the pool's sessions: a query whose estimated cost passes jit_above_cost
    (stale or large statistics) would spend ~145 ms compiling what runs in 0.4 ms."""
    with db.transaction() as cur:
        cur.execute("SET LOCAL jit_above_cost = 0")                # every query would qualify
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT sum(g) FROM generate_series(1, 10) g")
        assert "JIT" not in cur.fetchone()["QUERY PLAN"][0]
        cur.execute("SELECT current_setting('jit') AS jit")
        assert cur.fetchone()["jit"] == "off"
