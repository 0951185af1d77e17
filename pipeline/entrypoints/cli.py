"""The `pingtree` command: database, tree, leads, reports, the API, mock buyers, demo and bench."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from config.settings import settings
from pipeline.domain.fields import error_lines


def _print_json(doc) -> None:
    print(json.dumps(doc, indent=2, default=str))


def _shown(value) -> str:
    """Text from a buyer as the terminal should show it: control and format characters
    (escape sequences, bidi overrides) written as escapes, never acted on."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def cmd_db_migrate(args) -> int:
    from pipeline.adapters import db
    applied = db.migrate()
    print(f"migrated: {', '.join(applied)}" if applied else "database is up to date")
    _warn_invalid_secrets()
    return 0


def _warn_invalid_secrets() -> None:
    """Trees loaded before secrets were checked may hold plain ones: say so, by buyer."""
    from pipeline.adapters import db, store
    from pipeline.domain.buyer_secret import HINT, secret_problem
    with db.transaction() as cur:
        found = [(b.id, secret_problem(b.secret)) for b in store.buyers(cur) if b.active]
    for buyer_id, problem in found:
        if problem:
            print(f"buyer {buyer_id}: its secret {problem}. It is sent no ping and no post until you "
                  f"load a tree that gives it a valid one ({HINT}).", file=sys.stderr)


def cmd_buyer_secret(args) -> int:
    from pipeline.domain.buyer_secret import new_secret
    print(new_secret())
    return 0


