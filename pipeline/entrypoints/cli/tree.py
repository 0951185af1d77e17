"""`pingtree tree load|show|schema`: the buyer tree file in and out of PostgreSQL."""
from __future__ import annotations

import sys
from decimal import Decimal

from config.settings import settings
from pipeline.domain.fields import error_lines
from pipeline.entrypoints.cli.buyers import warn_invalid_secrets
from pipeline.entrypoints.cli.common import print_json, read_input

PRIVATE_HINT = ("hint: buyers on this machine or a private network need plain http or private"
                " addresses: set PINGTREE_ALLOW_PRIVATE_BUYERS=1 (never on a public deployment)")


def cmd_load(args) -> int:
    from pipeline.adapters import db, store
    from pipeline.domain.leads import VERTICALS
    from pipeline.domain.tree import InvalidTree
    from pipeline.protocols.registry import parse_tree  # the tree with its integrations rendered
    try:
        tree = parse_tree(read_input(args.file), VERTICALS, settings.allow_private_buyers)
        with db.transaction() as cur:
            result = store.load_tree(cur, tree)
    except InvalidTree as exc:
        print(f"{args.file}: refused, nothing was loaded:", file=sys.stderr)
        for line in error_lines(exc.errors):
            print(f"  {line}", file=sys.stderr)
        if exc.private_urls:
            print(PRIVATE_HINT, file=sys.stderr)
        return 2
    print(f"loaded {len(tree['tiers'])} tiers and {len(tree['buyers'])} buyers "
          f"({result['buyers_changed']} changed, {result['buyers_deactivated']} deactivated)")
    return 0


def cmd_show(args) -> int:
    from pipeline.adapters import db, store
    with db.transaction() as cur:
        print_json(store.tree_document(cur))
    warn_invalid_secrets()
    return 0


def json_schema() -> dict:
    """The JSON Schema of the tree file, generated from the marshmallow schemas that load it."""
    from marshmallow_jsonschema import JSONSchema

    from pipeline.domain.tree import TreeSchema
    schema = _plain(JSONSchema().dump(TreeSchema()))
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "pingtree tree file"
    return schema


def _plain(node):
    """JSON-ready: Decimal bounds as numbers, without the generator's empty `enumNames`."""
    if isinstance(node, Decimal):
        return int(node) if node == node.to_integral_value() else float(node)
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if not (k == "enumNames" and not v)}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def cmd_schema(args) -> int:
    print_json(json_schema())
    return 0


def add_parsers(sub) -> None:
    tree = sub.add_parser("tree", help="the buyer tree: load a tree file, show it, print its JSON Schema")
    verbs = tree.add_subparsers(dest="tree_cmd", required=True, metavar="VERB", help="what to do")
    load = verbs.add_parser("load", help="upsert a tree file (refused whole when any part is bad)")
    load.add_argument("file", help="the tree file (JSON), or - for standard input")
    load.set_defaults(func=cmd_load)
    show = verbs.add_parser("show", help="print the loaded tree as a tree file that `tree load` takes back"
                            " (secrets printed as ***, which keeps them)")
    show.add_argument("--json", action="store_true", help="JSON (the default and only format)")
    show.set_defaults(func=cmd_show)
    schema = verbs.add_parser("schema", help="print the JSON Schema of the tree file (for editors)")
    schema.set_defaults(func=cmd_schema)
