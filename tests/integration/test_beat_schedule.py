"""Beat keeps its schedule in memory: no pickle file anyone could plant is ever opened."""
from __future__ import annotations

import os
import shelve
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config import celeryconfig


class Planted:
    """What another local user could leave where beat keeps its schedule: unpickling runs it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_beat_opens_no_schedule_file_even_one_planted_for_it(tmp_path: Path, broker):
    marker = tmp_path / "code-ran"
    planted = tmp_path / "pingtree-beat"
    with shelve.open(str(planted)) as shelf:
        for key in ("entries", "tz", "utc_enabled", "__version__"):
            shelf[key] = Planted(str(marker))
    before = sorted(p.name for p in tmp_path.iterdir())
    # As the Procfile used to start it: the schedule in a fixed, shared path.
    log = tmp_path.parent / f"{tmp_path.name}-beat.log"
    with open(log, "w") as out:
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tasks", "beat", "-l", "INFO",
                                 "--schedule", str(planted)], cwd=str(Path(__file__).parents[2]),
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        # Until beat has sent a task (it has loaded its schedule by then), however slow the box.
        until = time.monotonic() + 60
        while "Sending due task" not in log.read_text() and beat.poll() is None:
            assert time.monotonic() < until, log.read_text()
            time.sleep(0.1)
    finally:
        beat.terminate()
        try:
            beat.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Never left running: it would go on sending into the test Redis db under later tests.
            beat.kill()
            beat.wait()
            raise AssertionError("beat did not stop within 20 s of SIGTERM:\n"
                                 + log.read_text()[-2000:]) from None
    output = log.read_text()
    assert "Sending due task" in output, output
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_beat_uses_the_in_memory_scheduler():
    assert celeryconfig.beat_scheduler == "celery.beat:Scheduler"


def test_a_sigterm_in_the_middle_of_a_tick_lets_the_tick_finish_and_stops_the_loop():
    """Beat's SIGTERM never raises inside a publish or a finalizer (where Celery's own handler's
    SystemExit was lost and beat kept sending): mid-tick it stops the loop; a second one exits."""
    from celery.beat import Service

    from tasks.app import app
    from tasks.signals import stop_between_ticks

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    service = Service(app=app)
    try:
        stop_between_ticks(service)
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, sys._getframe())        # lands in some code of the tick
        assert service._is_shutdown.is_set()            # the loop ends after this tick
        with pytest.raises(SystemExit):
            handler(signal.SIGTERM, sys._getframe())    # asked twice: now
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
