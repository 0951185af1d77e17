"""PostgreSQL connections (one small pool per process) and the schema migrations."""
from __future__ import annotations

import contextlib
import json
import json.scanner
import operator
import os
import threading
import time
from collections.abc import Iterator
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.errors
import psycopg2.extras
import psycopg2.pool
from psycopg2 import sql

from config.settings import settings
from pipeline.adapters.prepared import Prepared, literal

psycopg2.extras.register_uuid()

# json and jsonb values as psycopg2 reads them (json.loads), read by the C scanner directly:
# json.loads reaches it through three Python calls and two regular expressions, for every value
# of every row. A text the scanner does not take whole (whitespace around it) goes to json.loads.
_scan_json = json.scanner.make_scanner(json.JSONDecoder())


def _json_loads(text: str):
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)            # raises as psycopg2's reading did
    return value if end == len(text) else json.loads(text)


psycopg2.extras.register_default_json(globally=True, loads=_json_loads)
psycopg2.extras.register_default_jsonb(globally=True, loads=_json_loads)

_lock = threading.Lock()
_pools: dict[tuple[int, str], psycopg2.pool.ThreadedConnectionPool] = {}
_slots: dict[tuple[int, str], threading.BoundedSemaphore] = {}


class DatabaseDown(RuntimeError):
    """PostgreSQL does not answer."""


class DataRefused(ValueError):
    """PostgreSQL refused a value (SQLSTATE class 22). The server's message quotes the value,
    which may be personal data, so only the SQLSTATE travels on."""

    def __init__(self, pgcode: str | None):
        super().__init__(f"PostgreSQL refused a value (SQLSTATE {pgcode})")
        self.pgcode = pgcode


# ---- BEGIN with the first statement -------------------------------------------------------
# psycopg2 opens a transaction by sending BEGIN alone: a round trip of its own per transaction.
# The pool's connections run in autocommit mode instead, a transaction's first statement goes
# out as "BEGIN;<statement>" (one message, one round trip), and transaction() ends it with its
# own COMMIT or ROLLBACK. The transactions are the same; only the extra round trip is gone.

_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE


