"""What Flower's task state costs the garbage collector: a Celery events State (Flower's) fed
the events a stage worker sends for N tasks (received, started, succeeded; ids for arguments),
then one full collection timed. Not a test (timings stay out of `make test`):

    .venv/bin/python -m tests.flower_heap [max_tasks ...]      (default: 10000 100000)

CPython runs a full collection whenever the objects that outlived two younger passes have grown
by a quarter since the last one: with Flower's state at its max_tasks, every ~max_tasks/4 new
tasks, each pass walking all of it while Flower handles no event. Each size runs in its own
process, so its peak resident size is its own.
"""
from __future__ import annotations

import gc
import resource
import subprocess
import sys
import time
import uuid


def one(max_tasks: int) -> None:
    from celery.events.state import State
    state = State(max_tasks_in_memory=max_tasks)
    now = time.time()
    for _ in range(max_tasks):
        task = str(uuid.uuid4())
        common = {"timestamp": now, "local_received": now, "clock": 1, "hostname": "validate@host",
                  "pid": 1, "utcoffset": 0, "uuid": task}
        state.event({**common, "type": "task-received", "name": "pingtree.validate_lead",
                     "args": f"('{uuid.uuid4()}',)", "kwargs": "{}", "retries": 0, "eta": None,
                     "root_id": task, "parent_id": None})
        state.event({**common, "type": "task-started"})
        state.event({**common, "type": "task-succeeded", "result": "None", "runtime": 0.001})
    gc.collect()
    started = time.process_time()
    gc.collect()
    pass_ms = (time.process_time() - started) * 1000
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"max_tasks {max_tasks:>7}: a full collection {pass_ms:6.0f} ms CPU over"
          f" {len(gc.get_objects()):>9} objects; peak resident {peak_mb} MB", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        one(int(sys.argv[2]))
        return
    for size in (sys.argv[1:] or ["10000", "100000"]):
        subprocess.run([sys.executable, "-m", "tests.flower_heap", "--one", str(int(size))], check=True)


if __name__ == "__main__":
    main()
