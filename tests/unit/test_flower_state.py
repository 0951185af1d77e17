"""Flower's task list (Celery's events State): a task it evicts is freed at once, and a task's
as_dict is what it was (tasks/flower_state.py)."""
from __future__ import annotations

import gc
import pickle
import uuid
import weakref

from celery.events.state import State

from tasks import flower_state
from tests.helpers import task_events

flower_state.install()


def feed(state: State, task_id: str, parent: str | None = None) -> None:
    for event in task_events(task_id, parent=parent):
        state.event(event)


def test_a_task_the_state_evicts_is_freed_without_the_cyclic_collector():
    state = State(max_tasks_in_memory=100)
    seen = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(300):
            task_id = str(uuid.uuid4())
            feed(state, task_id)
            seen.append(weakref.ref(state.tasks[task_id]))
        alive = sum(1 for ref in seen if ref() is not None)
    finally:
        if was_enabled:
            gc.enable()
    assert len(state.tasks) == 100
    assert alive == 100          # Celery's own Task: all 300 (each a reference cycle)


def test_as_dict_and_a_pickled_task_read_as_before():
    state = State()
    parent, child = str(uuid.uuid4()), str(uuid.uuid4())
    feed(state, parent)
    feed(state, child, parent=parent)
    state.tasks[parent].children.add(state.tasks[child])
    as_dict = state.tasks[parent].as_dict()
    assert as_dict["children"] == [child] and as_dict["uuid"] == parent
    assert as_dict["state"] == "SUCCESS" and as_dict["args"] == "('lead',)"
    child_dict = state.tasks[child].as_dict()
    assert child_dict["root"] == parent and child_dict["parent"] == parent
    assert "_serializer_handlers" not in vars(state.tasks[child])
    copy = pickle.loads(pickle.dumps(state.tasks[child]))
    assert copy.as_dict() == child_dict
    flower_state.install()                      # again: nothing changes
    assert state.tasks[child].as_dict() == child_dict

