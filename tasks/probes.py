"""The worker's liveness file: touched every few seconds while the worker consumes (k8s probe)."""
from __future__ import annotations

import contextlib
from pathlib import Path

from celery import bootsteps

from config.settings import settings
from tasks.app import app

TOUCH_EVERY_S = 5.0


class AliveFile(bootsteps.StartStopStep):
    """Touch PINGTREE_WORKER_ALIVE_FILE from the worker's timer while its consumer runs.

    A hung worker (its timer stopped, or its consumer gone) stops touching it, and the
    liveness probe restarts the pod; no Python and no broker round trip per probe.
    """
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.path = Path(settings.worker_alive_file) if settings.worker_alive_file else None
        self.tref = None

    def start(self, worker):
        if self.path is not None:
            self.tref = worker.timer.call_repeatedly(TOUCH_EVERY_S, self.touch, (worker,), priority=10)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def touch(self, worker):
        consumer = getattr(worker, "consumer", None)
        if consumer is not None and consumer.blueprint.state == bootsteps.RUN:
            self.path.touch()


app.steps["worker"].add(AliveFile)
