"""The worker's flat path for a plain task message (PingtreeTask.Strategy, Celery's extension point
for how a worker takes a task's message): what Celery does for it, with less machinery around.

A stage task's message is plain: protocol 2, no eta or countdown, no expiry, no callbacks,
errbacks, chain, chord or group, no time limit, no stamps, its result ignored, not revoked. For
such a message Celery's strategy builds a Request (the headers copied and its request dict
assembled field by field), the pool calls fast_trace_task, which unpacks the body again and
calls the general tracer: a Context, the task and request stacks, deduplication and track-started
checks, callbacks and chain dispatch, mark_as_done, a repr of the result. Here the request is
built in one step (the same request dict, the same attributes) and the task runs through
``_trace`` below: the same signals, stacks, Context and logs as Celery's tracer, without the
branches a plain message cannot take. What goes around it is Celery's own: the pool's
``apply_async`` with the request's ``on_accepted`` (worker state, task-started) and ``on_success``
(worker state, the late ack, task-succeeded), and an exception in the task goes through Celery's
TraceInfo and the request's ``on_failure``/``on_retry`` as from Celery's tracer: the same retry
messages, acks, rejections, events, signals and logs.

Anything else (another protocol, an eta, a chord member, a revoked id, a stamped message, a task
with a time limit, a rate limit, track_started, hooks of its own, a task_received receiver, a
prefork pool) is handed to Celery's default strategy unchanged.
"""
from __future__ import annotations

import logging
import time
from weakref import ref

from billiard.einfo import ExceptionInfo
from celery import signals
from celery._state import _task_stack
from celery.app.task import Context
from celery.app.trace import (
    FAILURE,
    IGNORED,
    LOG_RECEIVED,
    LOG_SUCCESS,
    REJECTED,
    RETRY,
    SUCCESS,
    TraceInfo,
    get_task_name,
    report_internal_error,
    task_has_custom,
    traceback_clear,
)
from celery.app.trace import _signal_internal_error as signal_internal_error
from celery.app.trace import logger as trace_logger
from celery.concurrency import solo, thread
from celery.concurrency.base import apply_target
from celery.exceptions import Ignore, Reject, Retry, TaskRevokedError
from celery.utils.functional import maybe
from celery.utils.imports import symbol_by_name
from celery.utils.saferepr import saferepr
from celery.worker import state as worker_state
from celery.worker import strategy as celery_strategy
from celery.worker.request import create_request_cls

_POOLS = (solo.TaskPool, thread.TaskPool)
# What Context._get_custom_headers leaves out of a request's custom headers (Celery's own keys).
_CELERY_KEYS = frozenset({*Context.__dict__, "lang", "task", "argsrepr", "kwargsrepr", "compression"})
_OWN_HOOKS = ("before_start", "on_success", "after_return")


def flat_eligible(task, app, consumer) -> bool:
    """Whether ``task`` may take the flat path in this worker at all."""
    conf = app.conf
    return (isinstance(consumer.pool, _POOLS)
            and task.time_limit is None and task.soft_time_limit is None
            and (task.rate_limit is None or consumer.disable_rate_limits)
            and not task.track_started
            and not (conf.worker_deduplicate_successful_tasks and task.acks_late)
            and not conf.task_inherit_parent_priority
            and not any(task_has_custom(task, hook) for hook in _OWN_HOOKS))


