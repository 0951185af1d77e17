"""Data that grows: sum old days per buyer, then prune old detail and records past retention.

Ping, post, auction and event detail of finished leads is kept ``detail_days`` (then only each
buyer's daily sums remain, in buyer_days, for reports); leads with their consent records and
sales are kept ``record_days``, never less than five years (the FTC Telemarketing Sales Rule's
record-keeping period; the consent trigger refuses anything younger). Work goes in small
batches, each its own transaction, so the prune never holds a lock for long and can stop at
its time budget and go on at the next run.
"""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock

from config.settings import settings
from pipeline.adapters import db, retention

log = logging.getLogger("pingtree.retention")

FIVE_YEARS_DAYS = 1827


class RetentionTooShort(ValueError):
    pass


def cutoffs(now: datetime, detail_days: int, record_days: int) -> tuple[datetime, datetime]:
    """Midnight (UTC) starts: detail before the first and records before the second go."""
    if record_days < FIVE_YEARS_DAYS:
        raise RetentionTooShort(f"records are kept at least {FIVE_YEARS_DAYS} days (five years)")
    if detail_days < 1:
        raise RetentionTooShort("detail is kept at least 1 day")
    day = datetime.combine(now.astimezone(UTC).date(), clock(0), UTC)
    return day - timedelta(days=detail_days), day - timedelta(days=record_days)


def prune(detail_days: int, record_days: int, *, batch: int = 2000, budget_s: float | None = None,
          now: datetime | None = None) -> dict:
    """Sum, then delete, until nothing is left to do or the budget is spent; returns counts."""
    detail_before, records_before = cutoffs(now or datetime.now(UTC), detail_days, record_days)
    until = None if budget_s is None else time.monotonic() + budget_s
    done = {"days_summed": 0, "detail_rows": 0, "leads": 0, "finished": False}

    def spent() -> bool:
        return until is not None and time.monotonic() > until

    with db.transaction() as cur:
        day = retention.oldest_detail_day(cur, detail_before)
    while day is not None and day < detail_before.date() and not spent():
        with db.transaction() as cur:
            done["days_summed"] += retention.sum_buyer_day(cur, day) > 0
        day += timedelta(days=1)
    for step, key in ((retention.delete_detail, "detail_rows"), (retention.delete_records, "leads")):
        before = detail_before if key == "detail_rows" else records_before
        while not spent():
            with db.transaction() as cur:
                count = step(cur, before, batch)
            done[key] += count
            if count == 0:
                break
    done["finished"] = not spent()
    log.info("prune: %s days summed, %s detail rows and %s leads deleted",
             done["days_summed"], done["detail_rows"], done["leads"])
    return done


def prune_from_beat() -> list:
    """The beat's prune-history job: within PINGTREE_PRUNE_BUDGET_S; it sends nothing on."""
    prune(settings.detail_keep_days, settings.record_keep_days, budget_s=settings.prune_budget_s)
    return []


def detail_from(now: datetime) -> datetime:
    """Where ping detail starts (reports read the daily sums before it)."""
    return cutoffs(now, settings.detail_keep_days, max(settings.record_keep_days, FIVE_YEARS_DAYS))[0]
