"""JSON log lines whose fields come from an allow-list, so personal data cannot slip into logs."""
from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from pythonjsonlogger.json import JsonFormatter

from config.settings import settings

# The only fields a log line may carry: ids, names of things, counts and durations. A field
# passed with `extra=` that is not here is dropped, whatever its value.
ALLOWED = frozenset({
    "at", "level", "logger", "message", "exc_info", "stack_info", "process",
    "lead_id", "auction_id", "buyer_id", "ping_id", "publisher_id", "shard", "step", "cycle", "tier",
    "task", "task_id", "stage", "queue", "state", "duration_ms", "retries",
    "status", "outcome", "reason", "job", "count",
})
MAX_VALUE = 200

# Free text (a message, a traceback) is scrubbed of what looks like an email or a phone
# number (10 or more digits, separators allowed), and of a database error's DETAIL line,
# which quotes the row it failed on.
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w-])\+?\(?\d(?:[\s().-]{0,2}\d){9,14}(?![\w-])")
DETAIL = re.compile(r"^\s*DETAIL:.*$", re.MULTILINE)

_bound: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pingtree_log_context", default=None)


def scrub(text: str) -> str:
    return PHONE.sub("[phone]", EMAIL.sub("[email]", DETAIL.sub("DETAIL: [row]", text)))


# A message's arguments may be ids, names of things, numbers and times; anything else (a dict,
# a lead, an exception whose text may quote a row) is shown by its type only.
SCALARS = (str, int, float, bool, type(None), uuid.UUID, datetime, Decimal)


def _arg(value):
    return value if isinstance(value, SCALARS) else f"<{type(value).__name__}>"


def message(record: logging.LogRecord) -> str:
    args = record.args
    if not args:
        return scrub(str(record.msg))
    if isinstance(args, Mapping):
        args = {key: _arg(value) for key, value in args.items()}
    else:
        args = tuple(_arg(value) for value in args)
    try:
        return scrub(str(record.msg) % args)
    except (TypeError, ValueError, KeyError):
        return scrub(str(record.msg))


def _safe(value):
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))[:MAX_VALUE]


class AllowListFormatter(JsonFormatter):
    """One JSON object per line: allow-listed fields, the bound task context, scrubbed text."""

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        found = {**(_bound.get() or {}), **log_data}
        log_data.clear()
        log_data.update(at=self.formatTime(record), level=record.levelname, logger=record.name,
                        message=message(record))
        for key, value in found.items():
            if key in ALLOWED and key not in log_data:
                log_data[key] = scrub(value) if key in ("exc_info", "stack_info") else _safe(value)

    def formatTime(self, record, datefmt=None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def bind(**fields) -> contextvars.Token:
    """Add fields to every line logged from this thread (or task) until ``unbind``."""
    return _bound.set({**(_bound.get() or {}), **fields})


def unbind(token: contextvars.Token) -> None:
    with contextlib.suppress(ValueError):   # a token from another context: nothing to undo
        _bound.reset(token)


def bound() -> dict:
    return dict(_bound.get() or {})


@contextlib.contextmanager
def binding(**fields) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def configure(level: str | None = None, fmt: str | None = None, stream=None) -> None:
    """Route every logger to one stderr handler: JSON lines (or plain text for a terminal)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if (fmt or settings.log_format) == "json":
        handler.setFormatter(AllowListFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