def flat(task, app, consumer, **kwargs):
    """The strategy of every pingtree task (PingtreeTask.Strategy): plain messages on the flat
    path, anything else through Celery's default strategy, which is built here too."""
    celerys = celery_strategy.default(task, app, consumer, **kwargs)
    if not flat_eligible(task, app, consumer):
        return celerys

    hostname = consumer.hostname
    connection_errors = consumer.connection_errors
    eventer = consumer.event_dispatcher
    send_event = eventer.send if eventer is not None and eventer.enabled and task.send_events else None
    handle = consumer.on_task_request
    # A rate or time limit set at run time (`celery control rate_limit|time_limit`) sends the
    # task's messages Celery's way from then on.
    buckets = None if consumer.disable_rate_limits else consumer.task_buckets
    revoked = consumer.controller.state.revoked
    task_reserved = worker_state.task_reserved
    received_receivers = signals.task_received.receivers
    ignore_by_default = task.ignore_result
    log_received = celery_strategy.logger.isEnabledFor(logging.INFO)
    info = celery_strategy.logger.info
    Req = create_request_cls(symbol_by_name(task.Request), task, consumer.pool, hostname, eventer,
                             app=app)
    trace = _tracer(task, app)
    utc = app.uses_utc_timezone()           # what Celery's strategy tells a protocol-2 request
    inline = isinstance(consumer.pool, solo.TaskPool)

    class FlatRequest(Req):
        __slots__ = ()

        def execute_using_pool(self, pool, **_):
            # Celery's execute_using_pool with the flat trace: the same callbacks, the same pool
            # (a solo pool's apply_async is apply_target, called here without its wrapper).
            if self.revoked():
                raise TaskRevokedError(self.id)
            if inline:
                return apply_target(trace, (self,), None, self.on_success, self.on_accepted)
            result = pool.apply_async(trace, args=(self,), accept_callback=self.on_accepted,
                                      callback=self.on_success, error_callback=self.on_failure,
                                      correlation_id=self.id)
            self._apply_result = maybe(ref, result)
            return result

    new = FlatRequest.__new__

    def task_message_handler(message, body, ack, reject, callbacks):
        headers = message.headers
        payload = message.payload if body is None else None
        if (type(payload) is not list or len(payload) != 3 or callbacks or received_receivers
                or headers.get("eta") is not None or headers.get("expires") is not None
                or headers.get("group") is not None or headers.get("stamped_headers")
                or any(headers.get("timelimit") or ())):
            return celerys(message, body, ack, reject, callbacks)
        args, kwargs, embed = payload
        ignore_result = headers.get("ignore_result")
        if ignore_result is None:
            ignore_result = ignore_by_default
        task_id = headers["id"]
        if (not ignore_result or type(kwargs) is not dict or type(args) not in (list, tuple)
                or type(embed) is not dict or any(embed.values()) or task_id in revoked
                or (buckets is not None and buckets[task.name] is not None)
                or task.time_limit is not None or task.soft_time_limit is not None):
            return celerys(message, body, ack, reject, callbacks)

        properties = message.properties or {}
        delivery_info = message.delivery_info or {}
        delivery = {"exchange": delivery_info.get("exchange"),
                    "routing_key": delivery_info.get("routing_key"),
                    "priority": properties.get("priority"),
                    "redelivered": delivery_info.get("redelivered", False)}
        # Celery's request dict: the headers, then what its Request and fast_trace_task add.
        request_dict = {**headers, "properties": properties, "reply_to": properties.get("reply_to"),
                        "correlation_id": properties.get("correlation_id"), "hostname": hostname,
                        "delivery_info": delivery, "args": args, "kwargs": kwargs,
                        "is_eager": False, **embed}
        req = new(FlatRequest)
        req._message = message
        req._request_dict = request_dict
        req._body = req._Request__payload = payload
        req._args, req._kwargs = args, kwargs
        req._app = app
        req._utc = utc
        req._decoded = True
        req._content_type = req._content_encoding = None
        req.id = task_id
        req._type = headers["task"]
        req.name = headers.get("shadow") or req._type
        req._root_id = headers.get("root_id")
        req._parent_id = headers.get("parent_id")
        req._argsrepr = headers.get("argsrepr", "")
        req._kwargsrepr = headers.get("kwargsrepr", "")
        req._on_ack = ack
        req._on_reject = reject
        req._hostname = hostname
        req._eventer = eventer
        req._connection_errors = connection_errors
        req._task = task
        req._ignore_result = ignore_result
        req._eta = req._expires = None
        req._delivery_info = delivery

        if log_received:
            context = {"id": task_id, "name": req.name, "args": req._argsrepr,
                       "kwargs": req._kwargsrepr, "eta": None}
            info(LOG_RECEIVED, context, extra={"data": context})
        if send_event is not None:
            send_event("task-received", uuid=task_id, name=req.name, args=req._argsrepr,
                       kwargs=req._kwargsrepr, root_id=req._root_id, parent_id=req._parent_id,
                       retries=headers.get("retries", 0), eta=None, expires=None)
        task_reserved(req)
        handle(req)

    return task_message_handler


