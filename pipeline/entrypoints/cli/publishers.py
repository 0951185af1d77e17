"""`pingtree publisher add|update|key|list|revoke` and `pingtree payouts`: publishers, their keys,
and what they are owed."""
from __future__ import annotations

import argparse
import re
import sys
from decimal import Decimal, InvalidOperation

from pipeline.adapters import db
from pipeline.adapters import publishers as store
from pipeline.adapters.publishers import Publisher
from pipeline.domain.leads import VERTICALS
from pipeline.domain.money import to_cents
from pipeline.entrypoints.cli.common import UserError, month, print_json

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _rule(args, current: Publisher | None) -> tuple[str, int | None, int | None]:
    if args.fixed is not None and args.share is not None:
        raise UserError("give --fixed or --share, not both")
    if args.fixed is not None:
        try:
            amount = Decimal(args.fixed)
        except InvalidOperation:
            raise UserError("--fixed must be an amount like 12.50") from None
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            raise UserError("--fixed must be an amount of at least 0 with at most 2 decimals")
        return "fixed", to_cents(amount), None
    if args.share is not None:
        try:
            percent = Decimal(args.share.rstrip("%"))
        except InvalidOperation:
            raise UserError("--share must be a percentage like 60 or 62.5") from None
        basis_points = percent * 100
        if not percent.is_finite() or not 0 <= percent <= 100 or basis_points != int(basis_points):
            raise UserError("--share must be a percentage from 0 to 100 with at most 2 decimals")
        return "share", None, int(basis_points)
    if current is None:
        raise UserError("a payout rule is needed: --fixed AMOUNT (per sold lead) or --share PERCENT")
    return current.payout_kind, current.payout_cents, current.share_bp


def _verticals(text: str | None, current: Publisher | None) -> tuple[str, ...]:
    if text is None:
        return current.verticals if current else ()
    chosen = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in chosen if v not in VERTICALS]
    if unknown:
        raise UserError(f"unknown verticals {', '.join(unknown)}; known: {', '.join(VERTICALS)}")
    return chosen


def _record(args, current: Publisher | None) -> Publisher:
    kind, cents, share = _rule(args, current)
    active = current.active if current else True
    if args.active is not None:
        active = args.active
    name = args.name if args.name is not None else (current.name if current else None)
    if not name or not name.strip():
        raise UserError("--name is needed")
    return Publisher(args.id, name.strip(), active, _verticals(args.verticals, current), kind,
                     cents, share)


def _print_key(publisher_id: str, key: str) -> None:
    print(key)
    print(f"publisher {publisher_id}: new API key above; it is shown once, only its hash is kept",
          file=sys.stderr)


def cmd_add(args) -> int:
    if not ID.match(args.id):
        raise UserError("publisher id: letters, digits, . _ - (up to 64)")
    with db.transaction() as cur:
        if store.get(cur, args.id) is not None:
            raise UserError(f"publisher {args.id} exists: `publisher update` changes it,"
                            " `publisher key` issues another key")
        store.save(cur, _record(args, None))
        key = store.issue_key(cur, args.id)
    _print_key(args.id, key)
    return 0


def cmd_update(args) -> int:
    with db.transaction() as cur:
        current = store.get(cur, args.id)
        if current is None:
            raise UserError(f"no such publisher: {args.id}")
        store.save(cur, _record(args, current))
    print(f"publisher {args.id} updated")
    return 0


def cmd_key(args) -> int:
    with db.transaction() as cur:
        if store.get(cur, args.id) is None:
            print(f"no such publisher: {args.id}", file=sys.stderr)
            return 1
        key = store.issue_key(cur, args.id)
    _print_key(args.id, key)
    return 0


def cmd_revoke(args) -> int:
    with db.transaction() as cur:
        key_id = store.revoke_key(cur, args.key)
    if key_id is None:
        print("no live key with that id", file=sys.stderr)
        return 1
    print(f"key {key_id} revoked: it is refused from the next request on")
    return 0


