"""Prepared statements of the stages and the literals their values are sent as."""
from __future__ import annotations

import datetime
import decimal
import functools
import hashlib
import re
import uuid

import psycopg2
import psycopg2.extras

from pipeline.domain import ids

# ---- prepared statements ------------------------------------------------------------------
# A statement of the stages is marked prepared(...): each pooled connection PREPAREs it once
# (parsed and analysed once, planned once after a few runs) and from then on EXECUTEs it with
# the values, as psycopg2 quotes them. A prepared statement outlives a rolled-back transaction;
# a new connection starts with none. Only statements whose every parameter's type PostgreSQL
# infers from its place are marked; the tests run each.

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


class Prepared(str):
    """SQL text with psycopg2 placeholders, prepared once per connection."""

    name: str
    text: str                    # with $1 … $n
    keys: tuple                  # the parameter (name, or position) of each $n
    execute: str                 # EXECUTE name (%s, …)

    def __new__(cls, text: str) -> Prepared:
        self = super().__new__(cls, text)
        keys: list = []

        def number(m: re.Match) -> str:
            if m.group(0) == "%%":
                return "%"
            key = m.group(1) if m.group(1) is not None else len(keys)
            if key not in keys:
                keys.append(key)
            return f"${keys.index(key) + 1}"
        self.text, self.keys = _PLACEHOLDER.sub(number, text), tuple(keys)
        self.name = "pt_" + hashlib.md5(text.encode()).hexdigest()[:20]
        self.execute = f"EXECUTE {self.name}" + (f" ({', '.join(['%s'] * len(keys))})" if keys else "")
        return self


@functools.lru_cache(maxsize=512)
def prepared(text: str) -> Prepared:
    return Prepared(text)


# A list value of a prepared statement goes as one array literal, '{…}', which the server reads
# with the array type's input function, element by element, in one pass. psycopg2 writes a list
# as ARRAY['…', '…']: an expression the server parses, analyses, coerces, plans and evaluates
# element by element on every EXECUTE (a shard's ten pings are eleven arrays of ten).

_AS_TEXT = (uuid.UUID, datetime.datetime, datetime.date, decimal.Decimal)
_UUID = uuid.UUID


def _text(value: str) -> str:
    if "\\" in value or '"' in value:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + value + '"'


# The element types a stage passes most, by exact type (a subclass, such as a str enum, or a
# type written as text takes the checks of _any_element): a dict lookup instead of the chain.
_ELEMENT_BY_TYPE = {
    type(None): lambda value: "NULL",
    bool: lambda value: "t" if value else "f",
    int: repr,
    float: repr,
    str: _text,
    uuid.UUID: lambda value: '"' + str(value) + '"',     # hex and dashes: nothing to escape
}


def _element(value) -> str:
    write = _ELEMENT_BY_TYPE.get(type(value))
    return write(value) if write is not None else _any_element(value)


def _any_element(value) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, list):
        return _array(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A str enum's value, as psycopg2 writes it; its type is written so from now on without
        # the checks above, which a subclass of str can never pass.
        _ELEMENT_BY_TYPE.setdefault(type(value), _str_subclass)
        text = str.__str__(value)
    elif isinstance(value, psycopg2.extras.Json):
        text = value.dumps(value.adapted)
    elif isinstance(value, _AS_TEXT):
        text = str(value)                  # their input texts
    else:                                  # as psycopg2 refuses what it cannot write
        raise psycopg2.ProgrammingError(f"can't adapt type {type(value).__name__!r} in an array")
    return _text(text)


def _str_subclass(value: str) -> str:
    return _text(str.__str__(value))


def _array(values: list) -> str:
    # The commonest elements written inline (a call per element costs more than the writing).
    parts = []
    for value in values:
        kind = type(value)
        if kind is str:
            if "\\" in value or '"' in value:
                value = value.replace("\\", "\\\\").replace('"', '\\"')
            parts.append('"' + value + '"')
        elif value is None:
            parts.append("NULL")
        elif kind is int:
            parts.append(repr(value))
        elif kind is _UUID:
            parts.append('"' + ids.text(value) + '"')      # hex and dashes: nothing to escape
        else:
            parts.append(_element(value))
    return "{" + ",".join(parts) + "}"


_ELEMENT_BY_TYPE[list] = _array


def literal(value):
    """A statement value as it is sent: a list as one array literal, anything else as it is."""
    return _array(value) if isinstance(value, list) else value
