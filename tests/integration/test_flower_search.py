"""Flower's search index in pingtree's Flower (tasks/flower_search.py): a task's kwargs text is
parsed once, and Flower's state, fed a worker's task events, indexes and finds what it did."""
from __future__ import annotations

import importlib

import pytest
from flower.events import EventsState
from flower.utils import search

from tasks import flower_search
from tests.helpers import task_events

pytestmark = pytest.mark.integration


def _index(kwargs_texts: list[str]) -> EventsState:
    state = EventsState(max_tasks_in_memory=100)
    for i, kwargs in enumerate(kwargs_texts):
        for event in task_events(f"t-{i}", kwargs):
            state.event(event)
    return state


def _view(state: EventsState) -> tuple:
    engine = state.search_engine
    documents = {k: tuple(getattr(d, f) for f in d.__slots__) for k, d in engine.documents.items()}
    return documents, {k: set(v) for k, v in engine.kwargs_postings.items()}


@pytest.fixture
def module():
    yield importlib.reload(search)                  # Flower's own, unpatched (the same module)
    importlib.reload(search)


def test_flowers_index_is_the_same_and_each_kwargs_text_is_parsed_once(module):
    texts = ["{}", "{}", "{'lead_id': 'L-1'}", "{}", "{'lead_id': 'L-1'}", "not python"]
    flowers = _view(_index(texts))
    flower_search.install()
    assert module._kwargs_pairs.pingtree_memo
    ours = _view(_index(texts))
    assert ours == flowers
    assert ours[1] == {"lead_id=l-1": {"t-2", "t-4"}}
    info = module._kwargs_pairs.cache_info()
    assert (info.misses, info.hits) == (3, 3 * 6 - 3)         # 3 texts; each task indexed 3 times
    flower_search.install()                         # once only
    assert module._kwargs_pairs.cache_info().misses == 3
