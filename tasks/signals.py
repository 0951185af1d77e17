"""Celery signal hooks: JSON logs with each task's context bound; each run logged and counted."""
from __future__ import annotations

import inspect
import logging
import time
from functools import cache

from celery import platforms, signals

from config import queues
from config.settings import settings
from pipeline.adapters import heap, logs, taskstats
from pipeline.service import beat
from tasks.app import app

log = logging.getLogger("pingtree.tasks")
_running: dict[str, tuple[float, object]] = {}    # task id -> (start, the log binding's token)


@signals.setup_logging.connect
def configure_logging(loglevel=None, **_) -> None:
    # Connected, so Celery installs no handler of its own: every line goes through the allow-list.
    logs.configure(level=loglevel or settings.log_level)


@signals.beat_init.connect
def register_beat_jobs(sender=None, **_) -> None:
    if sender is not None:
        stop_between_ticks(sender)
    heap.settle()
    try:
        beat.register_jobs()
    except Exception as exc:  # beat must start anyway; the jobs register when they first run
        log.warning("beat jobs not registered: %s", type(exc).__name__)


@signals.worker_ready.connect
def settle_heap(sender=None, **_) -> None:
    """Once a worker has started: its start-up heap out of the garbage collector's way
    (pipeline/adapters/heap.py), the ZIP records loaded first where a stage reads them."""
    names = sender.app.amqp.queues.consume_from if sender is not None else ()
    # A worker started without -Q consumes every queue (consume_from is then None).
    frozen = heap.settle(zip_records=names is None or bool({queues.VALIDATE, queues.PING} & set(names)))
    log.info("start-up heap settled: %d objects out of the garbage collector's way", frozen,
             extra={"count": frozen})


def stop_between_ticks(service) -> None:
    """SIGTERM and SIGINT stop beat after its current tick (then it closes its connection).

    Celery's own handler closes the broker connection and raises SystemExit from inside the
    handler, wherever the signal lands: in the middle of a publish the closed socket's error
    replaced the SystemExit, or in a finalizer (`__del__`) the SystemExit was swallowed, and
    beat went on sending after its SIGTERM (seen under load). Here the handler asks the loop to
    stop, and leaves at once only where that is safe: when the signal finds beat waiting between
    ticks (in the loop's own frame, which catches SystemExit); a tick in progress finishes first,
    and beat leaves before its next one. A second signal exits wherever it lands.
    """
    asked: list[int] = []
    loop = type(service).start.__code__

    def stop(signum, frame) -> None:
        if asked or (frame is not None and frame.f_code is loop):
            raise SystemExit()
        asked.append(signum)
        service.stop()
    platforms.signals.update(SIGTERM=stop, SIGINT=stop)


@signals.worker_shutdown.connect
@signals.worker_process_shutdown.connect
def write_task_figures(**_) -> None:
    # Figures are written once a second (pipeline/adapters/taskstats.py): what is held, now.
    taskstats.flush()


@cache
def _id_field(task_name: str) -> str | None:
    """`lead_id` or `auction_id`: what the task's first argument is, read from its signature."""
    task = app.tasks.get(task_name)
    params = list(inspect.signature(task.run).parameters) if task is not None else []
    return params[0] if params and params[0] in ("lead_id", "auction_id") else None


@signals.task_prerun.connect
def bind_task(task_id=None, task=None, args=None, **_) -> None:
    fields = {"task": task.name, "task_id": task_id, "stage": task.name.removeprefix("pingtree.")}
    field = _id_field(task.name)
    if field and args:
        fields[field] = str(args[0])
    _running[task_id] = (time.monotonic(), logs.bind(**fields))


@signals.task_postrun.connect
def log_task(task_id=None, task=None, state=None, **_) -> None:
    started, token = _running.pop(task_id, (None, None))
    if started is None:
        return
    took = time.monotonic() - started
    taskstats.record(task.name, state or "UNKNOWN", took)
    log.info("task %s %s", task.name, state, extra={"state": state, "duration_ms": round(took * 1000, 1)})
    logs.unbind(token)

