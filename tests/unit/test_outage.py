"""A PostgreSQL outage is logged when it starts, once a minute, and when it ends: not per beat tick."""
from __future__ import annotations

import logging

from pipeline.adapters import db
from tasks.outage import Outage


def _tick(outage: Outage, down: bool) -> None:
    with outage.watch():
        if down:
            raise db.DatabaseDown('connection to server at "127.0.0.1", port 5432 failed\nmore detail')


def test_an_outage_is_logged_when_it_starts_each_minute_and_when_it_ends(caplog):
    now = [0.0]
    outage = Outage(clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="pingtree.outage")
    for _ in range(600):                 # 150 s of a beat every 0.25 s
        _tick(outage, down=True)
        now[0] += 0.25
    _tick(outage, down=False)
    _tick(outage, down=False)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        'PostgreSQL unreachable (connection to server at "127.0.0.1", port 5432 failed);'
        " beat tasks wait for it",
        "PostgreSQL still unreachable after 60 s (241 failed runs)",
        "PostgreSQL still unreachable after 120 s (481 failed runs)",
        "PostgreSQL is back after 150 s (600 failed runs)",
    ]


def test_other_errors_are_not_swallowed():
    outage = Outage()
    try:
        with outage.watch():
            raise ValueError("a bug")
    except ValueError:
        pass
    else:
        raise AssertionError("a bug must not pass as an outage")
