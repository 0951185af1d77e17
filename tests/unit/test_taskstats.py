"""Per-task figures: added up in the process, written in one round trip, never lost to a blip."""
from __future__ import annotations

import os
import time

import fakeredis
import pytest
import redis

from pipeline.adapters import taskstats


class Counting(fakeredis.FakeRedis):
    """fakeredis that counts round trips (a pipeline is one) and can be made to fail."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.round_trips, self.down = 0, False

    def execute_command(self, *args, **options):
        self.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction=True, shard_hint=None):
        pipe = super().pipeline(transaction, shard_hint)
        execute, owner = pipe.execute, self

        def counted(raise_on_error=True):
            if owner.down:
                raise redis.ConnectionError("down")
            owner.round_trips += 1
            return execute(raise_on_error)
        pipe.execute = counted
        return pipe


@pytest.fixture
def client():
    return Counting()


def test_many_runs_are_one_write_and_read_back_as_before(client):
    figures = taskstats.Figures(every_s=60, client=client)
    for took in (0.003, 0.02, 0.02, 40.0):
        figures.add("pingtree.score_lead", "SUCCESS", took)
    figures.add("pingtree.score_lead", "FAILURE", 0.003)
    assert client.round_trips == 0                  # nothing written per run
    figures.flush()
    assert client.round_trips == 1
    got = taskstats.read(client)
    assert got["runs"] == {("pingtree.score_lead", "SUCCESS"): 4, ("pingtree.score_lead", "FAILURE"): 1}
    assert got["sums"]["pingtree.score_lead"] == pytest.approx(40.046)
    buckets = dict(got["buckets"]["pingtree.score_lead"])
    assert (buckets["0.005"], buckets["0.025"], buckets["30.0"], buckets["+Inf"]) == (2, 4, 4, 5)


def test_an_idle_process_writes_nothing(client):
    figures = taskstats.Figures(every_s=0.05, client=client)
    figures.flush()
    time.sleep(0.2)
    assert client.round_trips == 0 and figures.thread is None


def test_the_figures_are_written_within_the_period_by_the_process_itself(client):
    figures = taskstats.Figures(every_s=0.1, client=client)
    figures.add("pingtree.validate_lead", "SUCCESS", 0.01)
    until = time.monotonic() + 5
    while not client.hgetall(taskstats.KEY) and time.monotonic() < until:
        time.sleep(0.02)
    assert taskstats.read(client)["runs"] == {("pingtree.validate_lead", "SUCCESS"): 1}


def test_figures_held_through_a_redis_error_are_written_next_time(client):
    figures = taskstats.Figures(every_s=60, client=client)
    figures.add("pingtree.deliver_post", "SUCCESS", 0.01)
    client.down = True
    figures.flush()                                  # never raises
    figures.add("pingtree.deliver_post", "SUCCESS", 0.01)
    client.down = False
    figures.flush()
    assert taskstats.read(client)["runs"] == {("pingtree.deliver_post", "SUCCESS"): 2}


def test_a_forked_child_starts_empty_and_the_parent_keeps_its_own(client, monkeypatch):
    monkeypatch.setattr(taskstats, "_figures", taskstats.Figures(every_s=60, client=client))
    taskstats.record("pingtree.ping_shard", "SUCCESS", 0.01)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the child: what it inherited is not its own
        os.write(write, str(len(taskstats._figures.pending)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"0"
    assert len(taskstats._figures.pending) == 3
