"""What the subcommands share: user errors, reading input files, printing JSON and error paths."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

from config.settings import settings


class UserError(Exception):
    """Something the user can fix, said in one line (exit 2)."""


def read_input(source: str) -> str:
    """A file's text, or standard input for `-`."""
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if path.is_dir():
        raise UserError(f"{source}: is a directory, not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{source}: not UTF-8 text (byte {exc.start})") from None


def shown(value) -> str:
    """Text from a buyer as the terminal should show it: control and format characters
    (escape sequences, bidi overrides) written as escapes, never acted on."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def month(text: str) -> str:
    """A calendar month as YYYY-MM (billing, payouts)."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise UserError(f"--month must be YYYY-MM, e.g. 2026-11 (got {text!r})")
    return text


def print_json(doc) -> None:
    print(json.dumps(doc, indent=2, default=str))


def database_problem(exc: Exception) -> str:
    """One line on a database that cannot be used, naming the setting to fix (no password)."""
    parts = urlsplit(settings.database_url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "does not exist" in reason and "relation" in reason:
        return f"the database {where} is not migrated ({reason}): run `pingtree db migrate`"
    if "does not exist" in reason:
        return f"{reason}: run `pingtree db migrate`, which creates it"
    return f"PostgreSQL unreachable at {where} ({reason}); check PINGTREE_DATABASE_URL and the server"
