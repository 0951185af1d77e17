"""The Celery app: configuration from config/, the broker transport of tasks/broker.py, and the
worker's consumer (task events sent in batches)."""
from celery import Celery
from celery.worker.consumer import Consumer

from config import celeryconfig, schedule
from pipeline.adapters.db import DatabaseDown
from tasks import broker

broker.install()        # workers survive a Redis restart (see tasks/broker.py)

app = Celery("pingtree")
app.config_from_object(celeryconfig)
app.conf.beat_schedule = schedule.BEAT_SCHEDULE

# A stage that hits a dropped PostgreSQL connection runs again soon on a fresh one (the pool
# drops every connection from before the outage). Every stage is idempotent: its claim makes
# a second run harmless. Beat tasks need none: their next run is the retry.
STAGE_RETRY = {"autoretry_for": (DatabaseDown,), "retry_backoff": 0.5, "retry_backoff_max": 5,
               "retry_jitter": False, "max_retries": 12}


class EventBatchingConsumer(Consumer):
    """The worker's consumer (config: worker_consumer), sending task events at most every
    EVENTS_EVERY_S instead of as soon as each is made.

    Celery buffers a worker's task events (received, started, succeeded, failed, retried) and
    has its event loop flush them soon after each one: one Redis PUBLISH per task in a solo
    worker, two or three in a threads worker (its pool threads wake the loop at each event).
    Here the first buffered event arms one flush EVENTS_EVERY_S later, in the loop's thread, and
    everything buffered by then leaves in that publish. Every event still goes out, stamped
    when it happened: Flower shows the same tasks and states, up to EVENTS_EVERY_S later. A
    stopping worker flushes what it holds first; a killed one loses at most that window's events
    (never a task: events are not the pipeline).
    """

    EVENTS_EVERY_S = 0.1
    _events_due = False

    def on_send_event_buffered(self) -> None:
        if self.hub is not None and not self._events_due:
            self._events_due = True          # set from any thread; one flush armed at a time
            self.hub.call_soon(self._arm_events_flush)

    def _arm_events_flush(self) -> None:
        self.hub.call_later(self.EVENTS_EVERY_S, self._flush_events_due)

    def _flush_events_due(self) -> None:
        self._events_due = False             # an event buffered from here on arms the next flush
        self._flush_events()

    def shutdown(self) -> None:
        self._flush_events()
        super().shutdown()