class _Connection(psycopg2.extensions.connection):
    """A pooled connection that knows which statements it has prepared; in autocommit mode, its
    transactions opened by its cursors' first statement and ended by transaction().

    JIT compilation is off for the connection's session: every statement here reads or writes a
    handful of rows, and PostgreSQL compiles a query whose estimated cost passes jit_above_cost
    (on a table whose statistics are stale or large), which took ~145 ms of a sweep that runs
    in 0.4 ms without it. One SET when the connection opens."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()
        self.autocommit = True
        with self.cursor() as cur:
            cur.execute("SET jit TO off")


_NAME = operator.attrgetter("name")     # a column's name (5x quicker than column[0])


class _Cursor(psycopg2.extensions.cursor):
    """Rows as plain dicts, column name to value. psycopg2's RealDictCursor builds each row in
    Python (a __setitem__ per column); here the column names are taken once per result and
    each row is dict(zip(names, values)), built in C."""

    _description = None
    _names: tuple[str, ...] = ()

    def _columns(self) -> tuple[str, ...]:
        # A new result has a new description tuple (the old one is held here, so never reused).
        description = self.description
        if description is not self._description:
            self._description = description
            self._names = tuple(map(_NAME, description or ()))
        return self._names

    def fetchone(self):
        row = super().fetchone()
        return None if row is None else dict(zip(self._columns(), row, strict=True))

    def fetchmany(self, size=None):
        rows = super().fetchmany(self.arraysize if size is None else size)
        names = self._columns()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetchall(self):
        rows = super().fetchall()
        names = self._columns()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row

    def execute(self, query, vars=None):
        if not isinstance(self.connection, _Connection):
            return super().execute(query, vars)
        if self._committed:
            raise RuntimeError("this transaction was committed with its last statement")
        return super().execute(*self._statement(query, vars))

    def commit_with(self, query: str, vars=None) -> None:
        """The transaction's last statement and its COMMIT, sent in one message: one round trip
        fewer. What comes back is the COMMIT's (no rows), so this is for a statement whose rows
        nobody reads, and the transaction is over: the cursor takes no statement after it, and
        an error raised afterwards can no longer roll it back. An error in the statement skips
        the COMMIT, and transaction() rolls back as for any other error."""
        if not isinstance(self.connection, _Connection):
            super().execute(query, vars)
            self.connection.commit()
        else:
            text, values = self._statement(query, vars)
            super().execute(text + ";COMMIT", values)
        self._committed = True

    _committed = False
    each_its_own = False      # transaction(each_statement=True)
    begin_text = "BEGIN;"     # what opens a transaction (transaction(durable=False) adds to it)
    each_prefix = ""          # what goes before each statement of each_its_own (the same)

    def _statement(self, query, vars) -> tuple:
        """The text to send (a prepared statement's EXECUTE, after a BEGIN when no transaction is
        open yet) and its values; a statement is PREPAREd on its first run on a connection."""
        if not isinstance(query, Prepared):
            return self._opening(query), vars
        if query.name not in self.connection.prepared:
            self.execute(f"PREPARE {query.name} AS {query.text}")     # may open the transaction
            self.connection.prepared.add(query.name)
        values = [literal(vars[k]) for k in query.keys] if isinstance(vars, dict) else \
            [literal(v) for v in vars or ()]
        # Each value goes as psycopg2 writes it (a quoted literal, a number, NULL; a list as one
        # array literal) and EXECUTE coerces it to its parameter's type: a cast would make the
        # server look each type up by its name again on every run (~3 % of its work).
        return self._opening(query.execute), values

    def _opening(self, query):
        """The query, after a BEGIN when no transaction is open yet (none for a cursor whose
        statements are each a transaction of their own)."""
        if self.each_its_own:
            prefix = self.each_prefix
        elif self.connection.info.transaction_status != _IDLE:
            return query
        else:
            prefix = self.begin_text
        if not prefix:
            return query
        if isinstance(query, sql.Composable):
            query = query.as_string(self)
        return (prefix.encode() if isinstance(query, bytes) else prefix) + query


def _end(conn, command: str) -> None:
    """COMMIT or ROLLBACK the transaction a cursor opened (none open: nothing to end)."""
    if conn.info.transaction_status != _IDLE:
        with conn.cursor() as cur:
            cur.execute(command)


def _pool(url: str) -> psycopg2.pool.ThreadedConnectionPool:
    # Keyed by pid: a prefork child must never reuse its parent's sockets.
    key = (os.getpid(), url)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                size = settings.db_pool_size
                try:
                    pool = psycopg2.pool.ThreadedConnectionPool(0, size, url, connect_timeout=5,
                                                                connection_factory=_Connection)
                except psycopg2.OperationalError as exc:
                    raise DatabaseDown(str(exc).strip()) from exc
                # psycopg2 closes a returned connection while the pool holds minconn or more:
                # with minconn=maxconn connections open on demand and then stay open.
                pool.minconn = size
                _slots[key] = threading.BoundedSemaphore(size)
                _pools[key] = pool
    return pool


# ---- commits that do not wait for the disk ------------------------------------------------
# A durable COMMIT waits until its WAL is flushed to disk: an fdatasync, ~0.2-0.4 ms and
# ~0.1 ms of the backend's CPU on this machine's kind when the box is not busy. A stage whose
# only effects outside PostgreSQL are further messages and pings (validate, score, ping, award)
# commits without waiting: its work is visible at once, and it is on disk within the WAL
# writer's next round (wal_writer_delay, 200 ms by default) or as soon as any durable commit
# is flushed after it, whichever comes first. Every step that answers outside (the intake's
# 202, the claim written before a post goes out, the post's outcome) commits durably, and that
# flush carries every commit before it. So a PostgreSQL crash can take back only the last
# fraction of a second of a lead's way to its post, never half of a transaction and never
# anything a publisher or a buyer was told: the lead is found in the status it had before,
# a message sent meanwhile finds nothing to claim, and the sweep re-drives it from there.
# (A crash of the whole machine is the same, with fsync on as it must be.)
_LAZY = "SET LOCAL synchronous_commit TO off;"


@contextlib.contextmanager
def transaction(url: str | None = None, *, each_statement: bool = False, durable: bool = True
                ) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor inside one transaction: committed on success, rolled back on any error.

    ``each_statement``: every statement the cursor sends is a transaction of its own, committed
    (and flushed) before its answer comes back, with no BEGIN and no COMMIT round trip: for
    work that is one statement (a claim), or statements that need nothing from each other.

    ``durable=False``: the commit does not wait for the disk (see above): for a stage whose
    work, if a PostgreSQL crash took it back, the sweep would do again, and that told nobody
    outside. Sent in the statement's own message (SET LOCAL: this transaction's alone; in the
    implicit transaction of a message of several statements, for each_statement).
    """
    url = url or settings.database_url
    pool = _pool(url)
    slot = _slots[(os.getpid(), url)]
    # More threads than connections wait for one here (psycopg2's pool would raise instead).
    if not slot.acquire(timeout=30):
        raise DatabaseDown("no free PostgreSQL connection in this process for 30 s")
    try:
        conn = pool.getconn()
    except psycopg2.OperationalError as exc:
        slot.release()
        raise DatabaseDown(str(exc).strip()) from exc
    broken = False
    try:
        with conn.cursor(cursor_factory=_Cursor) as cur:
            cur.each_its_own = each_statement
            if not durable:
                cur.begin_text, cur.each_prefix = "BEGIN;" + _LAZY, _LAZY
            yield cur
        _end(conn, "COMMIT")
    except psycopg2.OperationalError as exc:
        if _is_outage(conn, exc):
            broken = True
            raise DatabaseDown(str(exc).strip()) from exc
        _end(conn, "ROLLBACK")   # a deadlock or lock time-out: the caller sees it as it is
        raise
    except psycopg2.DataError as exc:
        _end(conn, "ROLLBACK")
        raise DataRefused(exc.pgcode) from None
    except psycopg2.errors.FeatureNotSupported as exc:
        if not _is_stale_plan(exc):
            _end(conn, "ROLLBACK")
            raise
        # A migration changed a table under this connection's prepared statements (a rolling
        # deploy): every pooled connection holds the old plans. Dropped, and the stage runs again
        # on a fresh connection (retried like an outage: its claim makes a second run harmless).
        broken = True
        raise DatabaseDown("a schema change outdated the prepared statements") from exc
    except BaseException:
        try:
            _end(conn, "ROLLBACK")
        except psycopg2.Error:
            broken = True
        raise
    finally:
        # A connection still in a transaction (its ROLLBACK failed) is closed, not pooled: in
        # autocommit mode the pool's own rollback would not end it.
        pool.putconn(conn, close=broken or conn.closed != 0
                     or conn.info.transaction_status != _IDLE)
        slot.release()
        if broken:
            _drop_idle(pool)


