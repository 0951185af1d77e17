"""A PostgreSQL outage seen by the beat's tasks: logged when it starts, every minute, and when it ends."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from pipeline.adapters import db

log = logging.getLogger("pingtree.outage")
REMIND_EVERY_S = 60.0


class Outage:
    """One per worker process: a beat tick during an outage is counted, not logged."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        self.since: float | None = None
        self.reminded = 0.0
        self.failures = 0

    @contextmanager
    def watch(self):
        try:
            yield
        except db.DatabaseDown as exc:
            self._failed(exc)      # the next tick tries again: nothing is lost by waiting
            return
        self._worked()

    def _failed(self, exc: Exception) -> None:
        with self.lock:
            now = self.clock()
            self.failures += 1
            if self.since is None:
                self.since = self.reminded = now
                reason = (str(exc).strip().splitlines() or ["down"])[0]
                log.error("PostgreSQL unreachable (%s); beat tasks wait for it", reason)
            elif now - self.reminded >= REMIND_EVERY_S:
                self.reminded = now
                log.error("PostgreSQL still unreachable after %.0f s (%d failed runs)",
                          now - self.since, self.failures)

    def _worked(self) -> None:
        with self.lock:
            if self.since is not None:
                log.warning("PostgreSQL is back after %.0f s (%d failed runs)",
                            self.clock() - self.since, self.failures)
                self.since, self.failures = None, 0


housekeeping = Outage()
