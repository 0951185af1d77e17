"""Reading what a buyer sent back, treated as hostile: JSON, text and bids that cannot hurt.

Every protocol (native or an integration) reads answers through these, so that any answer,
however malformed, deep, huge or full of control characters, becomes a value with a reason
and every string kept from it can be stored and printed as it is.
"""
from __future__ import annotations

import json
import unicodedata

from pipeline.domain.money import parse_bid

# Longest text kept from a buyer (a reason, a reference): enough for any honest one.
MAX_TEXT = 200
# Unicode categories never kept from a buyer: controls (NUL, ESC, C1), format characters
# (bidi overrides), surrogates, private use, unassigned, line and paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
REPLACEMENT = "\ufffd"


class _Refused(ValueError):
    pass


def _refuse_constant(name: str):
    raise _Refused(f"{name} is not JSON")


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise _Refused("a key is repeated")   # which one counts is anyone's guess: refuse
    return doc


# One decoder for every answer: json.loads with options builds a new one per call.
_decode = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_no_duplicate_keys).decode


def read_json(body: bytes) -> tuple[object, str | None]:
    """(document, None), or (None, why) when the bytes are not strict JSON one can use."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid_utf8"
    try:
        # A leading BOM is refused as json.loads refuses it (the decoder alone reads no BOM either).
        return _decode(text), None
    except RecursionError:
        return None, "too_deep"
    except (ValueError, TypeError):   # JSONDecodeError, over-long integers, refused constants
        return None, "invalid_json"


def safe_text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A buyer's string (or integer) as text that is valid UTF-8, free of control characters
    and at most ``limit`` characters; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        text = str(value) if isinstance(value, str) else format(value, "d")
    except ValueError:                  # an integer too long to print
        return None
    text = text[:limit]
    if text.isascii() and text.isprintable():
        return text
    return "".join(REPLACEMENT if unicodedata.category(c) in UNSAFE_CATEGORIES else c for c in text)


def read_bid(value: object) -> int | None:
    """Cents from a buyer's bid, or None when it is no sane price; never raises."""
    try:
        return parse_bid(value)
    except (ArithmeticError, ValueError, TypeError):
        return None