def _drop_idle(pool: psycopg2.pool.ThreadedConnectionPool) -> None:
    """One connection found dead means the server went away: every idle pooled connection is
    from before, so close them all and let the next transaction open a fresh one (else each
    would fail one more task after a PostgreSQL restart). psycopg2's pool keeps them in _pool."""
    with pool._lock:
        idle, pool._pool[:] = list(pool._pool), []
    for conn in idle:
        with contextlib.suppress(psycopg2.Error):
            conn.close()


def retrying(work, *, attempts: int = 3, wait_s: float = 0.2):
    """``work()`` again on a fresh connection when PostgreSQL dropped it (DatabaseDown), up to
    ``attempts`` times; ``work`` must be one whole transaction, safe to repeat."""
    for attempt in range(attempts):
        try:
            return work()
        except DatabaseDown:
            if attempt == attempts - 1:
                raise
            time.sleep(wait_s * (attempt + 1))


def _is_stale_plan(exc: psycopg2.Error) -> bool:
    """PostgreSQL's 'cached plan must not change result type': a prepared statement's table
    gained or lost a column since it was prepared."""
    return exc.pgcode == "0A000" and (exc.diag.source_function == "RevalidateCachedQuery"
                                      or "cached plan" in str(exc))


def _is_outage(conn, exc: psycopg2.OperationalError) -> bool:
    """A lost connection or a server going away, as opposed to a deadlock or a lock time-out."""
    code = exc.pgcode or ""
    return conn.closed != 0 or not code or code.startswith(("08", "57P"))


def reset_pools() -> None:
    """Drop every pooled connection (tests, and after PostgreSQL restarts)."""
    with _lock:
        for pool in _pools.values():
            pool.closeall()
        _pools.clear()
        _slots.clear()


def _admin_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path="/postgres")), name


def create_database(url: str) -> bool:
    """Create the database named in ``url`` when it is missing; True when created."""
    admin, name = _admin_url(url)
    conn = psycopg2.connect(admin, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        conn.close()


def drop_database(url: str) -> None:
    admin, name = _admin_url(url)
    reset_pools()
    conn = psycopg2.connect(admin, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


def migrations() -> list[tuple[str, str]]:
    folder = resources.files("pipeline.adapters") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def migrate(url: str | None = None) -> list[str]:
    """Apply the versioned SQL migrations not yet applied; returns the versions applied."""
    url = url or settings.database_url
    create_database(url)
    applied = []
    with transaction(url) as cur:
        # One migrator at a time: concurrent `db migrate` runs wait here.
        cur.execute("SELECT pg_advisory_xact_lock(727274)")
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        cur.execute("SELECT version FROM schema_migrations")
        done = {row["version"] for row in cur.fetchall()}
        for version, text in migrations():
            if version not in done:
                cur.execute(text)
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
    return applied
