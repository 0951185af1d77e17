"""Queue `award`: the chord callback, and the deadline close that every award worker runs itself."""
from __future__ import annotations

import logging
import threading

from celery import bootsteps
from click import Option

from config import queues, schedule
from pipeline.service import lifecycle
from tasks.app import STAGE_RETRY, app
from tasks.dispatch import send
from tasks.outage import housekeeping

log = logging.getLogger("pingtree.close")


@app.task(name="pingtree.award_auction", **STAGE_RETRY)
def award_auction(auction_id: str) -> None:
    send(lifecycle.award_auction(auction_id))


# By hand (an operator, a test): the award workers run the same close every CLOSE_EVERY_S.
# `scheduled` is what a beat of an earlier version sent with it.
@app.task(name="pingtree.close_overdue")
def close_overdue(scheduled: bool = False) -> None:
    with housekeeping.watch():
        send(lifecycle.close_overdue())


class DeadlineCloser(bootsteps.StartStopStep):
    """Every CLOSE_EVERY_S, in a thread of each worker that consumes `award`: award the auctions
    still open at deadline + grace (a ping task that started late, died or was lost).

    Not a beat message per tick: that cost ~55 ms CPU per second (beat's send, the message,
    the task, a jobs-table write) on an idle system. Here a tick is one query on the partial
    index of open auctions (~0.4 ms), and nothing more when none is overdue. Several award
    workers may close the same auction at once: the conditional close lets one of them act.
    """
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, without_deadline_close: bool = False, **kwargs):
        super().__init__(worker, **kwargs)
        self.off = without_deadline_close
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.every_s = schedule.CLOSE_EVERY_S

    def start(self, worker):
        consumed = worker.app.amqp.queues.consume_from     # None: every queue
        if self.off or (consumed is not None and queues.AWARD not in consumed):
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self.run, name="deadline-close", daemon=True)
        self.thread.start()

    def stop(self, worker):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            self.tick()

    def tick(self) -> None:
        try:
            with housekeeping.watch():     # PostgreSQL down: logged once, the next tick retries
                send(lifecycle.close_overdue())
        except Exception:                  # the closer never stops; the next tick tries again
            log.exception("the deadline close failed; next tick in %.2f s", self.every_s)


app.steps["worker"].add(DeadlineCloser)
# The end-to-end tests' workers run without it: those tests close auctions themselves.
app.user_options["worker"].add(Option(["--without-deadline-close"], is_flag=True, default=False,
                                      help="Do not run the overdue-auction close in this worker."))
