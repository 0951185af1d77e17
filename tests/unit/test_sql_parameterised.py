"""Every value reaches PostgreSQL as a parameter: SQL text is never built from data.

The SQL of a ``.execute(...)`` or ``.commit_with(...)`` call, or of a ``prepared(...)``
statement wherever it is built, is a literal, a ``psycopg2.sql`` composition, or an
f-string whose every ``{…}`` is a fragment the code itself builds (a column list, a table
name from a constant, a CTE) — those are listed below, each reviewed. A new interpolation, a
``%``-formatted or ``.format``-ed string fails here until it is reviewed and listed.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (file, interpolated expression) -> why it is no data
REVIEWED = {
    ("pipeline/adapters/store/leads.py", "moved"):
        "a move's SQL, built by moved_cte(): column names from the keyword arguments of move() (called"
        " by our code only), a further condition from our code (sell's), the values %(c_name)s"
        " parameters",
    ("pipeline/adapters/store/auctions.py", "moved"):
        "the lead's move to auctioning, built by moved_cte() from constant column names; the values"
        " %(c_name)s parameters",
    ("pipeline/adapters/store/leads.py", "tree.VERSION"): "the tree version's subquery, a constant",
    ("pipeline/adapters/store/leads.py", "CONSENT_AS"): "the consent columns, a constant",
    ("pipeline/adapters/store/leads.py", "VALIDATE_READS"):
        "the lead's columns the validate stage reads, a constant",
    ("pipeline/adapters/store/leads.py", "SCORE_READS"):
        "the lead's columns the score stage reads, a constant",
    ("pipeline/adapters/store/delivery.py", "POST_READS"): "the lead's columns a post reads, a constant",
    ("pipeline/adapters/store/delivery.py", "tree.VERSION"): "the tree version's subquery, a constant",
    ("pipeline/adapters/store/delivery.py", "CONSENT_AS"): "the consent columns, a constant",
    ("pipeline/adapters/store/delivery.py", "PING_AS"):
        "the awarded ping's columns, from the Ping record's field names (a constant)",
    ("pipeline/adapters/store/auctions.py", "tree.VERSION"): "the tree version's subquery, a constant",
    ("pipeline/adapters/store/tree.py", "VERSION"): "the tree version's subquery, a constant",
    ("pipeline/adapters/db.py", "query.name"): "a prepared statement's name: pt_ and an md5 of its text",
    ("pipeline/adapters/db.py", "query.text"):
        "a prepared(...) statement's own text, its placeholders numbered $1 … $n: values go to EXECUTE",
    ("pipeline/adapters/store/auctions.py", "STARTS_CLOCK"): "a condition on columns, a constant",
    ("pipeline/adapters/store/auctions.py", "_INSERT_PINGS"):
        "the pings' INSERT, a constant: one %(name)s::type[] placeholder per column of a constant"
        " list (values go as parameters) and those column names",
    ("pipeline/adapters/retention.py", "table"): "a table name from a constant tuple",
    ("pipeline/adapters/store/tree.py", "', '.join(columns)"): "the buyers table's own column names",
    ("pipeline/adapters/store/tree.py", "', '.join(('%(' + c + ')s' for c in columns))"):
        "one %(name)s placeholder per column: the values go as parameters",
    ("pipeline/adapters/store/tree.py", "updates"): "SET c=EXCLUDED.c over the same column names",
    ("pipeline/adapters/store/tree.py", "differs"): "IS DISTINCT FROM over the same column names",
    ("pipeline/adapters/retention.py", "views.buyer_detail('start', 'next')"):
        "a CTE the code builds, its values still %(start)s / %(next)s parameters",
    ("pipeline/adapters/store/cycles.py", "POST_IN_FLIGHT"):
        "a condition on the lead's post attempts, a constant",
    ("pipeline/adapters/metrics.py", "POST_IN_FLIGHT"):
        "the sweep's condition on a lead's post attempts (store.cycles), a constant",
    ("pipeline/adapters/db.py", "text"):
        "commit_with's statement as _statement() wrote it (its values still parameters), before ;COMMIT",
    ("pipeline/adapters/store/auctions.py", "' FOR UPDATE' if lock else ''"): "a row lock or none, constants",
    ("pipeline/adapters/store/cycles.py", "PARTIAL_INDEX_SCAN"):
        "planner settings for the statement's transaction (SET LOCAL ...), a constant",
    ("pipeline/adapters/store/auctions.py", "PARTIAL_INDEX_SCAN"):
        "planner settings for the statement's transaction (store.cycles), a constant",
    ("pipeline/adapters/metrics.py", "PARTIAL_INDEX_SCAN"):
        "planner settings for the statement's transaction (store.cycles), a constant",
    ("pipeline/adapters/views.py", "buyer_detail('detail', 'until')"):
        "a CTE the code builds, its values still %(detail)s / %(until)s parameters",
}


def _sql_arguments():
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            # A prepared statement's text is the SQL, wherever it is built (it may be sent later,
            # from a name): prepared("…") is read as "…".
            if ((isinstance(node.func, ast.Attribute)
                 and node.func.attr in ("execute", "executemany", "commit_with"))
                    or (isinstance(node.func, ast.Name) and node.func.id == "prepared")):
                sql = node.args[0]
                while (isinstance(sql, ast.Call) and isinstance(sql.func, ast.Name)
                       and sql.func.id == "prepared" and sql.args):
                    sql = sql.args[0]
                yield path.relative_to(ROOT).as_posix(), sql


def _pieces(sql):
    """The parts of SQL text joined with ``+``: each side, down to its strings and names."""
    if isinstance(sql, ast.BinOp) and isinstance(sql.op, ast.Add):
        yield from _pieces(sql.left)
        yield from _pieces(sql.right)
    else:
        yield sql


def test_no_sql_is_built_from_data():
    found, problems = set(), []
    for where, whole in _sql_arguments():
        joined = isinstance(whole, ast.BinOp) and isinstance(whole.op, ast.Add)
        for sql in _pieces(whole):
            if joined and not isinstance(sql, ast.Constant | ast.JoinedStr):
                # A piece added to SQL text is reviewed as an interpolation is.
                expression = ast.unparse(sql)
                found.add((where, expression))
                if (where, expression) not in REVIEWED:
                    problems.append(f"{where}: + {expression} in SQL text")
            elif isinstance(sql, ast.JoinedStr):
                for part in sql.values:
                    if isinstance(part, ast.FormattedValue):
                        expression = ast.unparse(part.value)
                        found.add((where, expression))
                        if (where, expression) not in REVIEWED:
                            problems.append(f"{where}: {{{expression}}} in SQL text")
            elif isinstance(sql, ast.BinOp) and isinstance(sql.op, ast.Mod):
                problems.append(f"{where}: %-formatted SQL (pass the values as parameters)")
            elif (isinstance(sql, ast.Call) and isinstance(sql.func, ast.Attribute)
                  and sql.func.attr == "format" and isinstance(sql.func.value, ast.Constant)):
                problems.append(f"{where}: str.format'ed SQL (use psycopg2.sql for identifiers)")
    assert not problems, problems
    # A reviewed entry that no longer exists is stale: keep the list true.
    assert set(REVIEWED) <= found, set(REVIEWED) - found
