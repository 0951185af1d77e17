"""Flower's task search index, cheaper per event in pingtree's Flower (`celery -A tasks flower`).

Flower 2.2 indexes a task again at every event it hears (task-received, -started, -succeeded...)
and each time parses the task's kwargs text (``"{}"`` for every pingtree task: the arguments are
ids) with ``ast.literal_eval``: Python's compiler for each event, ~12 % of Flower's instructions
for a task's events (1.10 -> 0.97 M a task: decode, Celery's State, Flower's index and metrics).
The pairs depend on the text alone and are immutable (a frozenset), so the same text is parsed
once: what Flower indexes, finds and shows is the same. A Flower without this function (another
version) is left as it is.
"""
from __future__ import annotations

import sys
from functools import lru_cache


def install() -> None:
    """Memoize Flower's kwargs parsing, if Flower's search module is loaded (in Flower only)."""
    search = sys.modules.get("flower.utils.search")
    parse = getattr(search, "_kwargs_pairs", None)
    if parse is None or getattr(parse, "pingtree_memo", False):
        return
    parsed = lru_cache(maxsize=256)(parse)

    def kwargs_pairs(value):
        return parsed(value) if type(value) is str else parse(value)

    kwargs_pairs.pingtree_memo = True           # type: ignore[attr-defined]
    kwargs_pairs.cache_info = parsed.cache_info  # type: ignore[attr-defined]
    search._kwargs_pairs = kwargs_pairs          # type: ignore[union-attr]
