"""The internal do-not-contact list: `pingtree suppress add|remove|import|list` (hashes only)."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from pipeline.domain import validation


def entry(value: str) -> tuple[str, str] | None:
    """(kind, sha256 of the normalised value) for a phone or an email; None if it is neither."""
    value = value.strip()
    if "@" in value:
        email = validation.normalise_email(value)
        return ("email", hashlib.sha256(email.encode()).hexdigest()) if email else None
    phone = validation.normalise_phone(value)
    return ("phone", hashlib.sha256(phone.encode()).hexdigest()) if phone else None


def _add(values: list[str], reason: str | None) -> int:
    from pipeline.adapters import db, store
    rows, bad = [], []
    for number, value in enumerate(values, 1):
        found = entry(value)
        (rows.append((*found, reason)) if found else bad.append(number))
    for number in bad:
        # The number only: a bad line may still be someone's personal data.
        print(f"not a valid phone or email, skipped: entry {number}", file=sys.stderr)
    with db.transaction() as cur:
        added = store.add_suppressions(cur, rows)
    print(f"suppressed {added} new, {len(rows) - added} already listed, {len(bad)} skipped")
    return 2 if bad else 0


def cmd(args) -> int:
    from pipeline.adapters import db, store
    if args.suppress_cmd == "add":
        return _add(args.values, args.reason)
    if args.suppress_cmd == "import":
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        return _add([line for line in text.splitlines() if line.strip()], args.reason)
    if args.suppress_cmd == "remove":
        found = [entry(v) for v in args.values]
        with db.transaction() as cur:
            removed = sum(store.remove_suppression(cur, *e) for e in found if e)
        print(f"removed {removed}")
        return 0
    with db.transaction() as cur:
        for row in store.list_suppressions(cur, args.limit):
            print(f"{row['kind']:6} {row['value_sha256']}  {row['created_at']:%Y-%m-%d}"
                  f"  {row['reason'] or ''}")
    return 0


def add_parser(sub) -> None:
    parser = sub.add_parser("suppress", help="the do-not-contact list (stored as hashes)")
    verbs = parser.add_subparsers(dest="suppress_cmd", required=True, metavar="VERB", help="what to do")
    add = verbs.add_parser("add", help="suppress phones or emails")
    add.add_argument("values", nargs="+", metavar="VALUE", help="a phone number or an email")
    add.add_argument("--reason", default=None, help="why, for the record (e.g. \"asked by phone\")")
    imp = verbs.add_parser("import",
                           help="suppress one phone or email per line of FILE (- for stdin)")
    imp.add_argument("file", help="one phone or email per line, or - for standard input")
    imp.add_argument("--reason", default=None, help="why, for the record")
    rem = verbs.add_parser("remove", help="lift a suppression")
    rem.add_argument("values", nargs="+", metavar="VALUE", help="a phone number or an email")
    lst = verbs.add_parser("list", help="the newest entries (hashes, never raw values)")
    lst.add_argument("--limit", type=int, default=100, help="how many (default %(default)s)")
    parser.set_defaults(func=cmd)
