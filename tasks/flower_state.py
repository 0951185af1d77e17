"""Flower's tasks freed as soon as Flower lets them go (`celery -A tasks flower`).

Celery's events State, Flower's task list, keeps the last ``max_tasks`` tasks. Each of Celery's
``Task`` objects stores a dict of three of its own bound methods (``_serializer_handlers``, for
``as_dict``), so every task is a reference cycle: a task Flower evicted was freed by no
reference count, only by CPython's full collection. Seen by a ``gc.callbacks`` probe in the
bench's Flower (events on, the throughput and cost scenarios): 7 full passes, 1.1 s of CPU in
all, the later ones 160-280 ms each, freeing 27,000-88,000 objects apiece, while Flower handled
no event; one such pass in the cost scenario's 8 s window is ~1.5 ms of Flower's CPU a lead.

Here the mapping is a property of the class, built from the same methods whenever ``as_dict``
asks for it: nothing a task stores refers back to it, an evicted task is freed at once, and
``as_dict`` (Flower's API and views, a pickled state) returns what it did. Celery's own
``__init__`` still assigns the mapping; the property drops it. A Celery whose ``Task`` keeps no
such mapping is left as it is. Only processes that follow task events (Flower, ``celery
events``) hold ``Task`` objects; the patch is installed wherever ``tasks`` is imported, so it is
in place in Flower whatever Flower imports first.
"""
from __future__ import annotations

from celery.events import state


class _Handlers:
    """``Task._serializer_handlers``, built on each read instead of stored on the task."""

    def __get__(self, task, owner=None):
        if task is None:
            return self
        return {"children": task._serializable_children, "root": task._serializable_root,
                "parent": task._serializable_parent}

    def __set__(self, task, value) -> None:
        """Celery's __init__ assigns the cyclic mapping: not kept."""


def install() -> None:
    """Make Celery's event-state tasks acyclic (idempotent)."""
    task = state.Task
    if isinstance(task.__dict__.get("_serializer_handlers"), _Handlers):
        return
    if not all(hasattr(task, name) for name in
               ("_serializable_children", "_serializable_root", "_serializable_parent")):
        return
    task._serializer_handlers = _Handlers()   # type: ignore[attr-defined]
