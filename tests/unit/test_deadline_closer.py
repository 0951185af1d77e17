"""The deadline close runs in the workers that consume `award`, and a failing tick never stops it."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from config import queues
from tasks import award


def worker_consuming(consume_from):
    return SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(
        queues=SimpleNamespace(consume_from=consume_from))))


@pytest.fixture
def ticks(monkeypatch):
    calls = threading.Semaphore(0)

    def close_overdue():
        calls.release()
        raise RuntimeError("PostgreSQL said no")       # logged; the next tick runs anyway
    monkeypatch.setattr(award.lifecycle, "close_overdue", close_overdue)
    return calls


@pytest.mark.parametrize("consume_from", [None, {queues.AWARD: object()},
                                          {queues.AWARD: object(), queues.PING: object()}])
def test_a_worker_consuming_award_closes_every_tick_even_after_a_failure(consume_from, ticks):
    step = award.DeadlineCloser(SimpleNamespace())
    step.every_s = 0.01
    worker = worker_consuming(consume_from)
    step.start(worker)
    try:
        assert all(ticks.acquire(timeout=5) for _ in range(3))
    finally:
        step.stop(worker)
    assert step.thread is None


@pytest.mark.parametrize(("consume_from", "off"), [({queues.RERUN: object()}, False), (None, True)])
def test_a_worker_not_consuming_award_or_told_not_to_runs_no_close(consume_from, off, ticks):
    step = award.DeadlineCloser(SimpleNamespace(), without_deadline_close=off)
    step.every_s = 0.01
    step.start(worker_consuming(consume_from))
    assert step.thread is None
    assert not ticks.acquire(timeout=0.1)