def cmd_list(args) -> int:
    with db.transaction() as cur:
        found = store.all_with_keys(cur)
    doc = [{"id": p.id, "name": p.name, "active": p.active, "verticals": list(p.verticals),
            "payout": p.rule(),
            "keys": [{"id": k["id"], "created_at": k["created_at"].isoformat(),
                      "revoked_at": k["revoked_at"] and k["revoked_at"].isoformat()}
                     for k in keys]}
           for p, keys in ((f["publisher"], f["keys"]) for f in found)]
    if args.json:
        print_json(doc)
        return 0
    for p in doc:
        rule = p["payout"]
        payout = (f"{rule['per_sold_lead']:.2f} per sold lead" if rule["kind"] == "fixed"
                  else f"{rule['percent']:g} % of revenue")
        live = [k["id"] for k in p["keys"] if not k["revoked_at"]]
        print(f"{p['id']:16} {'active' if p['active'] else 'INACTIVE':8} {payout:28}"
              f" verticals {','.join(p['verticals']) or 'all'}  keys {','.join(live) or '-'}"
              f" ({len(p['keys']) - len(live)} revoked)  {p['name']}")
    return 0


def cmd_payouts(args) -> int:
    with db.transaction() as cur:
        doc = store.payouts(cur, month(args.month))
    if args.json:
        print_json(doc)
        return 0
    print(f"payouts {doc['month']}: {doc['total_owed']:.2f} owed")
    for r in doc["publishers"]:
        owed = f"{r['owed']:>12.2f}" if r["owed"] is not None else f"{'no rule':>12}"
        print(f"  {r['publisher_id']:16} {r['sold']:>6} sold {r['returned']:>4} returned"
              f" revenue {r['revenue']:>12.2f} owed {owed}")
    return 0


def _record_options(p: argparse.ArgumentParser, *, adding: bool) -> None:
    p.add_argument("id", help="the publisher id (the lead's source.publisher_id)")
    p.add_argument("--name", required=adding, help="the publisher's name, for reports")
    p.add_argument("--fixed", metavar="AMOUNT", help="payout: this price per sold lead")
    p.add_argument("--share", metavar="PERCENT", help="payout: this share of the sale price")
    p.add_argument("--verticals", metavar="V1,V2", help="the verticals it may send (default all)")
    p.add_argument("--active", dest="active", action="store_true", default=None,
                   help="its keys work again")
    p.add_argument("--inactive", dest="active", action="store_false",
                   help="its keys get 403 until it is active again")


def add_parsers(sub) -> None:
    pub = sub.add_parser("publisher", help="publishers (form backends) and their API keys")
    cmds = pub.add_subparsers(dest="publisher_cmd", required=True, metavar="COMMAND", help="what to do")
    add = cmds.add_parser("add", help="a new publisher and its first API key (shown once)")
    _record_options(add, adding=True)
    add.set_defaults(func=cmd_add)
    update = cmds.add_parser("update", help="change a publisher's name, payout, verticals, state")
    _record_options(update, adding=False)
    update.set_defaults(func=cmd_update)
    key = cmds.add_parser("key", help="issue another API key for a publisher (shown once)")
    key.add_argument("id", help="the publisher id")
    key.set_defaults(func=cmd_key)
    revoke = cmds.add_parser("revoke", help="revoke an API key, by its id or the key itself")
    revoke.add_argument("key", help="the key's id (from `publisher list`) or the key itself")
    revoke.set_defaults(func=cmd_revoke)
    listing = cmds.add_parser("list", help="publishers, payout rules and key ids")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(func=cmd_list)

    payouts = sub.add_parser("payouts", help="what each publisher is owed for a month")
    payouts.add_argument("--month", required=True, help="YYYY-MM (UTC), leads sold that month")
    payouts.add_argument("--json", action="store_true", help="as JSON")
    payouts.set_defaults(func=cmd_payouts)