def cmd_tree_load(args) -> int:
    from pipeline.adapters import db, store
    from pipeline.domain.leads import VERTICALS
    from pipeline.domain.tree import InvalidTree, parse_tree
    try:
        tree = parse_tree(Path(args.file).read_text(), VERTICALS, settings.allow_private_buyers)
    except InvalidTree as exc:
        print(f"{args.file}: refused, nothing was loaded:", file=sys.stderr)
        for line in error_lines(exc.errors):
            print(f"  {line}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with db.transaction() as cur:
        result = store.load_tree(cur, tree)
    print(f"loaded {len(tree['tiers'])} tiers and {len(tree['buyers'])} buyers "
          f"({result['buyers_changed']} changed, {result['buyers_deactivated']} deactivated)")
    return 0


def cmd_tree_show(args) -> int:
    from pipeline.adapters import db, store
    with db.transaction() as cur:
        _print_json(store.tree_document(cur))
    _warn_invalid_secrets()
    return 0


def _read_leads(source: str):
    """One JSON document (pretty-printed or not), else JSON lines."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    try:
        json.loads(text)
        yield 1, text.strip()
        return
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line


def cmd_submit(args) -> int:
    from pipeline.adapters import db
    from pipeline.domain.leads import InvalidLead
    from pipeline.entrypoints.http import BadBody, parse_body
    from pipeline.service.intake import IdempotencyConflict, submit_lead
    failed = 0
    for number, line in _read_leads(args.file):
        try:
            print(submit_lead(parse_body(line.encode())))
        except (BadBody, InvalidLead, IdempotencyConflict) as exc:
            failed += 1
            errors = getattr(exc, "errors", None)
            print(f"line {number}: refused", file=sys.stderr)
            for text in error_lines(errors) if errors else [str(exc)]:
                print(f"  {text}", file=sys.stderr)
        except db.DatabaseDown as exc:
            print(f"PostgreSQL is down: {exc}", file=sys.stderr)
            return 1
    return 2 if failed else 0


def cmd_lead(args) -> int:
    from pipeline.adapters import db, views
    with db.transaction() as cur:
        view = views.lead_view(cur, args.id)
    if view is None:
        print(f"no such lead: {args.id}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(view)
        return 0
    print(f"lead {view['lead_id']}  {view['status']}  {view['vertical']}  score {view['score']}"
          f"  cycles {view['cycles']}")
    if view["reject_reasons"]:
        print(f"  rejected: {_shown(', '.join(view['reject_reasons']))}")
    if view["sale"]:
        print(f"  sold to {view['sale']['buyer_id']} for {view['sale']['price']:.2f}")
    for p in view["pings"]:
        bid = f"{p['bid']:.2f}" if p["bid"] is not None else "-"
        print(f"  {p['kind']:8} c{p['cycle']} t{p['tier']} {p['buyer_id']:16} {p['outcome']:13}"
              f" bid {bid:>8}  {p['latency_ms'] if p['latency_ms'] is not None else '-':>5} ms"
              f"  {_shown(p['reason'])}")
    for s in view["skipped"]:
        print(f"  skipped  {s['buyer_id']:16} {_shown(s['reason'])}")
    for p in view["posts"]:
        late = f"  late answer: {p['late_outcome']}" if p["late_outcome"] else ""
        print(f"  post     #{p['attempt']} {p['buyer_id']:16} {p['outcome'] or 'in flight':13}"
              f" {p['http_status'] or '-'}  {p['reason'] or ''}{late}")
    for t in view["timeline"]:
        print(f"  {t['at']}  {t['status']}")
    return 0


def cmd_report(args) -> int:
    from pipeline.adapters import db, views
    with db.transaction() as cur:
        doc = views.report(cur)
    if args.json:
        _print_json(doc)
        return 0
    print("leads: " + ", ".join(f"{k} {v}" for k, v in sorted(doc["leads"].items())))
    print(f"revenue: {doc['revenue']:.2f}")
    print(f"{'buyer':16} {'pings':>6} {'accepts':>7} {'t/o':>5} {'err':>5} {'wins':>5} {'sold':>5}"
          f" {'post_rej':>8} {'revenue':>10} {'p50 ms':>7} {'p95 ms':>7}")
    for b in doc["buyers"]:
        print(f"{b['buyer_id']:16} {b['pings']:>6} {b['accepts']:>7} {b['timeouts']:>5} {b['errors']:>5}"
              f" {b['wins']:>5} {b['sold']:>5} {b['post_rejects']:>8} {b['revenue']:>10.2f}"
              f" {b['p50_ping_ms'] if b['p50_ping_ms'] is not None else '-':>7}"
              f" {b['p95_ping_ms'] if b['p95_ping_ms'] is not None else '-':>7}")
    for b in doc["buyers"]:
        if b["paused_until"]:
            print(f"{b['buyer_id']}: paused until {b['paused_until']:%Y-%m-%d %H:%M} UTC"
                  f" ({b['pause_reason']}; post reject rate {b['post_reject_rate']:.0%})")
    late = {b["buyer_id"]: b["late_accepts"] for b in doc["buyers"] if b["late_accepts"]}
    if doc["unresolved"] or late:
        print("for the operator: " + ", ".join(
            [f"{k} {v}" for k, v in sorted(doc["unresolved"].items())]
            + [f"late post acceptances by {k} {v}" for k, v in sorted(late.items())]))
    return 0


def cmd_billing(args) -> int:
    import re

    from pipeline.adapters import db, views
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        print("--month must be YYYY-MM", file=sys.stderr)
        return 2
    with db.transaction() as cur:
        doc = views.billing(cur, args.month)
    if args.json:
        _print_json(doc)
        return 0
    print(f"billing {doc['month']}: {doc['leads']} leads, {doc['total']:.2f}")
    for b in doc["buyers"]:
        print(f"  {b['buyer_id']:16} {b['leads']:>6} leads {b['amount']:>12.2f}")
    return 0


def cmd_return(args) -> int:
    from pipeline.adapters import db, store, views
    with db.transaction() as cur:
        if store.lead_row(cur, args.id) is None:
            print(f"no such lead: {args.id}", file=sys.stderr)
            return 1
        done = views.return_lead(cur, args.id, args.reason)
    print("returned: no longer billed" if done else "not returned: the lead has no open sale")
    return 0 if done else 1


def cmd_serve(args) -> int:
    from pipeline.entrypoints.http import serve
    serve(args.addr, threads=args.threads)
    return 0


def cmd_mock_buyers(args) -> int:
    from pipeline.devtools import mockbuyers
    return mockbuyers.main_from_args(args)


def cmd_bench(args) -> int:
    from pipeline.devtools import bench
    return bench.main_from_args(args)


def cmd_demo(args) -> int:
    from pipeline.devtools import demo
    return demo.main_from_args(args)


def cmd_chaos(args) -> int:
    from pipeline.devtools import chaos
    return chaos.main_from_args(args)


def cmd_up(args) -> int:
    from pipeline.devtools import stack
    return stack.main_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pingtree", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dbp = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd", required=True)
    dbp.add_parser("migrate", help="create the database if missing, apply migrations"
                   ).set_defaults(func=cmd_db_migrate)

    tree = sub.add_parser("tree", help="the buyer tree").add_subparsers(dest="tree_cmd", required=True)
    load = tree.add_parser("load", help="upsert a tree file (refused whole when any part is bad)")
    load.add_argument("file")
    load.set_defaults(func=cmd_tree_load)
    tree.add_parser("show", help="print the loaded tree (secrets masked)").set_defaults(func=cmd_tree_show)

    buyer = sub.add_parser("buyer", help="buyers").add_subparsers(dest="buyer_cmd", required=True)
    buyer.add_parser("secret", help="print a fresh signing secret for a buyer's tree entry"
                     " (whsec_ + base64 of 32 random bytes)").set_defaults(func=cmd_buyer_secret)

    submit = sub.add_parser("submit", help="submit leads: one JSON object or JSON lines")
    submit.add_argument("file", help="a file, or - for standard input")
    submit.set_defaults(func=cmd_submit)

    lead = sub.add_parser("lead", help="one lead's status, pings and timeline (no personal data)")
    lead.add_argument("id")
    lead.add_argument("--json", action="store_true")
    lead.set_defaults(func=cmd_lead)

    report = sub.add_parser("report", help="leads per status, revenue, per-buyer figures")
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_report)

    billing = sub.add_parser("billing", help="what each buyer owes for a month")
    billing.add_argument("--month", required=True, help="YYYY-MM")
    billing.add_argument("--json", action="store_true")
    billing.set_defaults(func=cmd_billing)

    ret = sub.add_parser("return", help="record a buyer's return of a sold lead (unbilled)")
    ret.add_argument("id")
    ret.add_argument("--reason", required=True)
    ret.set_defaults(func=cmd_return)

    serve = sub.add_parser("serve", help="the HTTP intake API (PINGTREE_HTTP_ADDR)")
    serve.add_argument("--addr", default=None, help="host:port (default from PINGTREE_HTTP_ADDR)")
    serve.add_argument("--threads", type=int, default=16)
    serve.set_defaults(func=cmd_serve)

    from pipeline.devtools import mockbuyers
    mock = sub.add_parser("mock-buyers", help="a simulated buyer fleet speaking the buyer protocol")
    mockbuyers.add_arguments(mock)
    mock.set_defaults(func=cmd_mock_buyers)

    from pipeline.devtools import demo, stack
    from pipeline.entrypoints import publishers, suppression
    try:
        from pipeline.devtools import bench
    except ImportError:  # while the bench module is being written
        bench = None
    _add_bench_demo(sub, bench, demo)

    from pipeline.devtools import chaos
    chaos_p = sub.add_parser("chaos", help="a seeded fault run on private Redis and PostgreSQL,"
                             " checked against the invariants")
    chaos.add_arguments(chaos_p)
    chaos_p.set_defaults(func=cmd_chaos)

    up = sub.add_parser("up", help="run every process of deploy/Procfile in the foreground")
    stack.add_arguments(up)
    up.set_defaults(func=cmd_up)

    suppression.add_parser(sub)
    publishers.add_parsers(sub)
    return parser


def _add_bench_demo(sub, bench, demo) -> None:
    if bench is not None:
        bench_p = sub.add_parser("bench", help="measure latency, throughput, deadline, scaling, cost")
        bench.add_arguments(bench_p)
        bench_p.set_defaults(func=cmd_bench)

    demo_p = sub.add_parser("demo", help="run the whole system with simulated buyers, then report")
    demo.add_arguments(demo_p)
    demo_p.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    from pipeline.adapters import logs
    logs.configure()
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
