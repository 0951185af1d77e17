"""Turn the domain's nudges into Celery messages: plain sends, and the ping chord.

A plain nudge (a task name and ids, no countdown) is published by ``publish``: the same Celery
protocol-2 message that ``app.send_task`` builds (the same headers, properties and body, so
any Celery worker and Flower read it), without the general machinery around it that a nudge
does not use: the router, the task's execution options and the argument repr worked out again
for every message, kombu's serializer registry, the declare and retry wrappers and a result
object (~0.3 ms of CPU a send, about a sixth of a stage worker's per-task cost). The first
nudge of each task name in a process goes through ``send_task``, which declares the queue and
checks that the route is a plain one; a name whose route or options are anything else (a
priority, an exchange of its own, a time limit) stays on ``send_task`` for good. So does any
nudge whose publish fails: ``send_task`` retries it under Celery's publish retry policy and
raises what it always raised. Countdowns and chords always go through Celery.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from base64 import b64encode

from celery import chord, signals
from celery.utils.nodenames import anon_nodename
from kombu.utils.uuid import uuid

from pipeline.service.nudges import Fanout, Nudge
from tasks import broker
from tasks.app import app

_SLOW = ""                                  # a task name that always goes through send_task
_queues: dict[str, str] = {}                # task name -> its queue (a plain direct route), or _SLOW
_queues_lock = threading.Lock()
_origin: tuple[int, str] | None = None      # (pid, the `origin` header Celery writes)
_publisher: tuple | None = None             # (pid, kombu connection, its channel)
_BODY_TAIL = ', {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


def _signature(nudge: Nudge):
    return app.signature(nudge.task, args=nudge.args, immutable=True)


def send(nudges: list[Nudge | Fanout]) -> None:
    for nudge in nudges:
        if isinstance(nudge, Fanout):
            header = [_signature(n).set(ignore_result=False) for n in nudge.header]
            chord(header)(_signature(nudge.body))
        elif nudge.countdown or not publish(nudge.task, nudge.args):
            _send_task(nudge)


def _send_task(nudge: Nudge) -> None:
    # ignore_result: no result subscription per message (it leaks, and blocks when Redis is down).
    app.send_task(nudge.task, args=nudge.args, countdown=nudge.countdown, ignore_result=True)


def _plain_queue(name: str) -> str:
    """The queue of task ``name`` when Celery would send it plainly (a direct route to a named
    queue, no execution options, no sent event), else _SLOW."""
    conf = app.conf
    task = app._tasks.get(name)             # as send_task reads it (without finalizing the app)
    options = {k: v for k, v in (task._get_exec_options() if task is not None else {}).items()
               if v is not None}
    routed = app.amqp.router.route(dict(options), name, (), {}, task)
    queue = routed.pop("queue", None)
    if routed.get("serializer") == "json":
        del routed["serializer"]
    plain = (queue is not None and not routed and queue.exchange.type == "direct"
             and queue.name and not queue.queue_arguments and queue.exchange.delivery_mode in (None, 2)
             and not conf.task_send_sent_event and not conf.task_compression
             and conf.task_serializer == "json" and conf.task_protocol == 2
             and not conf.task_inherit_parent_priority
             and not signals.task_sent.receivers)
    return queue.name if plain else _SLOW


def _client():
    """The redis-py client of this process's publishing channel (thread-safe: tasks/broker.py),
    on a broker connection of its own, opened at the first use in each process."""
    global _publisher
    pid = os.getpid()
    held = _publisher
    if held is None or held[0] != pid:
        with _queues_lock:
            held = _publisher
            if held is None or held[0] != pid:
                connection = app.connection_for_write()
                channel = connection.default_channel
                if not isinstance(channel, broker.Channel):
                    connection.release()
                    raise TypeError("not the pingtree Redis transport")
                held = _publisher = (pid, connection, channel)
    with held[2].conn_or_acquire() as client:
        return client


def _drop_client() -> None:
    """Forget the publishing connection (a publish failed): the next publish opens a new one."""
    global _publisher
    held, _publisher = _publisher, None
    if held is not None and held[0] == os.getpid():
        with contextlib.suppress(Exception):
            held[1].release()


def _origin_header() -> str:
    global _origin
    pid = os.getpid()
    if _origin is None or _origin[0] != pid:
        _origin = (pid, anon_nodename())
    return _origin[1]


def publish(name: str, args: tuple) -> bool:
    """Send task ``name`` with ``args`` (ids: strings and numbers) as one Celery protocol-2
    message; False when this one is for ``send_task`` (first of its name, a route or options
    that are not plain, arguments that are not plain ids, or a publish that failed)."""
    queue = _queues.get(name)
    if queue is None:
        with _queues_lock:
            _queues.setdefault(name, _plain_queue(name))
        return False                        # the first one: send_task declares the queue
    if queue is _SLOW or not all(type(a) in (str, int) for a in args):
        return False
    return _publish(queue, name, args)


def _publish(queue: str, name: str, args: tuple) -> bool:
    task_id = uuid()
    root_id, parent_id, parent = task_id, None, app.current_worker_task
    if parent is not None:
        root_id = parent.request.root_id or parent.request.id
        parent_id = parent.request.id
    args = list(args)
    headers = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
        "root_id": root_id, "parent_id": parent_id, "argsrepr": repr(tuple(args)),
        "kwargsrepr": "{}", "origin": _origin_header(), "ignore_result": True,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    body = "[" + json.dumps(args) + _BODY_TAIL
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    properties = {"correlation_id": task_id, "reply_to": app.thread_oid, "delivery_mode": 2}
    message = {"body": b64encode(body.encode()).decode(), "content-encoding": "utf-8",
               "content-type": "application/json", "headers": headers,
               "properties": {**properties, "delivery_info": {"exchange": "", "routing_key": queue},
                              "priority": 0, "body_encoding": "base64", "delivery_tag": uuid()}}
    before, after = signals.before_task_publish, signals.after_task_publish
    if before.receivers:
        before.send(sender=name, body=(args, {}, embed), exchange="", routing_key=queue,
                    declare=[], headers=headers, properties=properties, retry_policy={})
    try:
        _client().lpush(queue, json.dumps(message))   # priority 0: the queue's own list
    except Exception:                       # send_task retries it and raises what it always did
        _drop_client()
        return False
    if after.receivers:
        after.send(sender=name, body=(args, {}, embed), headers=headers, exchange="",
                   routing_key=queue)
    if parent is not None and not parent.request.ignore_result:
        parent.add_trail(app.AsyncResult(task_id))
    return True
