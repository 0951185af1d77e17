"""The `pingtree` command: one module per group of subcommands; a user error ends in one line."""
from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

import psycopg2

# Bad settings stop here, before any command: InvalidSettings is a SystemExit printing one
# line per bad variable.
import config.settings  # noqa: F401
from pipeline.adapters import db, logs
from pipeline.entrypoints import suppression
from pipeline.entrypoints.cli import buyers, leads, publishers, reports, running, tree
from pipeline.entrypoints.cli.common import UserError, database_problem


def version() -> str:
    try:
        return metadata.version("pingtree")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pingtree", description="Real-time, exclusive lead distribution (a ping-tree).",
        epilog="Settings come from the environment (PINGTREE_*); see the README.")
    parser.add_argument("--version", action="version", version=f"pingtree {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="`pingtree COMMAND --help` tells more")
    for group in (running, tree, buyers, leads, reports):
        group.add_parsers(sub)
    suppression.add_parser(sub)
    publishers.add_parsers(sub)
    return parser


def _fail(message: str) -> None:
    print(f"pingtree: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args) or 0
        sys.stdout.flush()   # here, where a closed pipe is caught, not at interpreter exit
        return code
    except UserError as exc:
        _fail(str(exc))
        return 2
    except (db.DatabaseDown, psycopg2.OperationalError, psycopg2.errors.UndefinedTable) as exc:
        _fail(database_problem(exc))
        return 1
    except BrokenPipeError:
        # The reader went away (`pingtree lead ID | head`): not an error worth a word.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
