"""`pingtree db migrate` and `prune`, `serve`, `up` and the developer commands (mock buyers, demo, bench)."""
from __future__ import annotations

import sys

from config.settings import settings
from pipeline.entrypoints.cli.buyers import warn_invalid_secrets
from pipeline.entrypoints.cli.common import print_json


def cmd_db_migrate(args) -> int:
    from pipeline.adapters import db
    applied = db.migrate()
    print(f"migrated: {', '.join(applied)}" if applied else "database is up to date")
    warn_invalid_secrets()
    return 0


def cmd_db_prune(args) -> int:
    from pipeline.service import retention
    try:
        done = retention.prune(args.detail_days, args.record_days, budget_s=args.budget_s)
    except retention.RetentionTooShort as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print_json(done)
    else:
        print(f"{done['days_summed']} buyer days summed, {done['detail_rows']} detail rows and"
              f" {done['leads']} leads deleted" + ("" if done["finished"] else " (budget spent: run again)"))
    return 0


def cmd_serve(args) -> int:
    from pipeline.entrypoints import wiring
    from pipeline.entrypoints.http import serve
    wiring.install_nudge_sender()
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


def add_parsers(sub) -> None:
    from pipeline.devtools import bench, chaos, demo, mockbuyers, stack

    dbp = sub.add_parser("db", help="the database schema")
    verbs = dbp.add_subparsers(dest="db_cmd", required=True, metavar="VERB", help="what to do")
    verbs.add_parser("migrate", help="create the database if missing, apply migrations"
                     ).set_defaults(func=cmd_db_migrate)
    prune = verbs.add_parser("prune", help="sum old days per buyer, delete detail and records past retention")
    prune.add_argument("--detail-days", type=int, default=settings.detail_keep_days,
                       help="keep ping, post and event detail this many days (PINGTREE_DETAIL_KEEP_DAYS)")
    prune.add_argument("--record-days", type=int, default=settings.record_keep_days,
                       help="keep leads, consents and sales this many days, at least 1827 (five years)")
    prune.add_argument("--budget-s", type=float, default=None, help="stop after this many seconds")
    prune.add_argument("--json", action="store_true", help="what was done, as JSON")
    prune.set_defaults(func=cmd_db_prune)

    serve = sub.add_parser("serve", help="the HTTP intake API (PINGTREE_HTTP_ADDR)")
    serve.add_argument("--addr", default=None, help="host:port (default from PINGTREE_HTTP_ADDR)")
    serve.add_argument("--threads", type=int, default=16, help="request threads (default %(default)s)")
    serve.set_defaults(func=cmd_serve)

    for name, text, module, func in (
            ("up", "run every process of deploy/Procfile (api, workers, beat, flower)", stack, cmd_up),
            ("mock-buyers", "a simulated buyer fleet (the buyer protocol)", mockbuyers, cmd_mock_buyers),
            ("demo", "run the whole system with simulated buyers, then report", demo, cmd_demo),
            ("bench", "measure latency, throughput, deadline, scaling, cost", bench, cmd_bench),
            ("chaos", "a seeded fault run on private Redis and PostgreSQL, checked against the"
                      " invariants", chaos, cmd_chaos)):
        command = sub.add_parser(name, help=text)
        module.add_arguments(command)
        command.set_defaults(func=func)
