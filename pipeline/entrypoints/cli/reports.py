"""`pingtree report` and `billing`: what the network did over a window, what each buyer owes."""
from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from pipeline.entrypoints.cli.common import month, print_json


def _ms(value) -> str:
    return "-" if value is None else f"{value}"


def _instant(text: str) -> datetime:
    """An ISO date or date-time; UTC unless it says otherwise."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def cmd_report(args) -> int:
    from pipeline.adapters import db, views
    from pipeline.service import retention
    now = datetime.now(UTC)
    try:
        until = _instant(args.until) if args.until else now
        since = _instant(args.since) if args.since else until - timedelta(days=args.days)
    except ValueError as exc:
        print(f"--since/--until: {exc}", file=sys.stderr)
        return 2
    with db.transaction() as cur:
        doc = views.report(cur, since, until, detail_from=retention.detail_from(now))
    if args.json:
        print_json(doc)
        return 0
    print(f"from {doc['since']} to {doc['until']}")
    print("leads: " + (", ".join(f"{k} {v}" for k, v in sorted(doc["leads"].items())) or "none"))
    print(f"revenue: {doc['revenue']:.2f} (net of {doc['returns']} returns worth {doc['returned']:.2f})")
    print(f"{'buyer':16} {'pings':>6} {'accepts':>7} {'t/o':>5} {'err':>5} {'wins':>5} {'sold':>5}"
          f" {'post_rej':>8} {'returns':>7} {'net revenue':>11} {'p50 ms':>7} {'p95 ms':>7}")
    for b in doc["buyers"]:
        print(f"{b['buyer_id']:16} {b['pings']:>6} {b['accepts']:>7} {b['timeouts']:>5} {b['errors']:>5}"
              f" {b['wins']:>5} {b['sold']:>5} {b['post_rejects']:>8} {b['returns']:>7}"
              f" {b['revenue']:>11.2f} {_ms(b['p50_ping_ms']):>7} {_ms(b['p95_ping_ms']):>7}")
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
    from pipeline.adapters import db, views
    with db.transaction() as cur:
        doc = views.billing(cur, month(args.month))
    if args.json:
        print_json(doc)
        return 0
    print(f"billing {doc['month']}: {doc['leads']} leads, {doc['total']:.2f}")
    for b in doc["buyers"]:
        print(f"  {b['buyer_id']:16} {b['leads']:>6} leads {b['amount']:>12.2f}")
    return 0


def add_parsers(sub) -> None:
    report = sub.add_parser("report", help="leads per status, revenue, per-buyer pings, sales and returns")
    report.add_argument("--days", type=float, default=7,
                        help="the window: the last N days (default %(default)s)")
    report.add_argument("--since", help="window start, ISO date or date-time (UTC unless stated)")
    report.add_argument("--until", help="window end, ISO date or date-time (default now)")
    report.add_argument("--json", action="store_true", help="the report as JSON")
    report.set_defaults(func=cmd_report)

    billing = sub.add_parser("billing", help="what each buyer owes for a month (returns excluded)")
    billing.add_argument("--month", required=True, help="the calendar month (UTC), YYYY-MM")
    billing.add_argument("--json", action="store_true", help="the bill as JSON")
    billing.set_defaults(func=cmd_billing)
