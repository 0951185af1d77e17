"""The Celery app: configuration from config/, the broker transport of tasks/broker.py, and the
worker's consumer and event dispatcher (task events sent in batches, each batch one PUBLISH)."""
import json
import time
from base64 import b64encode

from celery import Celery, Task
from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher
from celery.utils.time import utcoffset
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from kombu.utils import json as kombu_json
from kombu.utils.uuid import uuid

from config import celeryconfig, schedule
from pipeline.adapters.db import DatabaseDown
from tasks import broker

broker.install()        # workers survive a Redis restart (see tasks/broker.py)

class BatchPublishingDispatcher(EventDispatcher):
    """The event dispatcher of every pingtree process (app.events.Dispatcher): a batch of
    buffered task events (what EventBatchingConsumer flushes) leaves as one PUBLISH built here.

    kombu's Producer.publish spends ~250k instructions (~0.1 ms) on each batch, most of a
    worker's cost for events, on machinery an event batch does not use (the serializer
    registry, compression, the declare and retry wrappers, the virtual exchange's routing).
    Here the same kombu message (the same body, headers and properties; Flower and any event
    receiver read it as before) goes out on the channel's redis-py client: ~80k. The first
    batch goes through kombu (it declares the exchange), and so does any batch whose publish
    fails: kombu then buffers it for the next flush while Redis is down, as it always did.
    Single events (worker heartbeats, online/offline) keep kombu's path. A task event to be
    buffered is built here too (send), as Celery builds it.
    """

    _declared = False
    _offset_minute = None           # the minute _offset is for (utcoffset: once a minute)
    _offset = 0.0
    _envelope = None                # (routing_key, headers, delivery_mode, head, tail)

    def send(self, type, *args, **fields):
        """Celery's send; a task event that is buffered (the worker's) is built here.

        The same event, field for field and in the same order, as Celery's Event() makes:
        hostname, utcoffset, pid, clock, the fields, timestamp and type. utcoffset is worked
        out once a minute, for the event's own minute, where Celery asks the C library for the
        local time at every event (a change of offset falls on a minute's start). Celery's
        send takes its options (blind, retry, Event...) by name next to the event's fields:
        each field of a call is compared with each option's name on the way in (~10k
        instructions a task); those options take Celery's send here."""
        if (args or type[:5] != "task-" or not self.enabled or "task" not in self.buffer_group
                or not _PLAIN_FIELDS.isdisjoint(fields)):
            return super().send(type, *args, **fields)
        groups = self.groups
        if groups and "task" not in groups:
            return None
        clock = self.clock.forward()
        now = _now()
        minute = now // 60
        if minute != self._offset_minute:
            self._offset = _UTCOFFSET(localtime=lambda: time.localtime(now))
            self._offset_minute = minute
        event = dict(hostname=self.hostname, utcoffset=self._offset, pid=self.pid, clock=clock,
                     **fields)
        event["timestamp"] = now
        event["type"] = type
        buffer = self._group_buffer["task"]
        buffer.append(event)
        if len(buffer) >= self.buffer_limit:
            self.flush()
        elif self.on_send_buffered:
            self.on_send_buffered()
        return None

    def _publish(self, event, producer, routing_key, **kwargs):
        if not (self._declared and isinstance(event, list) and producer is not None
                and self._publish_batch(event, producer.channel, routing_key)):
            super()._publish(event, producer, routing_key, **kwargs)
            self._declared = producer is not None

    def _publish_batch(self, events: list, channel, routing_key: str) -> bool:
        if (not isinstance(channel, broker.Channel) or channel.global_keyprefix
                or self.serializer != "json" or self.exchange.type != "fanout"):
            return False
        body = b64encode(kombu_json.dumps(events).encode()).decode()
        head, tail = self._envelope_around(routing_key)
        # json.dumps of the message, as kombu writes it: the body and the delivery tag are
        # base64 and a uuid, which JSON writes as they are (escaping them is ~60k instructions
        # a task, the body being ~1.3 kB a task), so the rest is made once and kept.
        message = f"{head}{body}{tail}{uuid()}\"}}}}"
        try:
            with channel.conn_or_acquire() as client:
                for topic in channel._get_publish_topics(self.exchange.name, routing_key):
                    client.publish(topic, message)
        except Exception:   # kombu publishes it, or buffers it while Redis is down
            return False
        return True

    def _envelope_around(self, routing_key: str) -> tuple[str, str]:
        """The JSON of a batch's message before its body, and between its body and its
        delivery tag (the tag last): made again if the headers or routing key change."""
        kept = self._envelope
        if (kept is None or kept[0] != routing_key or kept[1] != self.headers
                or kept[2] != self.delivery_mode):
            marker = "\x00"
            text = json.dumps({
                "body": marker, "content-encoding": "utf-8", "content-type": "application/json",
                "headers": self.headers,
                "properties": {"delivery_mode": self.delivery_mode,
                               "delivery_info": {"exchange": self.exchange.name,
                                                 "routing_key": routing_key},
                               "priority": 0, "body_encoding": "base64", "delivery_tag": marker}})
            head, tail, end = text.split(json.dumps(marker))
            assert end == "}}"
            kept = self._envelope = (routing_key, dict(self.headers), self.delivery_mode,
                                     head + '"', '"' + tail + '"')
        return kept[3], kept[4]


# What takes Celery's send: its options, and a timestamp of the caller's.
_PLAIN_FIELDS = frozenset(("blind", "utcoffset", "retry", "retry_policy", "Event", "timestamp"))
_UTCOFFSET = utcoffset
_now = time.time


class PingtreeEvents(Events):
    dispatcher_cls = BatchPublishingDispatcher


class DecodedOnceRequest(Request):
    """The worker's request for every pingtree task (PingtreeTask.Request): it carries the
    message's body as the worker already decoded it.

    Celery's strategy decodes a protocol-2 body to tell it from older protocols, then hands the
    request the body's bytes, and the tracer decodes them once more as the task starts: kombu's
    loads of a ~90-byte body is ~50k instructions, ~3 % of a no-op task's shell. Here the
    request gets the decoded (args, kwargs, embed), which the tracer takes as it is (Celery's own
    path for messages it converts from older protocols): the same arguments, chord and
    callbacks. Under a prefork pool the decoded body is what goes to the child.
    """

    __slots__ = ()

    def __init__(self, message, *args, body=None, decoded=False, **kwargs):
        if not decoded and (body is None or body is message.body):
            body, decoded = message.payload, True       # decoded by the strategy already
        super().__init__(message, *args, body=body, decoded=decoded, **kwargs)


class PingtreeTask(Task):
    Request = DecodedOnceRequest
    Strategy = "tasks.flat:flat"        # plain messages on a flat path, the rest Celery's way


app = Celery("pingtree", events=PingtreeEvents, task_cls=PingtreeTask)
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
