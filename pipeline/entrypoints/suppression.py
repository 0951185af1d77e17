"""The internal do-not-contact list: `pingtree suppress add|remove|import|list` (hashes only)."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from config.settings import settings
from pipeline.domain import validation
from pipeline.domain.suppression import entry


def _add(key: str, values: list[str], reason: str | None) -> int:
    from pipeline.adapters import db, store
    rows, bad = [], []
    for number, value in enumerate(values, 1):
        found = entry(key, value)
        (rows.append((*found, reason)) if found else bad.append(number))
    for number in bad:
        # The number only: a bad line may still be someone's personal data.
        print(f"not a valid phone or email, skipped: entry {number}", file=sys.stderr)
    with db.transaction() as cur:
        added = store.add_suppressions(cur, rows)
    print(f"suppressed {added} new, {len(rows) - added} already listed, {len(bad)} skipped")
    return 2 if bad else 0


def _legacy(raw: str) -> str | None:
    """The plain SHA-256 an older version listed this value under (to lift such an entry)."""
    raw = raw.strip()
    value = validation.normalise_email(raw) if "@" in raw else validation.normalise_phone(raw)
    return hashlib.sha256(value.encode()).hexdigest() if value else None


def cmd(args) -> int:
    from pipeline.adapters import db, store
    key = settings.suppression_key
    if key is None:
        print("pingtree suppress: set PINGTREE_SUPPRESSION_KEY (a long random secret, kept out of the"
              " database; the same one for every pingtree process)", file=sys.stderr)
        return 2
    if args.suppress_cmd == "add":
        return _add(key, args.values, args.reason)
    if args.suppress_cmd == "import":
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        return _add(key, [line for line in text.splitlines() if line.strip()], args.reason)
    if args.suppress_cmd == "remove":
        found = [(entry(key, v), _legacy(v)) for v in args.values]
        with db.transaction() as cur:
            removed = sum(store.remove_suppression(cur, *e, legacy) for e, legacy in found if e)
        print(f"removed {removed}")
        return 0
    with db.transaction() as cur:
        for row in store.list_suppressions(cur, args.limit):
            value = row["value_hmac"] or f"{row['legacy_sha256']} (legacy: unkeyed SHA-256, re-import)"
            print(f"{row['kind']:6} {value}  {row['created_at']:%Y-%m-%d}  {row['reason'] or ''}")
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