def request_context(request_dict: dict) -> Context:
    """``Context(request_dict, called_directly=False)``, as Celery's tracer makes it, built in
    one update: Context's __init__ works out the set of its own keys again for every task."""
    context = Context.__new__(Context)
    fields = context.__dict__
    fields.update(request_dict)
    fields["called_directly"] = False
    if "timelimit" in fields:
        timelimit = fields["timelimit"]
        if isinstance(timelimit, (list, tuple)) and len(timelimit) >= 2:
            fields["time_limit"], fields["soft_time_limit"] = timelimit[0], timelimit[1]
        else:
            fields["time_limit"] = fields["soft_time_limit"] = None
    if fields.get("headers") is None:
        fields["headers"] = {k: v for k, v in request_dict.items() if k not in _CELERY_KEYS} or None
    return context


def _tracer(task, app):
    """Celery's tracer (celery.app.trace.build_tracer) for a plain message: ignored result, no
    callbacks or chain, no chord, no dedup, no track_started, no hooks of the task's own; returns
    what fast_trace_task returns, (failed, result, runtime), for the request's on_success."""
    fun = task if task_has_custom(task, "__call__") else task.run
    push_task, pop_task = _task_stack.push, _task_stack.pop
    push_request, pop_request = task.request_stack.push, task.request_stack.pop
    prerun, postrun, success = signals.task_prerun, signals.task_postrun, signals.task_success
    loader_task_init, loader_cleanup = app.loader.on_task_init, app.loader.on_process_cleanup
    resultrepr_maxsize = task.resultrepr_maxsize
    does_info = trace_logger.isEnabledFor(logging.INFO)
    monotonic = time.monotonic
    name = task.name

    def on_error(request, exc, state=FAILURE, call_errbacks=True):
        failed = TraceInfo(state, exc)
        result = failed.handle_error_state(task, request, eager=False, call_errbacks=call_errbacks)
        return failed, result, failed.state, failed.retval

    def trace(req):
        uuid, args, kwargs = req.id, req._args, req._kwargs
        result = failed = runtime = shown = retval = state = None
        task_request = None
        time_start = monotonic()
        try:
            task_request = request_context(req._request_dict)
            push_task(task)
            push_request(task_request)
            try:
                if prerun.receivers:
                    prerun.send(sender=task, task_id=uuid, task=task, args=args, kwargs=kwargs)
                loader_task_init(uuid, task)
                try:
                    result = retval = fun(*args, **kwargs)
                    state = SUCCESS
                except Reject as exc:
                    failed, result = TraceInfo(REJECTED, exc), ExceptionInfo(internal=True)
                    state, retval = failed.state, failed.retval
                    failed.handle_reject(task, task_request)
                    traceback_clear(exc)
                except Ignore as exc:
                    failed, result = TraceInfo(IGNORED, exc), ExceptionInfo(internal=True)
                    state, retval = failed.state, failed.retval
                    failed.handle_ignore(task, task_request)
                    traceback_clear(exc)
                except Retry as exc:
                    failed, result, state, retval = on_error(task_request, exc, RETRY, call_errbacks=False)
                    traceback_clear(exc)
                except Exception as exc:
                    failed, result, state, retval = on_error(task_request, exc)
                    traceback_clear(exc)
                else:
                    shown = "None" if result is None else saferepr(result, resultrepr_maxsize)
                    runtime = monotonic() - time_start
                    if success.receivers:
                        success.send(sender=task, result=retval, runtime=runtime)
                    if does_info:
                        trace_logger.info(LOG_SUCCESS, {
                            "id": uuid, "name": get_task_name(task_request, name),
                            "return_value": shown, "runtime": runtime,
                            "args": task_request.get("argsrepr") or saferepr(args),
                            "kwargs": task_request.get("kwargsrepr") or saferepr(kwargs)})
            finally:
                try:
                    if postrun.receivers:
                        postrun.send(sender=task, task_id=uuid, task=task, args=args,
                                     kwargs=kwargs, retval=retval, state=state)
                finally:
                    pop_task()
                    pop_request()
                    try:
                        task.backend.process_cleanup()
                        loader_cleanup()
                    except (KeyboardInterrupt, SystemExit, MemoryError):
                        raise
                    except Exception as exc:
                        trace_logger.error("Process cleanup failed: %r", exc, exc_info=True)
        except MemoryError:
            raise
        except Reject:
            raise
        except Exception as exc:
            signal_internal_error(task, uuid, args, kwargs, req._request_dict, exc)
            result = report_internal_error(task, exc)
            if task_request is not None:
                failed, _, _, _ = on_error(task_request, exc)
        return (1, result, runtime) if failed else (0, shown, runtime)

    return trace

