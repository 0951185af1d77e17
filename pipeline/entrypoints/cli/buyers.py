"""`pingtree buyer …`: what an operator does for one buyer (a fresh signing secret, a test)."""
from __future__ import annotations

import sys


def warn_invalid_secrets() -> None:
    """Trees loaded before secrets were checked may hold plain ones: say so, by buyer."""
    from pipeline.adapters import db, store
    from pipeline.domain.buyer_secret import HINT, secret_problem
    with db.transaction() as cur:
        # An integration buyer without a secret is simply not signed.
        found = [(b.id, secret_problem(b.secret)) for b in store.buyers(cur)
                 if b.active and (b.integration is None or b.secret)]
    for buyer_id, problem in found:
        if problem:
            print(f"buyer {buyer_id}: its secret {problem}. It is sent no ping and no post until you "
                  f"load a tree that gives it a valid one ({HINT}).", file=sys.stderr)


def cmd_secret(args) -> int:
    from pipeline.domain.buyer_secret import new_secret
    print(new_secret())
    return 0


def add_parsers(sub) -> None:
    buyer = sub.add_parser("buyer", help="one buyer: a fresh signing secret; what it is sent")
    verbs = buyer.add_subparsers(dest="buyer_cmd", required=True, metavar="VERB", help="what to do")
    verbs.add_parser("secret", help="print a fresh signing secret for a buyer's tree entry"
                     " (whsec_ + base64 of 32 random bytes)").set_defaults(func=cmd_secret)
    from pipeline.entrypoints import buyertest
    buyertest.add_parser(verbs)
