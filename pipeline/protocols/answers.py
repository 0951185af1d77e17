"""Reading what a buyer sent back, treated as hostile: JSON, text and bids that cannot hurt.

Every protocol (native or an integration) reads answers through these, so that any answer,
however malformed, deep, huge or full of control characters, becomes a value with a reason
and every string kept from it can be stored and printed as it is.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

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


# One decoder for every answer (json.loads with options builds a new one per call), its C
# scanner called as JSONDecoder.decode calls it, without decode's and raw_decode's two Python
# calls: the same document, or the same refusal (a ValueError), for every text.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_no_duplicate_keys)
_scan_once: Callable[[str, int], tuple[object, int]] = _decoder.scan_once  # type: ignore[attr-defined]
_space = re.compile(r"[ \t\n\r]*").match           # json.decoder.WHITESPACE


def _past_space(text: str, at: int) -> int:
    found = _space(text, at)
    return found.end() if found else at      # the pattern always matches (maybe nothing)


def _decode(text: str) -> object:
    try:
        doc, end = _scan_once(text, _past_space(text, 0))
    except StopIteration:
        raise ValueError("expecting a value") from None
    if _past_space(text, end) != len(text):
        raise ValueError("extra data")
    return doc


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
    if isinstance(value, str):
        small = type(value) is str and len(value) < 40
    elif isinstance(value, int):
        small = type(value) is int and -_SMALL < value < _SMALL
    else:
        small = type(value) is float
    return _read_bid_of(value) if small else _read_bid(value)


def _read_bid(value: object) -> int | None:
    try:
        return parse_bid(value)
    except (ArithmeticError, ValueError, TypeError):
        return None


# A float, an int or a str (what JSON gives) reads the same for the same type and value: each
# buyer's usual bids are read once (typed: 10 and 10.0 are kept apart; 0.0 and -0.0, kept as
# one, both read 0; a NaN is never found again, never equal to itself). Only small ones are
# kept: a hostile answer's 4,000-digit number or 60 kB string is read and forgotten.
_SMALL = 2**63
_read_bid_of = lru_cache(maxsize=1024, typed=True)(_read_bid)
